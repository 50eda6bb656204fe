"""``build_workers``: one process's workers over several pools share what the process has
once: its scratch runner and its ECS task protection."""

from __future__ import annotations

import threading

from hevcq.farm.workers import build_workers
from hevcq.settings import Settings
from hevcq.worker.protection import EcsAgentProtection
from tests.aws.conftest import MotoFarm


def test_the_workers_of_one_process_share_its_runner_and_its_task_protection(
    moto_farm: MotoFarm, tmp_path
) -> None:
    settings = Settings(work_dir=tmp_path, ecs_agent_uri="http://127.0.0.1:9")
    pools = [moto_farm.pools[name] for name in sorted(moto_farm.pools)]
    loop = build_workers(
        settings,
        pools,
        clients=moto_farm.clients,
        refs=moto_farm.refs,
        stop=threading.Event(),
        farm=moto_farm.pools,
    )
    assert loop.pools == sorted(moto_farm.pools)
    [protection] = {id(lane.protection) for lane in loop.lanes}
    assert isinstance(loop.protection, EcsAgentProtection)
    assert id(loop.protection) == protection
    assert len({id(lane.executor.protection) for lane in loop.lanes}) == 1
    assert len({id(lane.executor.runner) for lane in loop.lanes}) == 1
