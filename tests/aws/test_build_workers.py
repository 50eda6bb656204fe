"""``build_workers``: one process's workers over several pools share what the process has
once: its scratch runner and its ECS task protection."""

from __future__ import annotations

import threading

import imageio_ffmpeg
import pytest

from hevcq.errors import ConfigError
from hevcq.farm.workers import build_workers
from hevcq.settings import Settings
from hevcq.worker.protection import EcsAgentProtection
from hevcq.worker.runner import JobRunner
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


def test_workers_run_the_pinned_ffmpeg_and_record_its_version(
    moto_farm: MotoFarm, tmp_path
) -> None:
    loop = build_workers(
        Settings(work_dir=tmp_path),
        [moto_farm.pools["hevc"]],
        clients=moto_farm.clients,
        refs=moto_farm.refs,
        stop=threading.Event(),
    )
    runner = loop.lanes[0].executor.runner
    assert isinstance(runner, JobRunner)
    assert runner._ffmpeg_version == imageio_ffmpeg.get_ffmpeg_version()
    assert runner._ffmpeg == imageio_ffmpeg.get_ffmpeg_exe()


def test_a_worker_whose_ffmpeg_lacks_a_pool_encoder_refuses_to_start(
    moto_farm: MotoFarm, tmp_path
) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$2" in\n'
        "  -version) echo 'ffmpeg version n5.1-old Copyright (c) 2000-2022' ;;\n"
        "  -encoders) printf ' V....D libx264  H.264\\n A....D aac  AAC\\n' ;;\n"
        "  -filters) printf ' TS bwdif  V->V  D.\\n TS premultiply  VV->V  P.\\n"
        " ... showinfo  V->V  S.\\n' ;;\n"
        "esac\n"
    )
    fake.chmod(0o755)
    with pytest.raises(ConfigError) as err:
        build_workers(
            Settings(work_dir=tmp_path, ffmpeg=str(fake)),
            [moto_farm.pools["hevc"]],
            clients=moto_farm.clients,
            refs=moto_farm.refs,
            stop=threading.Event(),
        )
    assert str(err.value) == (
        f"pool hevc needs the libx265 encoder, which the ffmpeg at {fake} (n5.1-old) lacks"
    )
