"""The streaming round trip on the embedded farm: results come home as they arrive, a
stopped ingest keeps what finished and leaves no process behind, a re-run does the rest."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import boto3
import pytest
import yaml

from hevcq.cores import machine_cores, threads_per_slot
from hevcq.credentials import EMBEDDED_REGION
from hevcq.media.samples import make_clip
from hevcq.worker.precheck import SETTLED_EARLIER
from tests.e2e.farmkit import alive, children, pool_dir, slow_ffmpeg, wait_for

pytestmark = pytest.mark.e2e

CLIPS = 6
DELAY_S = 2.0  # each encode waits this long: a run that lasts long enough to interrupt


def _library(tmp: Path) -> tuple[Path, dict[str, str]]:
    lib = tmp / "lib"
    for i in range(CLIPS):  # distinct durations: distinct content, no duplicates
        make_clip(lib / f"clip{i}.mp4", width=320, height=240, seconds=0.5 + 0.1 * i)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(pool_dir(tmp)),
        "HOME": str(tmp / "home"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "COLUMNS": "200",
        "HEVCQ_FFMPEG": str(slow_ffmpeg(tmp, DELAY_S)),
        "HEVCQ_WINDOW": "2",
    }
    return lib, env


def _start(env: dict[str, str], tmp: Path, lib: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(tmp / "out")],
        env=env,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _outputs(tmp: Path) -> set[str]:
    return {p.name for p in (tmp / "out").rglob("*.mp4")}


def _uploading(stdout: str) -> int:
    m = re.search(r"uploading (\d+) files", stdout)
    return int(m.group(1)) if m else 0


def _ingest(
    tmp: Path, lib: Path, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    """``hevcq ingest`` of ``lib`` into ``tmp/out``, run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(tmp / "out"), *extra],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _resumes(tmp: Path, lib: Path, env: dict[str, str]) -> None:
    """A stopped run kept some outputs; the next run sends only the rest and finishes."""
    home = _outputs(tmp)
    assert 1 <= len(home) < CLIPS
    # The re-run is not interrupted: its encodes need not wait (the real ffmpeg, not the slow one).
    again = _ingest(tmp, lib, {k: v for k, v in env.items() if k != "HEVCQ_FFMPEG"})
    assert again.returncode == 0, again.stdout[-3000:]
    assert _uploading(again.stdout) == CLIPS - len(home)
    assert len(_outputs(tmp)) == CLIPS


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    return _library(tmp_path)


def test_results_come_home_while_the_farm_still_works_then_a_rerun_encodes_nothing(
    tmp_path: Path, library: tuple[Path, dict[str, str]]
) -> None:
    lib, env = library
    proc = _start(env, tmp_path, lib)
    try:
        assert wait_for(lambda: _outputs(tmp_path), 120), "no output arrived"
        early = _outputs(tmp_path)
        assert proc.poll() is None, "the ingest ended before its first output was home"
        farm = json.loads((tmp_path / "state/hevcq/farm.json").read_text())
        assert farm["pid"] == proc.pid
        assert set(farm["pools"]) == {"hevc"}
        assert (tmp_path / "state/hevcq/farm.json").stat().st_mode & 0o777 == 0o600
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert len(early) < CLIPS
    assert len(_outputs(tmp_path)) == CLIPS
    assert not (tmp_path / "state/hevcq/farm.json").exists()
    again = _ingest(tmp_path, lib, env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"Nothing to encode: {CLIPS} files finished in earlier runs." in again.stdout
    assert "embedded_farm_started" not in again.stdout + again.stderr
    # Log lines go to the run's folder in the state dir, not the terminal.
    run = min((tmp_path / "state/hevcq/runs").iterdir())  # the first run's folder
    assert "embedded_farm_started" in (run / "logs/ingest.log").read_text()
    assert (run / "logs/worker-0.log").stat().st_size > 0
    assert "embedded_farm_started" not in out


def _events(log: Path, event: str) -> list[dict[str, object]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [e for e in map(json.loads, lines) if e.get("event") == event]


def test_a_rerun_spends_no_encode_on_a_pool_that_finished_the_file_earlier(
    tmp_path: Path,
) -> None:
    """Every pool's queue hears of every upload. The first run encodes one file of two with
    the hevc pool; the second adds a pool. The hevc worker encodes only the file it has not
    finished, and skips the other without reading it; the new pool encodes both."""
    lib = tmp_path / "lib"
    for i in range(2):
        make_clip(lib / f"clip{i}.mp4", width=320, height=240, seconds=0.5 + 0.1 * i)
    workers = pool_dir(tmp_path)  # hevc only
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(workers),
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "COLUMNS": "200",
    }
    first = _ingest(tmp_path, lib, env, "--max-files", "1")
    assert first.returncode == 0, first.stdout[-3000:]
    done_first = {p.name for p in (tmp_path / "out").rglob("*.mp4")}
    assert len(done_first) == 1
    # A second pool: a 120p rendition, which these 240p sources need.
    (workers / "small.yaml").write_text(_with_target(workers / "hevc.yaml", ".120p", 120))
    again = _ingest(tmp_path, lib, env)
    assert again.returncode == 0, again.stdout[-3000:]
    logs = max((tmp_path / "state/hevcq/runs").iterdir()) / "logs"

    def events(pool: str, event: str) -> list[dict[str, object]]:
        found = (e for log in logs.glob("worker-*.log") for e in _events(log, event))
        return [e for e in found if e.get("pool") == pool]

    hevc_encoded = {str(e["key"]) for e in events("hevc", "transcode_started")}
    hevc_settled = {
        str(e["key"]) for e in events("hevc", "job_finished") if e.get("reason") == SETTLED_EARLIER
    }
    # The client holds hevc's outcome for that file, so the source may also leave the
    # bucket once the new pool's result is home, before the hevc worker reads its message:
    # it then finds the source gone. Either way it reads nothing and encodes nothing.
    hevc_gone = {str(e["key"]) for e in events("hevc", "source_gone")}
    assert {Path(k).name for k in hevc_settled | hevc_gone} == done_first
    assert hevc_encoded == {
        k.replace(Path(k).name, "") + n
        for k in hevc_settled | hevc_gone
        for n in {"clip0.mp4", "clip1.mp4"} - done_first
    }
    assert len(events("small", "transcode_started")) == 2
    assert len(list((tmp_path / "out").rglob("*.120p.mp4"))) == 2


def _with_target(hevc_yaml: Path, suffix: str, height: int) -> str:
    doc = yaml.safe_load(hevc_yaml.read_text())
    doc["output_suffix"] = suffix
    doc["applies"] = {**doc.get("applies", {}), "target_height": height}
    doc["description"] = f"{height}p rendition"
    return str(yaml.safe_dump(doc))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_ingest_keeps_what_finished_leaves_no_process_and_resumes(
    tmp_path: Path, library: tuple[Path, dict[str, str]], sig: signal.Signals
) -> None:
    lib, env = library
    proc = _start(env, tmp_path, lib)
    try:
        assert wait_for(lambda: _outputs(tmp_path), 120), "no output arrived"
        kids = children(proc.pid)
        assert len(kids) >= 2  # the endpoint and a worker
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out[-3000:]
    assert "Interrupted:" in out
    assert "Resume with: hevcq ingest" in out
    assert wait_for(lambda: not any(alive(k) for k in kids), 15), "a farm process outlived it"
    _resumes(tmp_path, lib, env)


def _on_a_terminal() -> None:
    """In the child: lead a session of its own whose controlling terminal is stdin's, as
    a login shell's command is, so closing the terminal sends it SIGHUP."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_a_hangup_stops_the_ingest_as_ctrl_c_does_and_the_next_run_resumes(
    tmp_path: Path, library: tuple[Path, dict[str, str]]
) -> None:
    """An ssh session drops mid-run: the ingest's terminal is gone. The jobs that run
    finish and come home, the farm shuts down in order, nothing is written to the dead
    terminal, and the next run does the rest. (It used to die at once, leaving no word.)"""
    lib, env = library
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(tmp_path / "out")],
        env=env,
        cwd=tmp_path,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        preexec_fn=_on_a_terminal,  # noqa: PLW1509 - setsid and an ioctl, no locks
    )
    os.close(follower)
    hang_up = threading.Event()

    def drain() -> None:  # the terminal reads what is written, then closes: a hangup
        while not hang_up.is_set():
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    os.read(leader, 65536)
                except OSError:
                    break
        os.close(leader)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        assert wait_for(lambda: _outputs(tmp_path), 120), "no output arrived"
        kids = children(proc.pid)
        hang_up.set()
        reader.join()
        proc.wait(timeout=120)
    finally:
        hang_up.set()
        proc.kill()
    assert proc.returncode == 130  # stopped as after a Ctrl-C, not killed by the signal
    assert wait_for(lambda: not any(alive(k) for k in kids), 15), "a farm process outlived it"
    [log] = (tmp_path / "state").rglob("ingest.log")
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "terminal_hung_up" in events
    assert events[-1] == "embedded_farm_stopped"
    _resumes(tmp_path, lib, env)


def test_a_killed_ingest_takes_its_workers_and_endpoint_with_it(
    tmp_path: Path, library: tuple[Path, dict[str, str]]
) -> None:
    lib, env = library
    proc = _start(env, tmp_path, lib)
    try:
        assert wait_for(lambda: len(children(proc.pid)) >= 2, 60)
        time.sleep(1.0)
        kids = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert wait_for(lambda: not any(alive(k) for k in kids), 15), "a farm process outlived it"


def _steal_one_result(farm_json: Path, deadline_s: float) -> bool:
    """Take one result off the running farm's results queue for good, as a second consumer
    would; True once one is gone."""
    record = json.loads(farm_json.read_text())
    sqs = boto3.client(
        "sqs",
        endpoint_url=record["endpoint"],
        region_name=EMBEDDED_REGION,
        aws_access_key_id=record["access_key_id"],
        aws_secret_access_key=record["secret_access_key"],
    )
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        got = sqs.receive_message(
            QueueUrl=record["results_queue_url"], WaitTimeSeconds=1, MaxNumberOfMessages=1
        )
        for msg in got.get("Messages", []):
            sqs.delete_message(
                QueueUrl=record["results_queue_url"], ReceiptHandle=msg["ReceiptHandle"]
            )
            return True
    return False


def test_fetch_beside_a_running_ingest_refuses_and_a_lost_result_still_comes_home(
    tmp_path: Path, library: tuple[Path, dict[str, str]]
) -> None:
    """The ingest is its farm's one consumer of results: `hevcq fetch` refuses in one line
    instead of taking them; and a result that goes missing anyway (taken off the queue by
    someone else) is found in the ledger and brought home, so the ingest still ends."""
    lib, env = library
    # Encodes slow enough that the ingest outlives the fetch and the theft: at the usual
    # delay, on a loaded machine, it once brought everything home and closed its farm
    # before the theft could reach the results queue.
    env = env | {"HEVCQ_FFMPEG": str(slow_ffmpeg(tmp_path, 5 * DELAY_S))}
    farm_json = tmp_path / "state/hevcq/farm.json"
    proc = _start(env, tmp_path, lib)
    try:
        assert wait_for(farm_json.exists, 60), "the farm never started"
        fetch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hevcq",
                "fetch",
                str(lib),
                "--pool",
                "hevc",
                "--follow",
                "--out",
                str(tmp_path / "taken"),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            said, err = fetch.communicate(timeout=30)
        finally:
            fetch.kill()
        assert fetch.returncode == 2, said + err
        assert said == "", said  # errors go to stderr
        assert err.count("\n") == 1, err
        assert err.startswith(f"error: the running ingest (pid {proc.pid}) brings"), err
        assert _steal_one_result(farm_json, 60), "no result to take"
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert len(_outputs(tmp_path)) == CLIPS
    assert not (tmp_path / "taken").exists()


def test_the_embedded_farm_runs_a_slot_per_core_each_taking_any_pools_work(
    tmp_path: Path,
) -> None:
    """HEVCQ_SLOTS worker processes, not one per pool: each takes the work of every pool
    with work, and each encode gets its share of the cores as threads."""
    lib = tmp_path / "lib"
    for i in range(4):
        make_clip(lib / f"clip{i}.mp4", width=320, height=240, seconds=0.5 + 0.1 * i)
    workers = pool_dir(tmp_path)  # hevc ...
    (workers / "small.yaml").write_text(_with_target(workers / "hevc.yaml", ".120p", 120))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(workers),
        "HEVCQ_SLOTS": "2",
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(tmp_path / "out")]
    run = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(list((tmp_path / "out").rglob("*.mp4"))) == 8
    logs = max((tmp_path / "state/hevcq/runs").iterdir()) / "logs"
    assert sorted(p.name for p in logs.glob("worker-*.log")) == ["worker-0.log", "worker-1.log"]
    started = [e for log in logs.glob("worker-*.log") for e in _events(log, "worker_started")]
    assert [e["pools"] for e in started] == [["hevc", "small"]] * 2
    per_process = [_events(log, "transcode_started") for log in sorted(logs.glob("worker-*.log"))]
    encodes = [e for events in per_process for e in events]
    assert sorted(str(e["pool"]) for e in encodes) == ["hevc"] * 4 + ["small"] * 4
    assert all(per_process), "a slot stayed idle"
    assert any({e["pool"] for e in events} == {"hevc", "small"} for events in per_process)
    assert {e["threads"] for e in encodes} == {threads_per_slot(machine_cores(), 2)}
