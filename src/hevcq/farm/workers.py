"""``build_worker``: a worker built from settings, the one place that wires its collaborators.

The CLI's `hevcq worker` calls ``reach_worker``, which builds one ``Loop`` over the pools it
was given (``build_workers``); the embedded farm, tests and benchmarks can build a worker
in-process the same way.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from hevcq.aws.clients import Clients, classify
from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.provision import resolve
from hevcq.aws.s3 import S3Store
from hevcq.aws.sns import SnsPublisher
from hevcq.aws.sqs import SqsQueue, counts
from hevcq.errors import ConfigError
from hevcq.media.ffmpeg import FfmpegBuild, ffmpeg_build, find_ffmpeg
from hevcq.pools import Pool, primary_pool
from hevcq.private import scratch_dir
from hevcq.settings import Settings
from hevcq.topology import FarmRefs
from hevcq.worker.config import WorkerConfig
from hevcq.worker.loop import Loop, Worker
from hevcq.worker.outage import until_reachable
from hevcq.worker.protection import EcsAgentProtection, NoProtection, TaskProtection
from hevcq.worker.runner import JobRunner
from hevcq.worker.shared import CopyAtCommit, SharedEncode

log = structlog.get_logger()


def build_worker(
    settings: Settings,
    pool: Pool,
    *,
    clients: Clients,
    refs: FarmRefs,
    stop: threading.Event,
    max_jobs: int | None = None,
    burst: bool = False,
    farm: Mapping[str, Pool] | None = None,
    runner: JobRunner | None = None,
    protection: TaskProtection | None = None,
) -> Worker:
    """A worker for ``pool`` of the farm ``refs``; sweeps dead workers' scratch folders.

    With ``farm`` (every pool definition), a pool whose encode of a source is the primary
    pool's copies the primary's output instead of encoding (``hevcq.worker.shared``).
    Workers of one process share their ``runner`` (its scratch folder and ffmpeg) and
    their ``protection`` (the task's one scale-in protection, which the loop sets and each
    job renews).
    """
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    store = S3Store(clients.s3, refs.bucket)
    if runner is None:
        runner = _runner(settings, store, worker_id, checked_ffmpeg(settings, [pool]))
    pr = refs.pools[pool.name]
    config = WorkerConfig(
        worker_id=worker_id,
        bucket=refs.bucket,
        poll_wait_s=settings.poll_wait_s,
        lease_s=settings.lease_s or 2 * pool.queue.visibility_timeout_s,
        shutdown_grace_s=settings.shutdown_grace_s,
        max_jobs=max_jobs,
        idle_exit_s=0.0 if burst else None,
        progress_every_s=settings.progress_every_s,
    )
    ledger = DynamoLedger(clients.dynamodb, refs.ledger_table)
    primary = primary_pool((farm or {}).values())
    shared, copies = None, None
    publisher = SnsPublisher(clients.sns, refs.events_topic_arn)
    if primary is not None and primary.name != pool.name and primary.name in refs.pools:
        shared = SharedEncode(store, ledger, primary, pool)
    if primary is not None and primary.name == pool.name:
        renditions = tuple(p for n, p in sorted((farm or {}).items()) if n != pool.name)
        if renditions := tuple(p for p in renditions if p.name in refs.pools):
            copies = CopyAtCommit(store, ledger, publisher, pool, renditions, config.lease_s)
    return Worker(
        pool=pool,
        queue=SqsQueue(clients.sqs, pr.queue_url, pr.dlq_url),
        ledger=ledger,
        runner=runner,
        store=store,
        publisher=publisher,
        config=config,
        stop=stop,
        protection=protection or _protection(settings),
        classify=classify,
        shared=shared,
        copies=copies,
    )


def _protection(settings: Settings) -> TaskProtection:
    agent = settings.ecs_agent_uri
    return EcsAgentProtection(agent) if agent else NoProtection()


def usable_ffmpeg(settings: Settings, pools: Sequence[Pool]) -> FfmpegBuild:
    """The worker's ffmpeg when it has every encoder ``pools`` name; raises
    ``ConfigError`` (one line) when it does not. Says nothing: an ingest asks before its
    log is open, a worker through ``checked_ffmpeg``."""
    build = ffmpeg_build(find_ffmpeg(settings.ffmpeg))
    missing = build.missing(pools)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(missing[0] + more)
    return build


def checked_ffmpeg(settings: Settings, pools: Sequence[Pool]) -> FfmpegBuild:
    """The worker's ffmpeg, asked once at start whether it has every encoder ``pools``
    name (``usable_ffmpeg``): refusing to start beats failing every job of a pool after
    its download."""
    build = usable_ffmpeg(settings, pools)
    log.info("ffmpeg_found", path=build.path, version=build.version)
    return build


def checked_work_dir(settings: Settings) -> Path:
    """The worker's scratch folder (``HEVCQ_WORK_DIR``, made when missing, else the private
    default); raises ``ConfigError`` (one line) when it cannot be made or written: every
    job would fail after its download, and dead-letter a good source."""
    if settings.work_dir is None:
        return scratch_dir()
    path = settings.work_dir
    if path.exists() and not path.is_dir():
        raise ConfigError(f"HEVCQ_WORK_DIR={path}: a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"HEVCQ_WORK_DIR={path}: cannot make it: {reason}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"HEVCQ_WORK_DIR={path}: cannot write in it")
    return path


def _runner(settings: Settings, store: S3Store, worker_id: str, ffmpeg: FfmpegBuild) -> JobRunner:
    runner = JobRunner(
        store,
        ffmpeg=ffmpeg.path,
        ffmpeg_version=ffmpeg.version,
        work_dir=checked_work_dir(settings),
        worker_id=worker_id,
        stall_timeout_s=settings.stall_timeout_s,
        decode_during_encode=settings.decode_during_encode,
        threads=settings.encode_threads,
    )
    runner.sweep()
    return runner


def build_workers(
    settings: Settings,
    pools: Sequence[Pool],
    *,
    clients: Clients,
    refs: FarmRefs,
    stop: threading.Event,
    max_jobs: int | None = None,
    burst: bool = False,
    farm: Mapping[str, Pool] | None = None,
) -> Loop:
    """One process's loop over the queues of ``pools``: a ``Worker`` for each, sharing one
    runner, taking the next message by backlog and turn (``hevcq.worker.loop.Loop``)."""
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    ffmpeg = checked_ffmpeg(settings, pools)
    runner = _runner(settings, S3Store(clients.s3, refs.bucket), worker_id, ffmpeg)
    protection = _protection(settings)
    lanes = [
        build_worker(
            settings,
            pool,
            clients=clients,
            refs=refs,
            stop=stop,
            max_jobs=max_jobs,
            burst=burst,
            farm=farm,
            runner=runner,
            protection=protection,
        )
        for pool in pools
    ]

    def backlog(pool: Pool) -> int | None:
        return counts(clients.sqs, refs.pools[pool.name].queue_url).get(
            "ApproximateNumberOfMessages"
        )

    return Loop(lanes, backlog=backlog)


def reach_worker(
    settings: Settings,
    pools: dict[str, Pool],
    names: Sequence[str],
    *,
    stop: threading.Event,
    max_jobs: int | None = None,
    burst: bool = False,
) -> Loop | None:
    """A worker of the pools ``names`` for the configured farm, built once its endpoint
    answers (a worker may start before it); None when stopped first. A misconfigured farm
    raises ``FarmConfigError``."""

    def find() -> tuple[Clients, FarmRefs]:
        clients = Clients.create(region=settings.region)
        return clients, resolve(clients, settings, pools, clients.region)

    reached = until_reachable(find, stop, "resolving the farm", classify)
    if reached is None:
        return None
    clients, refs = reached
    return build_workers(
        settings,
        [pools[name] for name in names],
        clients=clients,
        refs=refs,
        stop=stop,
        max_jobs=max_jobs,
        burst=burst,
        farm=pools,
    )
