"""The dashboard beside an ingest: the app ``hevcq serve`` runs, in a child process.

The ingest binds the listening socket itself (the preferred port, else any free one), so
the address is known before the child starts and no other program can take it meanwhile;
the child serves on that socket, reads the farm from its stdin and says on stdout when it
answers. Like the endpoint and the workers it runs in a session of its own (a Ctrl-C on
the terminal reaches the ingest only) and dies with the ingest however the ingest ends.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hevcq import logs
from hevcq.errors import ConfigError
from hevcq.farm.embedded import from_record
from hevcq.private import open_private
from hevcq.procs import die_with_parent
from hevcq.settings import load_settings
from hevcq.web.listen import bind, signed_in_address

if TYPE_CHECKING:
    from hevcq.web.app import WebConfig

HOST = "127.0.0.1"  # loopback only; even there the dashboard asks for the run's token
START_TIMEOUT_S = 30.0  # the child imports FastAPI and boto3 on a busy machine
STOP_TIMEOUT_S = 5.0
READY = b"hevcq-dashboard ready\n"


class DashboardError(RuntimeError):
    """The dashboard could not start."""


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``port``, or on a free port when that one is taken."""
    try:
        return bind(host, port)
    except OSError:
        if port == 0:
            raise
        return bind(host, 0)


@dataclass(frozen=True)
class Notice:
    """A line for the terminal: the address, or why there is no dashboard."""

    text: str
    warning: bool = False


@dataclass
class Dashboard:
    """The ingest's handle on its dashboard child; ``poll`` it, ``stop`` it."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    taken: int | None = None  # the preferred port, when another program holds it
    _deadline: float = field(default_factory=lambda: time.monotonic() + START_TIMEOUT_S)
    _out: bytes = b""
    _ready: bool = False
    _over: bool = False  # said its last word

    def poll(self) -> Notice | None:
        """At most one notice per state change: the address once it answers, or why not."""
        if self._over:
            return None
        code = self.proc.poll()
        if not self._ready and self._read_ready():
            self._ready = True
            taken = f" (port {self.taken} is taken)" if self.taken is not None else ""
            return Notice(f"Dashboard: {self.url}{taken}")
        if code is not None:
            self._over = True
            what = "stopped" if self._ready else "did not start"
            return Notice(f"the dashboard {what} (exit {code}; see {self.log_path})", True)
        if not self._ready and time.monotonic() > self._deadline:
            self._over = True
            self.stop()
            return Notice(f"the dashboard did not start in time (see {self.log_path})", True)
        return None

    def _read_ready(self) -> bool:
        out = self.proc.stdout
        if out is None:
            return False
        while select.select([out], [], [], 0)[0]:
            chunk = os.read(out.fileno(), 256)
            if not chunk:
                break
            self._out += chunk
        return READY in self._out

    def stop(self) -> None:
        """SIGTERM (uvicorn stops gracefully), a grace period, then SIGKILL."""
        self._over = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def dashboard_url(base: str, record: dict[str, Any]) -> str:
    """The address to open: the page, with the run's token (``signed_in_address``)."""
    farm = from_record(record)
    return signed_in_address(base, farm.credentials.dashboard_token()) if farm else base


def start(record: dict[str, Any], port: int, log_path: Path) -> Dashboard:
    """Bind, start the child on that socket and hand it the farm ``record`` describes."""
    try:
        sock = listen(HOST, port)
    except OSError as exc:
        raise DashboardError(f"no port to listen on: {exc.strerror or exc}") from exc
    try:
        bound = sock.getsockname()[1]
        with open_private(log_path, "ab") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hevcq.web.child",
                    "--fd",
                    str(sock.fileno()),
                    "--parent",
                    str(os.getpid()),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                pass_fds=(sock.fileno(),),
                start_new_session=True,
            )
    except OSError as exc:
        raise DashboardError(f"cannot start its process: {exc}") from exc
    finally:
        sock.close()  # the child holds the only copy: the port is free once it ends
    dash = Dashboard(
        proc,
        dashboard_url(f"http://{HOST}:{bound}/", record),
        log_path,
        taken=port if port and bound != port else None,
    )
    try:
        if proc.stdin is not None:
            with proc.stdin:
                proc.stdin.write(json.dumps(record).encode())
    except OSError:
        pass  # it died at once; ``poll`` says so
    return dash


def _web_config() -> WebConfig:
    """What ``hevcq serve`` would build for this farm: the settings, and the farm the ingest
    wrote on stdin (another ingest may have replaced the farm file since)."""
    from hevcq.web import server as web_server  # noqa: PLC0415 - the child's alone

    settings = load_settings(os.environ)
    logs.configure("json", settings.log_level)  # stderr is the run's dashboard.log
    farm = from_record(json.loads(sys.stdin.read() or "{}"))
    if farm is None:
        raise ConfigError("no farm description on stdin")
    return web_server.web_config(settings, web_server.embedded_located(farm, settings), HOST)


def main(argv: list[str] | None = None) -> None:
    """Serve the farm read from stdin on the inherited socket until SIGTERM or the parent ends."""
    parser = argparse.ArgumentParser(prog="hevcq.web.child")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent(args.parent, threading.Event())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the ingest decides when this ends
    sock = socket.socket(fileno=args.fd)
    try:
        config = _web_config()
    except (ConfigError, ValueError) as exc:
        print(f"dashboard not started: {exc}", file=sys.stderr)  # stderr: its log file
        sys.exit(2)

    def started() -> None:
        sys.stdout.buffer.write(READY)
        sys.stdout.flush()

    from hevcq.web import server as web_server  # noqa: PLC0415 - the child's alone

    web_server.serve_socket(config, sock, started)


if __name__ == "__main__":
    main()
