"""The embedded default: an AWS-compatible endpoint process and local worker processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from hevcq.aws.clients import Clients
from hevcq.aws.provision import names_for, provision
from hevcq.cores import default_slots, free_memory, machine_cores, threads_per_slot
from hevcq.credentials import EMBEDDED_REGION, Credentials, embedded_env
from hevcq.emulator import endpoint
from hevcq.emulator.endpoint import EndpointProcess
from hevcq.errors import ConfigError, RunHalted
from hevcq.farm.client import Farm
from hevcq.pools import Pool
from hevcq.private import open_private, private_dir
from hevcq.procs import pid_alive
from hevcq.settings import Settings, state_dir
from hevcq.topology import EMBEDDED_BUCKET, FarmRefs

log = structlog.get_logger()

WORKER_STOP_TIMEOUT_S = 30.0
# A worker that exits this soon after it started did not start; this many times in a row
# in one slot and restarting it again would loop forever: the run stops with its reason.
QUICK_EXIT_S = 20.0
QUICK_EXITS_TO_STOP = 3
EMBEDDED_POLL_WAIT_S = 2
EMBEDDED_PROGRESS_EVERY_S = 2


def _start_moto(
    log_path: Path | None = None, credentials: Credentials | None = None
) -> tuple[EndpointProcess, str]:
    """The endpoint in a child process of its own (see ``hevcq.emulator.endpoint``).

    A fresh process per farm: nothing of an earlier farm (queues, objects) is there, and
    stopping it frees every object's bytes.
    """
    server = endpoint.start(log_path, credentials)
    return server, server.url


def farm_env(
    refs: FarmRefs,
    endpoint: str | None,
    settings: Settings,
    credentials: Credentials | None = None,
) -> dict[str, str]:
    """Environment variables that point a worker process at this farm."""
    env = {
        "HEVCQ_BUCKET": refs.bucket,
        "HEVCQ_NAME_PREFIX": refs.names.prefix,
        "HEVCQ_EVENTS_TOPIC_ARN": refs.events_topic_arn,
        "HEVCQ_UPLOADS_TOPIC_ARN": refs.uploads_topic_arn,
        "HEVCQ_RESULTS_QUEUE_URL": refs.results_queue_url,
        "HEVCQ_LEDGER_TABLE": refs.ledger_table,
        "HEVCQ_LOG_FORMAT": "json",
        "HEVCQ_LOG_LEVEL": settings.log_level,
        "HEVCQ_DECODE_DURING_ENCODE": str(settings.decode_during_encode).lower(),
    }
    if endpoint:
        # Polling a local endpoint costs nothing; short polls let workers stop promptly.
        env["HEVCQ_POLL_WAIT_S"] = str(EMBEDDED_POLL_WAIT_S)
        # Ledger writes cost nothing here: the live view moves every couple of seconds,
        # unless the user chose otherwise.
        every = settings.progress_every_s
        if "progress_every_s" not in settings.model_fields_set:
            every = EMBEDDED_PROGRESS_EVERY_S
        env["HEVCQ_PROGRESS_EVERY_S"] = str(every)
    if settings.workers_dir:
        env["HEVCQ_WORKERS_DIR"] = str(settings.workers_dir)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
        if credentials is not None:
            env.update(embedded_env(credentials))
    return env


class WorkersCannotStart(RunHalted):
    """The embedded farm's workers exit as soon as they start, again and again."""


def last_line(path: Path, tail_bytes: int = 4096) -> str:
    """The last line of a log that says something (an ``error:`` line first), trimmed."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - tail_bytes))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    said = [ln.strip() for ln in lines if ln.strip()]
    errors = [ln for ln in said if ln.startswith("error: ")]
    return ((errors or said or [""])[-1])[:300]


@dataclass
class WorkerProcs:
    """Local worker processes, one per slot, each taking the work of every pool in
    ``pools``; restarted if they die while the farm runs."""

    env: dict[str, str]
    log_dir: Path
    pools: list[str]
    slots: int
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _started: dict[int, float] = field(default_factory=dict)  # slot -> monotonic start
    _quick_exits: dict[int, int] = field(default_factory=dict)  # slot -> in a row

    def _log_path(self, slot: int) -> Path:
        return self.log_dir / f"worker-{slot}.log"

    def _spawn(self, slot: int) -> None:
        log_path = self._log_path(slot)
        pools = [a for pool in self.pools for a in ("--pool", pool)]
        self._started[slot] = time.monotonic()
        with open_private(log_path, "ab") as out:
            self.procs[slot] = subprocess.Popen(
                [sys.executable, "-m", "hevcq", "worker", *pools, "--parent", str(os.getpid())],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # A Ctrl-C on the terminal reaches the ingest only, which decides what the
                # workers do; they die with the ingest however it ends (``--parent``).
                start_new_session=True,
            )

    def start(self) -> None:
        """Start every worker."""
        private_dir(self.log_dir)
        for slot in range(self.slots):
            self._spawn(slot)
        log.info("workers_started", workers=len(self.procs), logs=str(self.log_dir))

    def supervise(self) -> None:
        """Restart workers that exited unexpectedly (call periodically).

        Raises ``WorkersCannotStart`` once a slot's worker has exited ``QUICK_EXITS_TO_STOP``
        times in a row within ``QUICK_EXIT_S`` of starting: what stops it at start (a
        setting, a missing encoder) stops every restart too.
        """
        if self._stopping.is_set():
            return
        for slot, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            quick = time.monotonic() - self._started.get(slot, 0.0) < QUICK_EXIT_S
            self._quick_exits[slot] = self._quick_exits.get(slot, 0) + 1 if quick else 0
            if self._quick_exits[slot] >= QUICK_EXITS_TO_STOP:
                log.error("worker_cannot_start", slot=slot, exit_code=proc.returncode)
                raise WorkersCannotStart(
                    f"the local workers exit as they start ({proc.returncode}): "
                    f"{last_line(self._log_path(slot)) or 'no reason in their log'} "
                    f"(log: {self._log_path(slot)})"
                )
            log.warning("worker_restarted", slot=slot, exit_code=proc.returncode)
            self._spawn(slot)

    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [p.pid for p in self.procs.values()]

    def stop(self, grace_s: float = WORKER_STOP_TIMEOUT_S) -> None:
        """SIGTERM every worker (a graceful stop), then SIGKILL what is left."""
        self._stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def embedded_slots(settings: Settings, cores: int, free: int | None = None) -> int:
    """The embedded farm's concurrent encodes: ``HEVCQ_SLOTS``, else from the cores and
    the ``free`` memory (``hevcq.cores.default_slots``)."""
    return settings.slots or default_slots(cores, free)


class EmbeddedFarm:
    """A whole farm on this machine: endpoint, topology and workers; a context manager."""

    def __init__(
        self,
        settings: Settings,
        pools: dict[str, Pool],
        state_dir: Path,
        slots: int | None = None,
        worker_pools: Iterable[str] | None = None,
    ) -> None:
        """``slots`` worker processes (default: ``settings.slots``, else from the cores;
        0: none), each taking the work of every pool in ``worker_pools`` (default: all;
        every pool gets its queues either way, and only these pools get upload events)."""
        self.settings = settings
        self.worker_pools = sorted(pools if worker_pools is None else worker_pools)
        self.pools = pools
        self.state_dir = state_dir
        cores = machine_cores()
        self.slots = embedded_slots(settings, cores, free_memory()) if slots is None else slots
        self.encode_threads = settings.encode_threads or threads_per_slot(cores, max(1, self.slots))
        self._server: EndpointProcess | None = None
        self.endpoint = ""
        # This run's key pair: the endpoint answers nobody else.
        self.credentials = Credentials.generate()
        self.clients: Clients | None = None
        self.refs: FarmRefs | None = None
        self.workers: WorkerProcs | None = None

    def client(self) -> Farm:
        """This farm as its clients use it (started: ``with`` entered)."""
        if self.clients is None or self.refs is None:
            raise ConfigError("the embedded farm is not started")
        return Farm(self.clients, self.refs, label=f"embedded farm at {self.endpoint}")

    def __enter__(self) -> EmbeddedFarm:
        os.environ.update(embedded_env(self.credentials))
        private_dir(self.state_dir / "logs")
        self._server, self.endpoint = _start_moto(
            self.state_dir / "logs" / "endpoint.log", self.credentials
        )
        self.clients = Clients.create(region=EMBEDDED_REGION, endpoint_url=self.endpoint)
        names = names_for(self.settings, self.pools, EMBEDDED_BUCKET)
        # Events reach only the pools this farm runs workers for.
        self.refs = provision(
            self.clients, names, self.pools, EMBEDDED_REGION, subscribed=self.worker_pools
        )
        env = farm_env(self.refs, self.endpoint, self.settings, self.credentials)
        env["HEVCQ_ENCODE_THREADS"] = str(self.encode_threads)
        self.workers = WorkerProcs(
            env=env, log_dir=self.state_dir / "logs", pools=self.worker_pools, slots=self.slots
        )
        if self.slots > 0 and self.worker_pools:
            self.workers.start()
        log.info("embedded_farm_started", endpoint=self.endpoint)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.workers is not None:
            self.workers.stop()
        if self._server is not None:
            self._server.stop()
        log.info("embedded_farm_stopped")


# --- reaching a running embedded farm from another terminal ---------------------------

FARM_FILE = "farm.json"


@dataclass(frozen=True)
class RunningFarm:
    """An embedded farm that an ingest runs now: its endpoint, key pair and resource names."""

    endpoint: str
    pid: int
    refs: FarmRefs
    credentials: Credentials


def farm_file(directory: Path | None = None) -> Path:
    """Where a running ingest describes its embedded farm."""
    return (directory or state_dir()) / FARM_FILE


def farm_record(endpoint: str, refs: FarmRefs, credentials: Credentials) -> dict[str, Any]:
    """The farm file's body: this process's embedded farm, as plain JSON values (with its
    key pair: the file is the owner's alone, mode 0600)."""
    return {
        "endpoint": endpoint,
        "pid": os.getpid(),
        "access_key_id": credentials.access_key_id,
        "secret_access_key": credentials.secret_access_key,
        **refs.to_record(),
    }


@contextlib.contextmanager
def published_farm(
    endpoint: str, refs: FarmRefs, credentials: Credentials, directory: Path | None = None
) -> Iterator[Path]:
    """Write the farm file (mode 0600) while the block runs; removed on the way out."""
    path = farm_file(directory)
    private_dir(path.parent)
    body = farm_record(endpoint, refs, credentials)
    tmp = path.with_name(f".{FARM_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f, indent=1)
    tmp.replace(path)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if _read(path).get("pid") == os.getpid():  # not another ingest's newer file
                path.unlink()


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def running_farm(directory: Path | None = None) -> RunningFarm | None:
    """The embedded farm a live ingest runs, or None (no file, or its ingest is gone)."""
    data = _read(farm_file(directory))
    pid = data.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return from_record(data)


def from_record(data: dict[str, Any]) -> RunningFarm | None:
    """The farm a ``farm_record`` describes, or None when it is not one."""
    try:
        credentials = Credentials(str(data["access_key_id"]), str(data["secret_access_key"]))
        return RunningFarm(
            str(data["endpoint"]), int(data["pid"]), FarmRefs.from_record(data), credentials
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
