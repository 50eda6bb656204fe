"""`hevcq ingest` on the embedded farm serves the dashboard beside it: at the address it
prints once, for as long as the farm runs, on another port when its own is taken, and not
at all with `--no-dashboard`. However the ingest ends, nothing is left listening."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from benchmarks.harness import read_events

from hevcq.credentials import Credentials
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.samples import make_clip
from hevcq.web.models import StatusReport
from tests.e2e.farmkit import ASKS_PASS, alive, children, cmdline, pool_dir, wait_for

pytestmark = pytest.mark.e2e

CLIPS = 2
GATE_WAIT_S = 60  # an encode waits at most this long for the test to open the gate
ADDRESS = re.compile(r"Dashboard: (http://127\.0\.0\.1:(\d+)/)#token=([0-9a-f]{32})\b")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


def _listening(port: int) -> str:
    """Which process listens on ``port`` ("" when none does).

    Read from the kernel's socket table rather than by connecting: a connect to a free
    port in the ephemeral range can, rarely, connect to itself and look like a listener.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == TCP_LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return ""
    holders = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            link = str(fd.readlink())
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            pid = int(fd.parent.parent.name)
            holders.append(f"{pid}: {cmdline(pid)}")
    return "; ".join(holders) or f"a socket no process holds (inodes {sorted(inodes)})"


def _closes(port: int) -> bool:
    """True once nothing listens on ``port``. A process whose main thread shows as a zombie
    may still be tearing down its other threads, and with them its open files."""
    return wait_for(lambda: not _listening(port), 10)


def _gated_ffmpeg(tmp: Path, gate: Path) -> Path:
    """An ffmpeg that waits for ``gate`` to exist: the farm is busy until the test opens it."""
    script = tmp / "gated-ffmpeg"
    polls = GATE_WAIT_S * 10
    script.write_text(
        f'#!/bin/sh\n{ASKS_PASS}i=0\nwhile [ ! -e "{gate}" ] && [ $i -lt {polls} ]; do\n'
        f'  sleep 0.1; i=$((i + 1))\ndone\nexec "{find_ffmpeg()}" "$@"\n'
    )
    script.chmod(0o755)
    return script


class Ingest:
    """`hevcq ingest` on a small library, its output read line by line as it comes; no
    encode starts before ``open_gate``."""

    def __init__(self, tmp: Path, port: int, *args: str) -> None:
        lib = tmp / "lib"
        self.gate = tmp / "gate"
        for i in range(CLIPS):  # distinct durations: distinct content, no duplicates
            make_clip(lib / f"clip{i}.mp4", width=160, height=120, seconds=0.4 + 0.1 * i)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
            "HEVCQ_WORKERS_DIR": str(pool_dir(tmp, ("hevc", "720p"))),
            "HOME": str(tmp / "home"),
            "XDG_STATE_HOME": str(tmp / "state"),
            "COLUMNS": "200",
            "HEVCQ_FFMPEG": str(_gated_ffmpeg(tmp, self.gate)),
            "HEVCQ_DASHBOARD_PORT": str(port),
        }
        self.farm_file = tmp / "state/hevcq/farm.json"
        self.env = env
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(tmp / "out"), *args],
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        self.lines.extend(self.proc.stdout)

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def address(self, timeout_s: float = 90) -> tuple[str, int]:
        """The printed dashboard address and its port, once printed."""
        assert wait_for(lambda: ADDRESS.search(self.out), timeout_s), self.out[-3000:]
        m = ADDRESS.search(self.out)
        assert m is not None
        return m.group(1), int(m.group(2))

    @property
    def token(self) -> str:
        """The run's token, from the printed address."""
        m = ADDRESS.search(self.out)
        assert m is not None
        return m.group(3)

    def dashboards(self) -> set[int]:
        """The ingest's dashboard processes."""
        return {k for k in children(self.proc.pid) if "hevcq.web.child" in cmdline(k)}

    def open_gate(self) -> None:
        self.gate.touch()

    def wait(self, timeout_s: float = 180) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        self.open_gate()  # an encode left waiting ends too
        self.proc.kill()
        self.proc.wait()


def test_the_printed_address_serves_the_running_farm_until_the_ingest_ends(
    tmp_path: Path,
) -> None:
    port = _free_port()
    ingest = Ingest(tmp_path, port)
    try:
        url, printed = ingest.address()
        assert printed == port  # the preferred port, free: taken as it is
        farm = json.loads(ingest.farm_file.read_text())
        auth = {"Authorization": f"Bearer {ingest.token}"}
        api = httpx.Client(base_url=url, timeout=30, headers=auth)
        health = api.get("/api/health").json()
        assert health["status"] == "ok", health
        assert farm["endpoint"] in health["farm"]
        pools = api.get("/api/pools").json()
        assert {p["pool"] for p in pools} == set(farm["pools"]) == {"hevc", "720p"}
        assert api.get("/").status_code == 200
        dash = ingest.dashboards()
        assert len(dash) == 1
        ingest.open_gate()
        code = ingest.wait()
    finally:
        ingest.kill()
    assert code == 0, ingest.out[-3000:]
    assert ingest.out.count("Dashboard:") == 1
    assert _closes(port), _listening(port)
    assert not any(alive(p) for p in dash)


STRANGER_UID = 65534  # nobody


STRANGER_PATHS = ("/api/dashboard", "/api/jobs", "/api/pools", "/api/deadletters", "/api/videos")


def _status_of(port: int, path: str) -> int:
    """The status line's code of a plain GET (a bare socket to an address: no name to
    resolve, nothing to import, so it runs in a forked child that can read none of our
    files)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(("127.0.0.1", port))
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = conn.recv(64)
    return int(head.split()[1])


def _as_stranger(port: int) -> dict[str, int]:
    """What another user of this machine gets from the dashboard on ``port``: the status of
    each route, asked from a process of that user (running as root, a child turned into
    ``nobody`` with no groups; as another user, this one, which holds no token either)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no imports, no locks, only sockets, then _exit
        code = 1
        try:
            if os.getuid() == 0:
                os.setgroups([])
                os.setgid(STRANGER_UID)
                os.setuid(STRANGER_UID)
            got = {p: _status_of(port, p) for p in STRANGER_PATHS}
            os.write(write, json.dumps({"uid": os.getuid(), "got": got}).encode())
            code = 0
        except BaseException as exc:  # said to the parent, which fails on it
            os.write(write, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        said = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, said
    answer = json.loads(said)
    assert answer["uid"] == (STRANGER_UID if os.getuid() == 0 else os.getuid())
    return dict(answer["got"])


def test_another_user_of_the_machine_reads_nothing_from_the_dashboard(tmp_path: Path) -> None:
    """The dashboard listened on 127.0.0.1 without credentials, and any user of the machine
    can connect there: every path of the library and play links to its videos were theirs.
    It answers now only who shows the run's token, which the ingest prints to its own
    user and keeps in the 0600 farm file."""
    ingest = Ingest(tmp_path, _free_port())
    try:
        url, port = ingest.address()
        stranger = _as_stranger(port)
        mode = ingest.farm_file.stat().st_mode & 0o777
        auth = {"Authorization": f"Bearer {ingest.token}"}
        mine = httpx.get(f"{url}api/jobs", headers=auth, timeout=30)
        ingest.open_gate()
        code = ingest.wait()
    finally:
        ingest.kill()
    assert stranger == dict.fromkeys(STRANGER_PATHS, 401), stranger
    assert mine.status_code == 200
    assert mode == 0o600
    assert code == 0, ingest.out[-3000:]


def test_no_dashboard_prints_no_address_and_listens_nowhere(tmp_path: Path) -> None:
    port = _free_port()
    ingest = Ingest(tmp_path, port, "--no-dashboard")
    try:
        assert wait_for(ingest.farm_file.exists, 90), ingest.out[-3000:]
        assert wait_for(lambda: len(children(ingest.proc.pid)) >= 2, 30)  # endpoint, worker
        assert not (who := _listening(port)), who
        assert not ingest.dashboards()
        ingest.open_gate()
        code = ingest.wait()
    finally:
        ingest.kill()
    assert code == 0, ingest.out[-3000:]
    assert "Dashboard" not in ingest.out
    assert "warning" not in ingest.out
    # The 720p pool skips these small clips by the client's word and gets no worker; the
    # sources still leave the embedded bucket as each hevc result comes home.
    [log] = (tmp_path / "state/hevcq/runs").glob("*/logs/ingest.log")
    deleted = [e["key"] for e in read_events(log) if e.get("event") == "source_deleted"]
    assert sorted(deleted) == [f"TODO/clip{i}.mp4" for i in range(CLIPS)]


def test_a_taken_port_still_gets_a_dashboard_and_ctrl_c_takes_it_down_quietly(
    tmp_path: Path,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        ingest = Ingest(tmp_path, taken)
        try:
            url, port = ingest.address()
            assert port != taken
            assert f"(port {taken} is taken)" in ingest.out
            assert httpx.get(f"{url}api/health", timeout=30).json()["status"] == "ok"
            dash = ingest.dashboards()
            ingest.proc.send_signal(signal.SIGINT)
            ingest.open_gate()  # the running job finishes and comes home
            code = ingest.wait()
        finally:
            ingest.kill()
    assert code == 130, ingest.out[-3000:]
    assert "Traceback" not in ingest.out
    [log] = (tmp_path / "state/hevcq/runs").glob("*/logs/dashboard.log")
    assert "Traceback" not in log.read_text()
    assert ingest.out.count("Dashboard:") == 1
    assert dash
    assert wait_for(lambda: not any(alive(p) for p in dash), 15), "the dashboard outlived it"
    assert _closes(port), _listening(port)


def test_a_killed_ingest_takes_its_dashboard_with_it(tmp_path: Path) -> None:
    ingest = Ingest(tmp_path, _free_port())
    try:
        _, port = ingest.address()
        dash = ingest.dashboards()
        assert dash
        ingest.proc.send_signal(signal.SIGKILL)
        ingest.wait(timeout_s=30)
    finally:
        ingest.kill()
    assert wait_for(lambda: not any(alive(p) for p in dash), 15), "the dashboard outlived it"
    assert _closes(port), _listening(port)


SERVED = re.compile(r"Dashboard: http://127\.0\.0\.1:(\d+)/#token=([0-9a-f]{32})\n")


def _serve(ingest: Ingest, port: int) -> tuple[subprocess.Popen[str], str]:
    """`hevcq serve` in the ingest's environment (its state dir), and what it said once it
    answers (its address, with the token it asks for)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hevcq", "serve", "--port", str(port)],
        env=ingest.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    said = ""
    for line in proc.stdout:
        said += line
        if "(OpenAPI at /docs)" in line:
            break
    url = f"http://127.0.0.1:{port}"
    up = lambda: _answers(f"{url}/api/health")  # noqa: E731
    assert wait_for(up, 30), said
    return proc, said


def api_without_token(port: int) -> httpx.Client:
    """A client of the server on ``port`` that shows no token, as another user's would."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_finds_the_running_embedded_farm_and_says_when_there_is_none(
    tmp_path: Path,
) -> None:
    ingest = Ingest(tmp_path, _free_port(), "--no-dashboard")
    try:
        assert wait_for(ingest.farm_file.exists, 90), ingest.out[-3000:]
        farm = json.loads(ingest.farm_file.read_text())
        serve, said = _serve(ingest, port := _free_port())
        try:
            printed = SERVED.search(said)
            assert printed is not None, said
            # The farm's own token: the one the ingest's dashboard asks for too.
            token = printed.group(2)
            credentials = Credentials(farm["access_key_id"], farm["secret_access_key"])
            assert token == credentials.dashboard_token()
            assert api_without_token(port).get("/api/pools").status_code == 401
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                timeout=30,
                headers={"Authorization": f"Bearer {token}"},
            )
            health = api.get("/api/health").json()
            assert health["status"] == "ok", health
            assert farm["endpoint"] in health["farm"]
            assert {p["pool"] for p in api.get("/api/pools").json()} == {"hevc", "720p"}
            # The API's status is the document `hevcq status --json` prints.
            cli = subprocess.run(
                [sys.executable, "-m", "hevcq", "status", "--json"],
                env=ingest.env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            shown = StatusReport.model_validate_json(cli.stdout)
            served = StatusReport.model_validate(api.get("/api/status").json())
            assert [p.pool for p in shown.pools] == [p.pool for p in served.pools]
            assert "using the embedded farm" in cli.stderr
        finally:
            serve.terminate()
            serve.wait(timeout=30)
        ingest.open_gate()
        assert ingest.wait() == 0, ingest.out[-3000:]
    finally:
        ingest.kill()
    # The ingest has ended and its farm with it: serve says so, on its page and in health.
    serve, said = _serve(ingest, port := _free_port())
    try:
        assert "no embedded farm running" in said
        printed = SERVED.search(said)
        assert printed is not None, said
        assert printed.group(2) != token  # a token of its own, for a server of nothing
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=30,
            headers={"Authorization": f"Bearer {printed.group(2)}"},
        )
        health = api.get("/api/health").json()
        assert health["status"] == "no farm"
        assert "no embedded farm running" in health["detail"]
        assert api.get("/").status_code == 200
        assert api.get("/api/pools").status_code == 503
        assert api_without_token(port).get("/api/pools").status_code == 401
        assert serve.poll() is None  # still serving
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_serve_on_port_0_says_the_port_it_got_and_answers_there(tmp_path: Path) -> None:
    """`--port 0` (any free port) printed "http://127.0.0.1:0", an address nothing answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hevcq", "serve", "--port", "0", "--state-dir", str(tmp_path)],
        env=env | {"XDG_STATE_HOME": str(tmp_path / "state")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = next(ln for ln in proc.stdout if "Dashboard: " in ln)
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        assert port > 0
        assert wait_for(lambda: _answers(f"http://127.0.0.1:{port}/api/health"), 30), line
    finally:
        proc.terminate()
        proc.wait(30)
