"""The embedded farm's AWS-compatible endpoint, in a process of its own.

moto's server (with S3 bytes on disk, see ``hevcq.emulator.s3disk``, and browser POST policies
checked, see ``hevcq.emulator.postpolicy``) runs in a child process: the ingest's memory does
not carry the objects, and the endpoint never outlives its parent however the parent ends
(the kernel's parent-death signal on Linux, and a watch on the parent's pid everywhere).

It answers only the farm (see ``hevcq.emulator.endpointgate``): it listens on 127.0.0.1, and
every request must be signed with a key pair made at random for this run, which reaches
the child in its environment (a command line is visible to every user), and the farm's
other processes through theirs and the 0600 farm file.
"""

from __future__ import annotations

import argparse
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hevcq.credentials import KEY_ID_ENV, SECRET_ENV, Credentials
from hevcq.emulator.readtimes import ReadBounds
from hevcq.private import open_private
from hevcq.procs import MALLOC_ARENAS, MALLOC_MMAP_THRESHOLD, die_with_parent

ENDPOINT_START_TIMEOUT_S = 60.0
ENDPOINT_STOP_TIMEOUT_S = 10.0
READY_PREFIX = "hevcq-endpoint "
HOST = "127.0.0.1"  # loopback only: no other machine reaches the farm


class EndpointError(RuntimeError):
    """The endpoint process did not start."""


class EndpointProcess:
    """A running endpoint child: its URL, and ``stop`` to end it."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, credentials: Credentials) -> None:
        self.proc = proc
        self.url = url
        self.credentials = credentials

    @property
    def pid(self) -> int:
        """The endpoint's process id."""
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, a grace period, then SIGKILL; the objects' files go with the process."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=ENDPOINT_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start(
    log_path: Path | None = None,
    credentials: Credentials | None = None,
    bounds: ReadBounds | None = None,
) -> EndpointProcess:
    """Start the endpoint on 127.0.0.1 and a free port, answering only ``credentials``
    (a new random pair when None); returns once it answers."""
    credentials = credentials or Credentials.generate()
    bounds = bounds or ReadBounds()
    err = open_private(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            _command(bounds),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            # Request bodies pass through many threads: see ``procs.bound_malloc``.
            env={
                **os.environ,
                "MALLOC_ARENA_MAX": str(MALLOC_ARENAS),
                "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD),
                # The gate strips CORS headers anyway; moto need not add them.
                "MOTO_DISABLE_GLOBAL_CORS": "true",
                **credentials.env(),
            },
            # Its own session: a Ctrl-C on the terminal reaches the ingest, which stops
            # the endpoint after the workers, not before.
            start_new_session=True,
        )
    finally:
        if log_path and not isinstance(err, int):
            err.close()
    try:
        url = _read_url(proc)
    except BaseException:
        EndpointProcess(proc, "", credentials).stop()
        raise
    return EndpointProcess(proc, url, credentials)


def _command(bounds: ReadBounds) -> list[str]:
    """The child's command line: nothing secret on it, every user can read it."""
    return [
        sys.executable,
        "-m",
        "hevcq.emulator.endpoint",
        "--parent",
        str(os.getpid()),
        "--header-s",
        str(bounds.header_s),
        "--body-grace-s",
        str(bounds.body_grace_s),
        "--min-body-rate",
        str(bounds.min_body_rate),
    ]


def _read_url(proc: subprocess.Popen[bytes]) -> str:
    if proc.stdout is None:
        raise EndpointError("the local endpoint has no output pipe")
    deadline = time.monotonic() + ENDPOINT_START_TIMEOUT_S
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.5):
                line = proc.stdout.readline().decode().strip()
                if line.startswith(READY_PREFIX):
                    return line.removeprefix(READY_PREFIX)
                if not line and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
    raise EndpointError(f"the local endpoint did not start (exit code {proc.poll()})")


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or until the parent process is gone."""
    parser = argparse.ArgumentParser(prog="hevcq.emulator.endpoint")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--header-s", type=float, default=ReadBounds.header_s)
    parser.add_argument("--body-grace-s", type=float, default=ReadBounds.body_grace_s)
    parser.add_argument("--min-body-rate", type=float, default=ReadBounds.min_body_rate)
    args = parser.parse_args(argv)
    bounds = ReadBounds(args.header_s, args.body_grace_s, args.min_body_rate)
    key_id, secret = os.environ.get(KEY_ID_ENV), os.environ.get(SECRET_ENV)
    if not key_id or not secret:
        sys.exit(f"hevcq.emulator.endpoint: {KEY_ID_ENV} and {SECRET_ENV} must name its key pair")
    stop = threading.Event()
    die_with_parent(args.parent, stop)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # Only this process needs moto and the gate in front of it.
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    from hevcq.emulator import s3disk  # noqa: PLC0415
    from hevcq.emulator.endpointgate import EndpointGate  # noqa: PLC0415
    from hevcq.emulator.readtimes import bounded  # noqa: PLC0415

    s3disk.install()
    # werkzeug logs every request at INFO; the farm's own events are what people want to see.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = EndpointGate(DomainDispatcherApplication(create_backend_app), {key_id: secret})
    # What moto's ThreadedMotoServer does, with the gate in front of moto's app.
    server = make_server(
        HOST, 0, app, threaded=True, request_handler=bounded(MotoRequestHandler, bounds)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"{READY_PREFIX}http://{HOST}:{server.server_port}", flush=True)  # the parent reads it
    stop.wait()
    server.shutdown()
    thread.join()


if __name__ == "__main__":
    main()
