"""``hevcq worker``: the container's entrypoint and the embedded farm's local workers.

It has a module of its own so that a worker, which starts often (every local worker of
every ingest, a restart after each crash, each new task in the cloud), imports this
command alone and none of the others (the web server, the library's round trip): 0.4 s
less at each start (``hevcq.cli.entry``).
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import structlog
import typer

from hevcq.cli.app import EXIT_FARM_MISCONFIGURED, app, fail, main, setup
from hevcq.cli.screen import on_hangup
from hevcq.errors import ConfigError, FarmConfigError
from hevcq.farm.workers import checked_ffmpeg, checked_work_dir, reach_worker
from hevcq.pools import Pool
from hevcq.procs import die_with_parent
from hevcq.settings import Settings

log = structlog.get_logger()

__all__ = ["main", "worker"]  # ``main`` runs the app with this command alone

Burst = Annotated[bool, typer.Option(help="Exit once the queues stay empty for one poll.")]


def _check_worker(settings: Settings, pools: dict[str, Pool], names: list[str]) -> None:
    for pool in names:
        if pool not in pools:
            raise ConfigError(f"unknown pool {pool!r}; known: {', '.join(sorted(pools))}")
    if len(set(names)) != len(names):
        raise ConfigError(f"a pool is named twice: {', '.join(names)}")
    if settings.bucket is None:
        raise ConfigError("a worker needs a farm: set HEVCQ_BUCKET (or run `hevcq ingest`)")
    checked_ffmpeg(settings, [pools[n] for n in names])
    checked_work_dir(settings)


@app.command(
    epilog="Example: hevcq worker --pool hevc --pool 720p   (needs HEVCQ_BUCKET; the "
    "container runs this)"
)
def worker(
    pool: Annotated[
        list[str] | None,
        typer.Option(
            help="A pool whose queue to consume; repeat it for several (the worker takes "
            "the next job by backlog and turn). Default: every pool."
        ),
    ] = None,
    max_jobs: Annotated[
        int | None, typer.Option(min=1, help="Exit after this many messages.")
    ] = None,
    burst: Burst = False,
    parent: Annotated[
        int | None, typer.Option(hidden=True, help="Exit when this process ends.")
    ] = None,
) -> None:
    """Consume the queues of one or more pools, one job at a time (the container entrypoint).

    Waits for an endpoint that is not up yet; exits 3 when the farm is misconfigured.
    """
    try:
        settings, pools = setup()
        names = pool or sorted(pools)
        _check_worker(settings, pools, names)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    on_hangup(stop.set)  # its terminal closed: stop as SIGTERM does
    if parent is not None:
        # The embedded farm's workers never outlive its ingest: the endpoint's own watch.
        die_with_parent(parent, threading.Event())
    try:
        w = reach_worker(settings, pools, names, stop=stop, max_jobs=max_jobs, burst=burst)
        if w is None:
            return  # stopped while waiting for the endpoint
        w.run()
    except FarmConfigError as exc:
        # One clear line, no traceback: the reason is the whole story.
        log.error("farm_misconfigured", reason=str(exc)[:1000], exit_code=EXIT_FARM_MISCONFIGURED)  # noqa: TRY400
        raise typer.Exit(EXIT_FARM_MISCONFIGURED) from exc
