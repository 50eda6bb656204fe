"""Commands that attach to a running ingest's embedded farm talk to its endpoint and
nothing else: a dead letter is redriven on the farm, never looked for in AWS."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from hevcq.aws.clients import Clients
from hevcq.farm.embedded import published_farm
from tests.conftest import WORKERS_DIR
from tests.e2e.farmkit import stack


def _env(tmp: Path) -> dict[str, str]:
    """A user's shell: no AWS settings at all, the state dir in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "HEVCQ_"))}
    # Were anything sent to AWS, it would fail here at once rather than wait on the network.
    env.update(XDG_STATE_HOME=str(tmp / "xdg"), AWS_EC2_METADATA_DISABLED="true")
    return env


def test_redrive_on_the_embedded_farm_moves_its_dead_letters_there(tmp_path: Path) -> None:
    with stack(tmp_path, WORKERS_DIR) as farm:
        assert farm.refs is not None
        assert farm.clients is not None
        hevc = farm.refs.pools["hevc"]
        farm.clients.sqs.send_message(QueueUrl=hevc.dlq_url, MessageBody=json.dumps({"x": 1}))
        with published_farm(farm.endpoint, farm.refs, farm.credentials, tmp_path / "xdg/hevcq"):
            run = subprocess.run(
                [sys.executable, "-m", "hevcq", "redrive", "--dlq", "--pool", "hevc"],
                env=_env(tmp_path),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "hevc: 1 messages moved" in run.stdout
        got = farm.clients.sqs.receive_message(
            QueueUrl=hevc.queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10
        )
        assert '{"x": 1}' in [m["Body"] for m in got.get("Messages", [])]


def test_clients_with_another_retry_budget_keep_their_endpoint() -> None:
    local = Clients.create(region="eu-west-1", endpoint_url="http://127.0.0.1:9")
    once = local.with_retries(1)
    assert once.sqs.meta.endpoint_url == "http://127.0.0.1:9"
    assert once.sqs.meta.region_name == "eu-west-1"
    made_so = Clients.create(region="eu-west-1", endpoint_url="http://127.0.0.1:9", retries=1)
    assert once.sqs.meta.config.retries == made_so.sqs.meta.config.retries  # type: ignore[attr-defined]


def test_status_watch_says_the_ingest_ended_and_exits_0(tmp_path: Path) -> None:
    with stack(tmp_path, WORKERS_DIR) as farm:
        assert farm.refs is not None
        with published_farm(farm.endpoint, farm.refs, farm.credentials, tmp_path / "xdg/hevcq"):
            watch = subprocess.Popen(
                [sys.executable, "-m", "hevcq", "status", "--watch", "0.5"],
                env=_env(tmp_path) | {"COLUMNS": "200"},
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not _printed_once(watch):
                    time.sleep(0.2)
            except BaseException:
                watch.kill()
                raise
    # The farm file and the endpoint are gone, as when an ingest ends.
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, out[-2000:] + err
    assert "Traceback" not in out + err
    assert out.rstrip().endswith("The ingest ended and its embedded farm with it.")


def _printed_once(proc: subprocess.Popen[str]) -> bool:
    """Whether the watch has drawn its first report (it reads the farm by then)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 0)
    return bool(ready) and "jobs by state" in proc.stdout.readline()
