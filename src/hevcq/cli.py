"""The ``hevcq`` command. It wires settings, logging and components; the logic lives elsewhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.table import Table

from hevcq import admin, logs
from hevcq.aws import Clients
from hevcq.endpoint import _die_with_parent as die_with_parent
from hevcq.errors import ConfigError, FailureClass, HevcqError
from hevcq.farm import Pool, load_farm
from hevcq.ffmpeg import find_ffmpeg
from hevcq.jobs import JobRunner
from hevcq.ledger import DynamoLedger
from hevcq.local import EMBEDDED_CREDENTIALS, EMBEDDED_REGION, running_farm
from hevcq.protection import EcsAgentProtection, NoProtection
from hevcq.provision import FarmRefs, resolve
from hevcq.publish import SnsPublisher
from hevcq.queues import SqsQueue
from hevcq.results import announced_objects
from hevcq.samples import make_sample_library
from hevcq.settings import Settings
from hevcq.store import S3Store
from hevcq.tfconfig import settings_from_outputs, write_env_file
from hevcq.worker import Worker, WorkerConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
config_app = typer.Typer(help="Settings helpers.", no_args_is_help=True)
app.add_typer(config_app, name="config")
console = Console(width=160)
log = structlog.get_logger()

EXIT_FAILED_JOBS = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _setup() -> tuple[Settings, dict[str, Pool]]:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    return settings, load_farm(settings.workers_dir)


def _fail(message: str, code: int = EXIT_CONFIG) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _cloud(settings: Settings, pools: dict[str, Pool]) -> tuple[Clients, FarmRefs]:

    clients = Clients.create(region=settings.region)
    region = clients.s3.meta.region_name or "us-east-1"
    return clients, resolve(clients, settings, pools, region)


Burst = Annotated[bool, typer.Option(help="Exit once the queue stays empty for one poll.")]


def _check_worker(settings: Settings, pools: dict[str, Pool], pool: str) -> None:
    if pool not in pools:
        raise ConfigError(f"unknown pool {pool!r}; known: {', '.join(sorted(pools))}")
    if settings.bucket is None:
        raise ConfigError("a worker needs a farm: set HEVCQ_BUCKET (or run `hevcq ingest`)")


@app.command()
def worker(
    pool: Annotated[str, typer.Option(help="The pool whose queue to consume.")],
    max_jobs: Annotated[int | None, typer.Option(help="Exit after this many messages.")] = None,
    burst: Burst = False,
    parent: Annotated[
        int | None, typer.Option(hidden=True, help="Exit when this process ends.")
    ] = None,
) -> None:
    """Consume one pool's queue (the container entrypoint)."""
    try:
        settings, pools = _setup()
        _check_worker(settings, pools, pool)
        clients, refs = _cloud(settings, pools)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if parent is not None:
        # The embedded farm's workers never outlive its ingest: the endpoint's own watch.
        die_with_parent(parent, threading.Event())
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    store = S3Store(clients.s3, refs.bucket)
    work_dir = settings.work_dir or Path(tempfile.gettempdir()) / "hevcq-work"
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(settings.ffmpeg), work_dir=work_dir, worker_id=worker_id,
        stall_timeout_s=settings.stall_timeout_s,
        decode_during_encode=settings.decode_during_encode,
    )  # fmt: skip
    pr = refs.pools[pool]
    config = WorkerConfig(
        worker_id=worker_id, bucket=refs.bucket, poll_wait_s=settings.poll_wait_s,
        lease_s=settings.lease_s or 2 * pools[pool].queue.visibility_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s, max_jobs=max_jobs,
        idle_exit_s=0.0 if burst else None,
    )  # fmt: skip
    agent = settings.ecs_agent_uri
    w = Worker(
        pool=pools[pool],
        queue=SqsQueue(clients.sqs, pr.queue_url, pr.dlq_url),
        ledger=DynamoLedger(clients.dynamodb, refs.ledger_table),
        runner=runner,
        store=store,
        publisher=SnsPublisher(clients.sns, refs.events_topic_arn),
        config=config,
        stop=stop,
        protection=EcsAgentProtection(agent) if agent else NoProtection(),
    )
    w.run()


def _need_farm(settings: Settings) -> None:
    if settings.embedded:
        raise ConfigError(
            "no farm configured (HEVCQ_BUCKET unset); the embedded farm lives only while "
            "`hevcq ingest` runs"
        )


def _configured() -> tuple[Settings, dict[str, Pool], Clients, FarmRefs]:
    try:
        settings, pools = _setup()
        farm = running_farm() if settings.embedded else None
        if farm is not None:
            console.print(
                f"No farm configured: using the embedded farm of the running ingest"
                f" (pid {farm.pid}, {farm.endpoint})."
            )
            os.environ.update(EMBEDDED_CREDENTIALS)
            clients = Clients.create(region=EMBEDDED_REGION, endpoint_url=farm.endpoint)
            return settings, pools, clients, farm.refs
        _need_farm(settings)
        clients, refs = _cloud(settings, pools)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    return settings, pools, clients, refs


@app.command()
def status(
    watch: Annotated[
        float | None, typer.Option(help="Refresh every this many seconds, until Ctrl-C.")
    ] = None,
) -> None:
    """Queue depths per pool, running jobs with progress, and totals per state."""

    _, _, clients, refs = _configured()
    if watch is None:
        _print_status(clients, refs)
        return
    try:
        while True:
            console.clear()
            _print_status(clients, refs)
            time.sleep(max(0.5, watch))
    except KeyboardInterrupt:
        return
    except HevcqError as exc:  # the farm went away (its ingest ended)
        raise _fail(f"the farm stopped answering: {exc}") from exc


def _print_status(clients: Clients, refs: FarmRefs) -> None:
    t = Table(title="queues")
    for col in ("pool", "visible", "in flight", "delayed", "dead letters"):
        t.add_column(col)
    for d in admin.queue_depths(clients.sqs, refs):
        t.add_row(d.pool, str(d.visible), str(d.in_flight), str(d.delayed), str(d.dead_letters))
    console.print(t)
    running, totals = admin.ledger_view(DynamoLedger(clients.dynamodb, refs.ledger_table))
    r = Table(title="running jobs")
    for col in ("key", "pool", "worker", "progress", "age"):
        r.add_column(col)
    for j in running:
        r.add_row(j.key, j.pool, j.worker, f"{j.progress:.0f}%", f"{j.age_s:.0f}s")
    console.print(r)
    s = Table(title="jobs by state")
    for col in ("pool", "state", "jobs"):
        s.add_column(col)
    for (pool, state), n in sorted(totals.items()):
        s.add_row(pool, state, str(n))
    console.print(s)


@app.command()
def dlq(pool: Annotated[str | None, typer.Option(help="Only this pool.")] = None) -> None:
    """List dead-letter messages with their failure class and reason."""

    _, _, clients, refs = _configured()
    t = Table(title="dead letters")
    for col in ("pool", "object", "class", "reason"):
        t.add_column(col)
    for name, pr in sorted(refs.pools.items()):
        if pool and name != pool:
            continue
        for m in admin.list_dead_letters(clients.sqs, pr.dlq_url):
            keys = ", ".join(o.key for o in announced_objects(m.body)) or "(unparseable message)"
            t.add_row(name, keys, m.failure_class, m.reason)
    console.print(t)


@app.command()
def redrive(
    dlq: Annotated[
        bool, typer.Option("--dlq", help="Move dead letters back to their queues.")
    ] = False,
    pool: Annotated[str | None, typer.Option(help="Only this pool.")] = None,
    failure_class: Annotated[
        FailureClass | None, typer.Option("--class", help="Only this class.")
    ] = None,
) -> None:
    """Send dead-lettered jobs back to their source queues."""
    if not dlq:
        raise _fail("say --dlq to move dead-letter messages back to their queues")
    settings, _, clients, refs = _configured()
    no_retry = Clients.create(region=settings.region, retries=1)
    moved = admin.redrive(clients.sqs, no_retry.sqs, refs, [pool] if pool else None, failure_class)
    for name, n in moved.items():
        console.print(f"{name}: {n if isinstance(n, str) else f'{n} messages moved'}")


@app.command()
def sample(dest: Annotated[Path, typer.Argument(help="Folder for the sample library.")]) -> None:
    """Generate a small sample library (the README's demo)."""

    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    files = make_sample_library(dest)
    console.print(f"Sample library with {len(files)} files in {dest}")


@config_app.command("from-terraform")
def from_terraform(
    tf_dir: Annotated[Path, typer.Option(help="The Terraform root module.")] = Path(
        "infra/terraform"
    ),
    path: Annotated[Path, typer.Option(help="Settings file to write.")] = Path(".hevcq.env"),
) -> None:
    """Write the settings file from ``terraform output -json``."""

    try:
        raw = subprocess.run(
            ["terraform", f"-chdir={tf_dir}", "output", "-json"],  # noqa: S607
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        raise _fail(f"cannot read terraform outputs: {exc}") from exc
    write_env_file(settings_from_outputs(json.loads(raw)), path)
    console.print(f"Wrote {path}")


# The library commands (ingest, estimate, calibrate, fetch, rollback, quarantine) register
# themselves on ``app``; they live in their own module to keep each one readable.
from hevcq import cli_library  # noqa: E402, F401


def main() -> None:
    """Entry point of the ``hevcq`` console script."""
    try:
        app()
    except HevcqError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(EXIT_CONFIG)
