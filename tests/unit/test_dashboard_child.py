"""The ingest's dashboard child, parent side: its port, its farm record, what it says."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from hevcq.credentials import Credentials
from hevcq.farm.embedded import RunningFarm, farm_record, from_record, published_farm, running_farm
from hevcq.topology import FarmRefs, Names, PoolRefs
from hevcq.web.child import READY, Dashboard, listen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_preferred_port_is_taken_when_free() -> None:
    port = _free_port()
    with listen("127.0.0.1", port) as sock:
        assert sock.getsockname()[1] == port


def test_a_taken_port_gives_way_to_a_free_one() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        with listen("127.0.0.1", taken) as sock:
            port = sock.getsockname()[1]
            assert port not in (taken, 0)
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # it listens: the connection waits in its backlog


def test_the_farm_record_reads_back_as_the_farm() -> None:
    refs = FarmRefs(
        names=Names.build("hevcq", "hevcq-local", ["720p", "hevc"]),
        uploads_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-uploads",
        events_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-events",
        results_queue_url="http://127.0.0.1:1/123456789012/hevcq-results",
        ledger_table="hevcq-ledger",
        pools={p: PoolRefs(f"http://q/{p}", f"http://q/{p}-dlq") for p in ("720p", "hevc")},
    )
    credentials = Credentials.generate()
    record = farm_record("http://127.0.0.1:1", refs, credentials)
    assert from_record(record) == RunningFarm("http://127.0.0.1:1", os.getpid(), refs, credentials)
    assert from_record({"endpoint": "http://127.0.0.1:1"}) is None


def _dashboard(tmp: Path, script: str) -> Dashboard:
    proc = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.PIPE)
    return Dashboard(proc, "http://127.0.0.1:1/", tmp / "dashboard.log")


def _notices(dash: Dashboard) -> list[tuple[str, bool]]:
    """Everything it says until its process has ended and been looked at once more."""
    out, ended = [], False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        notice = dash.poll()
        if notice is not None:
            out.append((notice.text, notice.warning))
        if ended:
            break
        ended = dash.proc.poll() is not None
        time.sleep(0.02)
    return out


@pytest.mark.parametrize(
    ("script", "said"),
    [
        (
            f"printf '{READY.decode().strip()}\\n'; sleep 0.3",
            [
                ("Dashboard: http://127.0.0.1:1/", False),
                ("the dashboard stopped (exit 0; see {log})", True),
            ],
        ),
        ("exit 2", [("the dashboard did not start (exit 2; see {log})", True)]),
    ],
)
def test_the_address_is_said_once_it_answers_and_a_failure_is_one_warning(
    tmp_path: Path, script: str, said: list[tuple[str, bool]]
) -> None:
    dash = _dashboard(tmp_path, script)
    try:
        log = tmp_path / "dashboard.log"
        assert _notices(dash) == [(t.format(log=log), w) for t, w in said]
        assert dash.poll() is None  # said its last word
    finally:
        dash.stop()


def test_stop_ends_it_and_it_says_nothing_after(tmp_path: Path) -> None:
    dash = _dashboard(tmp_path, f"printf '{READY.decode().strip()}\\n'; exec sleep 30")
    dash.stop()
    assert dash.proc.returncode is not None
    assert dash.poll() is None


def test_the_farm_file_keeps_the_run_s_key_pair_for_its_owner_alone(tmp_path: Path) -> None:
    refs = FarmRefs(
        names=Names.build("hevcq", "hevcq-local", ["hevc"]),
        uploads_topic_arn="arn:u",
        events_topic_arn="arn:e",
        results_queue_url="http://q/r",
        ledger_table="hevcq-ledger",
        pools={"hevc": PoolRefs("http://q/hevc", "http://q/hevc-dlq")},
    )
    credentials = Credentials.generate()
    with published_farm("http://127.0.0.1:1", refs, credentials, tmp_path) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        running = running_farm(tmp_path)
        assert running is not None
        assert running.credentials == credentials
    assert running_farm(tmp_path) is None
