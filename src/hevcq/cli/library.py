"""The library commands: ingest, estimate, calibrate, fetch, rollback and quarantine."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.table import Table
from rich.text import Text

from hevcq import logs
from hevcq.cli.app import (
    EXIT_CANNOT_PLACE,
    EXIT_CONFIG,
    EXIT_FAILED_JOBS,
    EXIT_INTERRUPTED,
    EXIT_TIMED_OUT,
    a_folder,
    a_path,
    app,
    attach,
    configured,
    console,
    fail,
    more_than,
    notes,
    setup,
)
from hevcq.cli.live import LiveView
from hevcq.cli.report import (
    estimate_table,
    fetch_table,
    plan_tables,
    print_table,
    progress_for,
    summary_table,
)
from hevcq.cli.screen import on_hangup, shown
from hevcq.cores import free_memory, machine_cores, memory_note
from hevcq.errors import ConfigError
from hevcq.farm.client import Farm
from hevcq.farm.embedded import EmbeddedFarm, embedded_slots, farm_record, published_farm
from hevcq.farm.workers import checked_work_dir, usable_ffmpeg
from hevcq.keys import todo_key
from hevcq.library.calibrate import calibrate as measure
from hevcq.library.calibrate import load_speeds, save_speeds, speeds_path
from hevcq.library.catalog import Catalog, RunLock, library_id, state_folder
from hevcq.library.estimate import JobWork, TaskSize, job_work
from hevcq.library.estimate import estimate as estimate_cost
from hevcq.library.fetch import Fetcher, FetchOptions, fetch_library, find_library
from hevcq.library.quarantine import (
    DEFAULT_QUARANTINE,
    Conflict,
    OutputFolderUnusable,
    QuarantineEntry,
    held,
    list_quarantine,
    purge,
)
from hevcq.library.quarantine import rollback_entries as restore
from hevcq.library.results import Fetched, SourcePool
from hevcq.library.roundtrip import Control, IngestOptions, RoundTrip, run_round_trip
from hevcq.library.runs import new_run_folder
from hevcq.library.scan import ScanReport, nearest_existing, scan
from hevcq.library.summary import human_bytes, library_input
from hevcq.library.upload import parse_size, to_upload
from hevcq.library.walk import DEFAULT_EXCLUDES, DEFAULT_EXTENSIONS, ScanOptions, walk
from hevcq.media.decide import copiers_of
from hevcq.pools import Pool, choose_pools, primary_pool, replacing_pools
from hevcq.private import open_private
from hevcq.settings import Settings, state_dir
from hevcq.web import child as dashboard_child
from hevcq.worker.runner import scratch_need

log = structlog.get_logger()

quarantine_app = typer.Typer(
    help="Replaced originals kept for a while.",
    epilog="Example: hevcq quarantine list ~/Videos",
    no_args_is_help=True,
)
app.add_typer(quarantine_app, name="quarantine")


def _scan_options(
    *,
    include: list[str],
    exclude: list[str],
    ext: list[str],
    max_files: int | None,
    max_bytes: str | None,
    skip: Path,
    full_hash: bool,
    retry_failed: bool = False,
    replace_pools: frozenset[str] = frozenset(),
) -> ScanOptions:
    return ScanOptions(
        extensions=frozenset(ext) if ext else DEFAULT_EXTENSIONS,
        include=tuple(include),
        exclude=DEFAULT_EXCLUDES + tuple(exclude),
        max_files=max_files,
        max_bytes=parse_size(max_bytes) if max_bytes else None,
        skip_dirs=(skip,),
        full_hash=full_hash,
        retry_failed=retry_failed,
        replace_pools=replace_pools,
    )


Library = Annotated[Path, typer.Argument(parser=a_folder)]
Out = Annotated[Path, typer.Option(help="Where outputs are downloaded.", parser=a_path)]
DEFAULT_OUT = Path("hevcq-out")
Pools = Annotated[
    str | None,
    typer.Option(
        "--pools",
        help="The pools to use, comma separated (e.g. hevc,av1). Default: the farm's "
        "pools that are on by default.",
    ),
]
Include = Annotated[
    list[str], typer.Option("--include", help="Only paths matching this glob (repeatable).")
]
Exclude = Annotated[
    list[str], typer.Option("--exclude", help="Leave out paths matching this glob (repeatable).")
]


def _extensions(values: list[str]) -> list[str]:
    """``--ext`` values checked as they are read: an extension is a name, such as mp4 or .mkv."""
    for value in values:
        name = value.strip().lstrip(".")
        if not name or any(c in name for c in "/\\*?[]. "):
            raise typer.BadParameter(
                f"{value!r} is not a file extension; give one like mp4 or .mkv"
            )
    return values


Ext = Annotated[
    list[str],
    typer.Option(
        "--ext",
        help="Video extensions to scan (repeatable; default: the usual list).",
        callback=_extensions,
    ),
]
MaxFiles = Annotated[
    int | None, typer.Option(min=0, help="Send at most this many files in this run.")
]


def _a_size(value: str | None) -> str | None:
    """A size option checked as it is read: a bad one is a usage error, not a crash."""
    if value is not None:
        try:
            parse_size(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{exc}; give bytes or 700M, 50G, 1.5T") from exc
    return value


MaxBytes = Annotated[
    str | None,
    typer.Option(help="Send at most this much in this run (e.g. 50G).", callback=_a_size),
]
FullHash = Annotated[bool, typer.Option(help="Fingerprint whole files instead of samples.")]
AllowLarger = Annotated[bool, typer.Option(help="Accept outputs larger than their source.")]
KeepDays = Annotated[
    float,
    typer.Option(
        help="Days a replaced original stays in quarantine.",
        callback=more_than(0, at_least=True),
    ),
]
TargetVmaf = Annotated[
    float | None,
    typer.Option(
        min=1,
        max=100,
        help="For this run: search each file pool's CRF for this VMAF (e.g. 95), at most "
        "the pool's size limit (default 80 percent of the source); a file that cannot reach it "
        "keeps its original.",
    ),
]


def _dry_run(
    library: Path, pools: dict[str, Pool], options: ScanOptions, out: Path | None = None
) -> None:
    with Catalog.for_library(library) as state:
        report = scan(library, list(pools.values()), state, options, out_dir=out)
    for table in plan_tables(report):
        console.print(table)
    speeds, source = _speeds(pools)
    tasks = {name: TaskSize.of(p) for name, p in pools.items()}
    ladders = frozenset(name for name, p in pools.items() if p.ladder is not None)
    est = estimate_cost(report, speeds, task=tasks, ladders=ladders, pools=pools)
    console.print(estimate_table(est))
    console.print(Text(f"Speeds: {source}"))
    targets = [p for p in est.pools.values() if p.quality_vcpu_hours > 0]
    if targets:
        parts = ", ".join(
            f"{p.pool} {100 * p.quality_vcpu_hours / p.vcpu_hours:.0f} %" for p in targets
        )
        console.print(
            Text(
                f"Quality targets are counted: their CRF searches and scores are {parts} of"
                " the hours above (model figures, not calibrated)."
            )
        )


def _speeds(pools: dict[str, Pool]) -> tuple[dict[str, float], str]:
    path = speeds_path()
    speeds = load_speeds(path, pools)
    if speeds:
        return speeds, f"calibrated on this machine ({path}); others marked (default)"
    return {}, "documented defaults (run `hevcq calibrate` to measure this machine)"


@app.command(epilog="Example: hevcq ingest ~/Videos --out ~/Videos-hevc")
def ingest(
    library: Library,
    *,
    out: Out = DEFAULT_OUT,
    wait: Annotated[
        bool, typer.Option(help="Wait for results (always, on the embedded farm).")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Give up waiting after this many seconds.", callback=more_than(0)),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Scan and estimate; upload nothing.")] = False,
    pools_option: Pools = None,
    include: Include = [],  # noqa: B006 - typer reads the default, never mutates it
    exclude: Exclude = [],  # noqa: B006
    ext: Ext = [],  # noqa: B006
    max_files: MaxFiles = None,
    max_bytes: MaxBytes = None,
    full_hash: FullHash = False,
    replace: Annotated[
        bool, typer.Option(help="Embedded farm: hevc outputs replace the originals.")
    ] = False,
    allow_larger: AllowLarger = False,
    keep_days: KeepDays = 30.0,
    target_vmaf: TargetVmaf = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            help="Embedded farm: try again the pools whose job failed in an earlier run (a "
            "failure is final otherwise, until the file or the pool changes). A configured "
            "farm keeps its failed jobs in dead-letter queues: `hevcq redrive --dlq`."
        ),
    ] = False,
    dashboard: Annotated[
        bool,
        typer.Option(help="Embedded farm: serve the dashboard and the API on 127.0.0.1."),
    ] = True,
) -> None:
    """Scan a library, upload what needs work and (on the embedded farm) bring results back."""
    try:
        # A dry run is a report, as `estimate` is: no info lines on the terminal.
        settings, farm = setup(quiet=dry_run)
        pools = choose_pools(farm, pools_option)
        if target_vmaf is not None:
            pools = {name: p.with_target(target_vmaf) for name, p in pools.items()}
        scan_opts = _scan_options(
            include=include,
            exclude=exclude,
            ext=ext,
            max_files=max_files,
            max_bytes=max_bytes,
            skip=out,
            full_hash=full_hash,
            retry_failed=retry_failed,
            replace_pools=replacing_pools(pools.values()) if replace else frozenset(),
        )
        brings_home = wait or settings.embedded
        checks_before_a_run(
            library,
            out,
            pools,
            scan_opts,
            settings,
            brings_home=brings_home,
            replace=replace,
            dry_run=dry_run,
        )
        if dry_run:
            _dry_run(library, pools, scan_opts, out if brings_home else None)
            return
        if settings.embedded:
            scratch = local_scratch(settings)
        opts = IngestOptions(
            scan=scan_opts,
            out_dir=out,
            wait=wait or settings.embedded,
            fresh_farm=settings.embedded,
            replace=replace,
            allow_larger=allow_larger,
            keep_days=keep_days,
            timeout_s=timeout,
            target_vmaf=target_vmaf,
        )
        control = _interruptible()
        held = RunLock.take(library, "hevcq ingest") if opts.wait else contextlib.nullcontext()
        with held, Catalog.for_library(library) as state:
            if settings.embedded:
                rt = _embedded_round_trip(
                    settings,
                    pools,
                    library,
                    state,
                    opts,
                    control=control,
                    dashboard=dashboard,
                    farm_pools=farm,
                    scratch=scratch,
                )
            else:
                rt = run_round_trip(
                    attach(settings, pools),
                    pools,
                    library,
                    state=state,
                    options=opts,
                    progress=progress_for(console),
                    on_scanned=_scanned(opts.wait),
                    control=control,
                )
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    if opts.wait:
        rows = rt.rows(sorted(pools))
        print_table(summary_table(rows, console.width), console)
        files, video = library_input(rows)
        if files:
            console.print(
                Text(
                    f"{files} files, {human_bytes(video)} of video in; each pool's total says what"
                    " that pool saved (a file counts once in each pool)."
                )
            )
        _say_what_is_left(rt, out, library)
        if rt.halted:
            notes.print(Text.assemble(("error: ", "red"), rt.halted))
    else:
        sent = sum(u.sent for u in rt.uploads)
        console.print(
            f"Uploaded {sent} files; `hevcq status` shows progress, `hevcq fetch` brings results."
        )
    raise typer.Exit(exit_code(rt))


def exit_code(rt: RoundTrip) -> int:
    """0, or what stopped the run short: no room for outputs, an interrupt, the timeout,
    failed jobs (README)."""
    if rt.halted:
        return EXIT_CONFIG if rt.halted_by_workers else EXIT_CANNOT_PLACE
    if rt.interrupted:
        return EXIT_INTERRUPTED
    if rt.timed_out:
        return EXIT_TIMED_OUT
    return EXIT_FAILED_JOBS if rt.failed else 0


def outputs_stay_out_of(library: Path, out: Path, pools: Iterable[str]) -> None:
    """Refuse an --out whose pool folders would be inside the library itself: the library
    (outputs beside the sources) or one pool's folder of it. The next scan would take
    the outputs for sources and make a 720p of the 1080p output. An --out inside the
    library is fine: the scan leaves it out."""
    lib, o = library.resolve(), out.resolve()
    if lib == o:
        why = "is the library itself"
    elif any(lib == o / p or o / p in lib.parents for p in pools):
        why = "holds the library in one of its pool folders"
    else:
        return
    raise ConfigError(
        f"--out {out} {why}: outputs would be scanned as sources next time; give a folder "
        "outside the library, or a new one inside it (the default is ./hevcq-out)"
    )


def checks_before_a_run(
    library: Path,
    out: Path,
    pools: dict[str, Pool],
    options: ScanOptions,
    settings: Settings,
    *,
    brings_home: bool,
    replace: bool,
    dry_run: bool,
) -> None:
    """Every mistake that would stop an ingest at once, as a one-line ``ConfigError``.

    A dry run (and ``estimate``) makes them all too, so that a run it reports as fine does
    not stop at once on a mistake it could have named; none of them writes, and the
    scratch folder, which the run makes, a dry run only checks could be made.
    """
    outputs_stay_out_of(library, out, pools)
    preflight(library, out if brings_home else None, options, try_write=not dry_run)
    _check_replace(replace, settings)
    if settings.embedded:
        # The local workers would refuse to start, each time they are restarted.
        usable_ffmpeg(settings, list(pools.values()))
        if dry_run:
            work_dir_could_be_made(settings)


def preflight(
    library: Path, out: Path | None, options: ScanOptions, *, try_write: bool = False
) -> None:
    """Mistakes that would waste a farm's start-up, as one-line errors. ``try_write``:
    ``--out`` is also tried with a write that leaves nothing (``refuses_writes``)."""
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; give a folder")
        parent = nearest_existing(out)
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out}: cannot write in {parent}")
        refused = refuses_writes(parent) if try_write else None
        if refused is not None:
            raise ConfigError(f"--out {out}: cannot write in {parent} ({refused})")
    candidates, problems = walk(library, options)
    if candidates:
        return
    exts = ", ".join(sorted(options.extensions))
    why = "is empty" if not any(library.iterdir()) else f"holds no videos ({exts})"
    chosen = _chosen_by(options)
    if (
        chosen
        and walk(library, dataclasses.replace(options, include=(), exclude=DEFAULT_EXCLUDES))[0]
    ):
        why = f"holds videos, but none that {chosen}"
    if problems:
        why += f"; {len(problems)} paths could not be read"
    raise ConfigError(f"{library} {why}")


def refuses_writes(folder: Path) -> str | None:
    """Why ``folder`` takes no new entry, found by making one and removing it (None: it
    takes them). Its mode bits can say yes where the write is refused: a NAS share that
    maps root to nobody, a read-only bind mount, a kernel file system. The run then
    encoded the whole library and could place none of it."""
    try:
        made = tempfile.mkdtemp(prefix=".hevcq-write-test-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    with contextlib.suppress(OSError):
        Path(made).rmdir()
    return None


def _chosen_by(options: ScanOptions) -> str:
    """The run's own --include and --exclude, as words for an error ("" when none)."""
    parts = [f"matches --include {_globs(options.include)}"] if options.include else []
    own = options.exclude[len(DEFAULT_EXCLUDES) :]
    if own:
        parts.append(f"is left after --exclude {_globs(own)}")
    return " and ".join(parts)


def _globs(patterns: tuple[str, ...]) -> str:
    return ", ".join(shlex.quote(p) for p in patterns)


def _nothing_left(report: ScanReport) -> str:
    """Why a run had nothing to encode, in counts of files (pure)."""
    finished = len(report.with_status("finished"))
    skipped = len(report.with_status("skip"))
    parts = [f"{finished} {_files(finished)} finished in earlier runs"] if finished else []
    if skipped:
        need = "needs" if skipped == 1 else "need"
        parts.append(f"{skipped} {_files(skipped)} {need} no work (the summary says why)")
    return ", ".join(parts) or "no file needs work"


def _files(n: int) -> str:
    return "file" if n == 1 else "files"


def _say_what_is_left(rt: RoundTrip, out: Path, library: Path) -> None:
    if rt.encoded_nothing and not rt.interrupted:
        console.print(Text(f"Nothing to encode: {_nothing_left(rt.report)}."))
    replaced = sum(1 for f in rt.fetched.values() if f.action == "replaced")
    if replaced:
        one = replaced == 1
        what = "original" if one else "originals"
        they, them = ("it stays", "puts it") if one else ("they stay", "puts them")
        where = shlex.quote(str(library))
        console.print(
            Text(
                f"{replaced} {what} replaced in {library}; {they} in its quarantine"
                f" (`hevcq quarantine list {where}`), and"
                f" `hevcq rollback --all --library {where}` {them} back."
            )
        )
    if out.is_dir():
        console.print(Text(f"Outputs are in {out.resolve()}"))
    elif not replaced:
        console.print(Text(f"No outputs: {out.resolve()} was not created."))
    if rt.halted or rt.interrupted or rt.timed_out:
        why = "Stopped" if rt.halted else "Interrupted" if rt.interrupted else "Timed out"
        console.print(
            Text(
                f"{why}: {len(rt.lost)} jobs were in the farm, {len(rt.not_started)} files not"
                f" started. Resume with: {shlex.join(_resume_command())}"
            )
        )


def _resume_command() -> list[str]:
    """The command line of this run (the same command resumes it)."""
    return ["hevcq", *sys.argv[1:]]


def _check_replace(replace: bool, settings: Settings) -> None:
    if replace and not settings.embedded:
        raise ConfigError(
            "--replace on ingest is for the embedded farm; use `hevcq fetch --replace`"
        )


def _scanned(summary_follows: bool) -> Callable[[ScanReport], None]:
    """Say what the scan found; its problems too unless the summary table lists them."""

    def show(report: ScanReport) -> None:
        files, bad = len(report.entries) + len(report.problems), len(report.problems)
        touched = (
            f", {report.touched_kept} of them touched since but unchanged"
            if report.touched_kept
            else ""
        )
        console.print(
            f"Scanned {files} {'file' if files == 1 else 'files'} ({report.reused} known"
            f"{touched}, {report.probed} probed) in {report.elapsed_s:.1f} s;"
            f" {len(report.to_send)} to upload, {bad} {'problem' if bad == 1 else 'problems'}."
        )
        if not summary_follows:
            for p in report.problems:
                console.print(Text.assemble((p.kind, "red"), f" {p.rel}: {p.reason}"))

    return show


def _interruptible() -> Control:
    """Ctrl-C or SIGTERM: take no new work and finish what runs; a second one: stop now.

    A hangup (the terminal closed, an ssh session dropped) stops it as the first Ctrl-C
    does, however often it comes: the jobs that run finish and come home, the farm shuts
    down in order, and the next run does the rest. Nobody is left to press Ctrl-C again.
    """
    control = Control()

    def on_signal(*_: object) -> None:
        if control.draining.is_set():
            console.print("Stopping now: running jobs are abandoned.")
        else:
            console.print(
                "Stopping: no new work; running jobs finish and come home"
                " (Ctrl-C again stops them now)."
            )
        control.interrupt()

    def hung_up() -> None:
        # Written by a thread of its own: this handler may have interrupted the main thread
        # in the middle of a log line, whose lock is not re-entrant.
        threading.Thread(
            target=log.warning,
            args=("terminal_hung_up",),
            kwargs={"then": "no new work; running jobs finish and come home"},
            daemon=True,
        ).start()
        if not control.draining.is_set():
            on_signal()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    on_hangup(hung_up)
    return control


def _embedded_round_trip(
    settings: Settings,
    pools: dict[str, Pool],
    library: Path,
    state: Catalog,
    opts: IngestOptions,
    *,
    control: Control,
    dashboard: bool,
    farm_pools: dict[str, Pool],
    scratch: Path,
) -> RoundTrip:
    """The round trip on a fresh embedded farm of ``farm_pools`` (every pool has its
    queue, so any worker finds the farm whole), encoding for the chosen ``pools``; its
    workers' scratch space is on ``scratch``'s disk (``local_scratch``)."""
    console.print("No farm configured: running the embedded local farm on this machine.")
    farm_dir = new_run_folder(state_dir(), settings.runs_kept)
    with _logging_to(farm_dir / "logs" / "ingest.log", settings):
        report = scan(library, list(pools.values()), state, opts.scan, out_dir=opts.home, move=True)
        _scanned(True)(report)
        # Only pools with work get queues and workers: a changed pool file re-does that pool.
        todo = to_upload(report, fresh_farm=True)
        needed = sorted({p for e in todo for p in e.pools_pending})
        if not needed or control.draining.is_set():
            return RoundTrip(report, interrupted=control.draining.is_set(), not_started=list(todo))
        free = shutil.disk_usage(scratch).free
        short = scratch_problem([(e.rel, e.size) for e in todo], free, scratch)
        if short:
            raise ConfigError(short)
        console.print(Text(f"Logs: {farm_dir / 'logs'}"))
        cores, memory = machine_cores(), free_memory()
        slots = embedded_slots(settings, cores, memory)
        note = None if settings.slots else memory_note(cores, memory)
        if note:
            console.print(Text(note))
        window = settings.window or 2 * max(slots, len(needed))
        opts = dataclasses.replace(opts, window=window)
        jobs = sum(len(e.pools_pending) for e in todo)
        speeds, primary = _speeds(pools)[0], primary_pool(farm_pools.values())
        work = {
            (e.upload_key or todo_key(e.rel), p): job_work(e, pools[p], speeds, primary)
            for e in todo
            for p in e.pools_pending
            if p in pools
        }
        with EmbeddedFarm(settings, farm_pools, farm_dir, slots, worker_pools=needed) as farm:
            port = settings.dashboard_port if dashboard else None
            return _on_farm(
                farm,
                pools,
                library,
                state,
                opts=opts,
                report=report,
                control=control,
                jobs=jobs,
                work=work,
                dashboard_port=port,
            )


def local_scratch(settings: Settings) -> Path:
    """Where the embedded farm's workers keep their scratch space: ``HEVCQ_WORK_DIR``,
    checked (one line when unusable), else the temporary folder their private folders go
    into (``private.scratch_dir``, which each worker makes itself)."""
    if settings.work_dir is not None:
        return checked_work_dir(settings)
    return Path(tempfile.gettempdir())


def work_dir_could_be_made(settings: Settings) -> None:
    """``local_scratch``'s check without making anything (a dry run writes nothing):
    ``HEVCQ_WORK_DIR`` is a folder, or could be made, in a folder this user may write."""
    path = settings.work_dir
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ConfigError(f"HEVCQ_WORK_DIR={path}: a file, not a folder")
    nearest = nearest_existing(path)
    if not nearest.is_dir():
        raise ConfigError(f"HEVCQ_WORK_DIR={path}: cannot make it: {nearest} is not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        where = "in it" if nearest == path.absolute() else f"in {nearest}"
        raise ConfigError(f"HEVCQ_WORK_DIR={path}: cannot write {where}")


def scratch_problem(sources: Iterable[tuple[str, int]], free: int, work_dir: Path) -> str | None:
    """Why some of ``sources`` (name, bytes) could never run on the embedded farm, whose
    workers share the one scratch folder ``work_dir`` with ``free`` bytes free; None when
    the largest fits (pure). A worker gives back a job its disk cannot hold, for another
    worker to take: here there is no other, and the run would wait for ever."""
    needs = ((scratch_need(size), name) for name, size in sources)
    short = sorted((need, name) for need, name in needs if need > free)
    if not short:
        return None
    need, name = short[-1]
    many = len(short) > 1
    return (f"{len(short)} files need" if many else "1 file needs") + (
        f" more scratch space than {work_dir} has free ({human_bytes(free)}): {name} needs "
        f"{human_bytes(need)}; set HEVCQ_WORK_DIR to a folder on a larger disk, or leave "
        f"{'them' if many else 'it'} out with --exclude"
    )


def _on_farm(
    farm: EmbeddedFarm,
    pools: dict[str, Pool],
    library: Path,
    state: Catalog,
    *,
    opts: IngestOptions,
    report: ScanReport,
    control: Control,
    jobs: int,
    work: dict[tuple[str, str], JobWork | None],
    dashboard_port: int | None,
) -> RoundTrip:
    if farm.clients is None or farm.refs is None:
        raise ConfigError("the embedded farm did not start")
    with (
        published_farm(farm.endpoint, farm.refs, farm.credentials),
        _dashboard(farm, dashboard_port) as dashboard_tick,
    ):
        client = Farm.embedded(farm.endpoint, farm.refs, farm.credentials)
        view = LiveView(console, client.running, jobs, work)
        workers = farm.workers

        def tick(in_flight: list[SourcePool]) -> None:
            if workers is not None:
                workers.supervise()
            dashboard_tick()
            view.tick(in_flight)

        try:
            return run_round_trip(
                client,
                pools,
                library,
                state=state,
                options=opts,
                progress=view,
                on_tick=tick,
                on_result=view.result,
                control=control,
                report=report,
            )
        finally:
            if control.stop.is_set() and workers is not None:
                workers.stop(grace_s=0)


@contextlib.contextmanager
def _dashboard(farm: EmbeddedFarm, port: int | None) -> Iterator[Callable[[], None]]:
    """The dashboard beside the farm while it runs (none when ``port`` is None); yields a
    tick that prints its address once it answers, or one warning line if it cannot."""
    if port is None or farm.refs is None:
        yield lambda: None
        return
    log_path = farm.state_dir / "logs" / "dashboard.log"
    try:
        dash = dashboard_child.start(
            farm_record(farm.endpoint, farm.refs, farm.credentials), port, log_path
        )
    except dashboard_child.DashboardError as exc:
        console.print(Text.assemble(("warning: ", "yellow"), f"the dashboard did not start: {exc}"))
        yield lambda: None
        return

    def tick() -> None:
        notice = dash.poll()
        if notice is not None:
            style = "yellow" if notice.warning else ""
            console.print(
                Text.assemble(("warning: " if notice.warning else "", style), notice.text)
            )

    try:
        yield tick
    finally:
        dash.stop()


@contextlib.contextmanager
def _logging_to(path: Path, settings: Settings) -> Iterator[None]:
    """The run's log lines go to its folder (none tear the live view); back to stderr after."""
    with open_private(path, "a") as f:
        logs.configure("json", settings.log_level, file=f)
        try:
            yield
        finally:
            logs.configure(settings.log_format, settings.log_level)


@app.command(epilog="Example: hevcq estimate ~/Videos --max-bytes 50G")
def estimate(
    library: Library,
    *,
    out: Out = DEFAULT_OUT,
    pools_option: Pools = None,
    include: Include = [],  # noqa: B006
    exclude: Exclude = [],  # noqa: B006
    ext: Ext = [],  # noqa: B006
    max_files: MaxFiles = None,
    max_bytes: MaxBytes = None,
) -> None:
    """Same as `hevcq ingest DIR --dry-run`: what would be sent, and what it would cost."""
    try:
        settings, farm = setup(quiet=True)
        pools = choose_pools(farm, pools_option)
        opts = _scan_options(
            include=include,
            exclude=exclude,
            ext=ext,
            max_files=max_files,
            max_bytes=max_bytes,
            skip=out,
            full_hash=False,
        )
        # As `ingest --dry-run` checks and plans: a file counts as finished only while its
        # output is in --out, where the embedded farm would bring it home.
        checks_before_a_run(
            library,
            out,
            pools,
            opts,
            settings,
            brings_home=settings.embedded,
            replace=False,
            dry_run=True,
        )
        _dry_run(library, pools, opts, out if settings.embedded else None)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


@app.command(epilog="Example: hevcq calibrate")
def calibrate(
    seconds: Annotated[
        float,
        typer.Option(
            help="Seconds of test video encoded per pool (0.5 to 600).",
            callback=more_than(0.5, at_least=True),
            max=600,
        ),
    ] = 2.0,
) -> None:
    """Measure each pool's encode speed on this machine (a short real encode) for estimates."""
    settings, pools = setup()
    path = speeds_path()
    try:
        state_folder(path.parent)  # before the encodes, not after them
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    speeds = measure(pools, seconds=seconds, ffmpeg=settings.ffmpeg)
    try:
        save_speeds(path, speeds, pools)
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror or exc}") from exc
    for name, speed in sorted(speeds.items()):
        console.print(Text(f"{name}: {speed:.3g} s of video per second per vCPU"))
    console.print(Text(f"Saved to {path}"))


def _stop_on_signals() -> threading.Event:
    """Ctrl-C, SIGTERM or a hangup: finish the result in hand, then stop."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    on_hangup(stop.set)
    return stop


def _primary(pools: dict[str, Pool]) -> str | None:
    """The pool whose outputs other pools' workers may copy."""
    primary = primary_pool(pools.values())
    return primary.name if primary else None


def _replacing(pools: dict[str, Pool], chosen: list[str], replace: bool) -> frozenset[str]:
    """The chosen pools whose outputs replace originals."""
    unknown = sorted(set(chosen) - set(pools))
    if unknown:
        raise ConfigError(
            f"unknown pool(s) {', '.join(unknown)}; known: {', '.join(sorted(pools))}"
        )
    keep = replacing_pools(pools[p] for p in chosen) if replace else frozenset()
    if replace and not keep:
        raise ConfigError("--replace needs a pool whose output keeps the source's size (e.g. hevc)")
    return keep


@app.command(epilog="Example: hevcq fetch ~/Videos --pool hevc --out ~/Videos-hevc --follow")
def fetch(
    library: Library,
    *,
    pool: Annotated[
        list[str], typer.Option("--pool", help="Pool whose results to take (repeatable).")
    ],
    replace: Annotated[
        bool, typer.Option(help="Swap outputs in place of the originals (quarantined).")
    ] = False,
    out: Annotated[
        Path, typer.Option(help="Where outputs go when not replacing.", parser=a_path)
    ] = Path("hevcq-out"),
    follow: Annotated[
        bool, typer.Option(help="Keep fetching as results arrive, until Ctrl-C.")
    ] = False,
    allow_larger: AllowLarger = False,
    keep_days: KeepDays = 30.0,
    cleanup: Annotated[bool, typer.Option(help="Delete a job's objects once it is home.")] = True,
) -> None:
    """Take results from the results queue: verify each output, then place it or swap it in."""
    _, pools, farm = configured(takes_results=True)
    try:
        outputs_stay_out_of(library, out, pools)
        options = FetchOptions(
            pools=frozenset(pool),
            out_dir=out,
            replace=_replacing(pools, pool, replace),
            allow_larger=allow_larger,
            keep_days=keep_days,
            cleanup=cleanup,
            primary=_primary(pools),
            copiers=copiers_of(primary_pool(pools.values()), pools.values()),
        )
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    stop = _stop_on_signals()

    def show(f: Fetched) -> None:
        console.print(Text(f"{f.rel} [{f.pool}]: {f.action} {f.reason or f.path or ''}"))

    try:
        held = RunLock.take(library, "hevcq fetch")
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    with held, Catalog.for_library(library) as state:
        fetcher = Fetcher(
            library,
            state,
            farm.store,
            farm.ledger,
            options,
            all_pools=sorted(pools),
            library=library_id(library),
        )
        inbox = farm.results_inbox()
        try:
            items = fetch_library(
                inbox, fetcher, follow=follow, stop=stop, on_item=show if follow else None
            )
        except OutputFolderUnusable as exc:
            raise fail(str(exc), EXIT_CANNOT_PLACE) from exc
    console.print(fetch_table(items))
    if any(not f.ok for f in items):
        raise typer.Exit(EXIT_FAILED_JOBS)


@app.command(epilog="Example: hevcq rollback ~/Videos/trip/IMG_0042.MOV")
def rollback(
    path: Annotated[
        Path | None, typer.Argument(help="A replaced file (original or new name).", parser=a_path)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every original in the quarantine.")] = False,
    library: Annotated[
        Path | None, typer.Option(help="The library (default: found from PATH).", parser=a_path)
    ] = None,
) -> None:
    """Put replaced originals back from the quarantine."""

    if (path is None) == (not all_):
        raise fail("give a PATH or --all")
    found = library or (find_library(path) if path is not None else Path.cwd())
    if found is None:
        raise fail(f"no library quarantine found above {path}; say --library")
    # The ingest names originals by the library's resolved path: a relative --library
    # (or one through a symlink) must name them the same way to mark them rolled back.
    root = found.resolve()
    logs.configure(level="error")  # what was and was not restored is the output
    if not (root / DEFAULT_QUARANTINE).is_dir():
        console.print(Text(_no_quarantine(root)))
        return
    target = None if all_ else path
    if not held(root / DEFAULT_QUARANTINE, target):
        what = "it is empty" if target is None else f"it holds no original of {target}"
        console.print(Text(f"Nothing to roll back from the quarantine of {root}: {what}."))
        return
    try:
        lock = RunLock.take(root, "hevcq rollback")
    except ConfigError as exc:  # an ingest could be swapping the same file in right now
        raise fail(str(exc)) from exc
    conflicts: list[Conflict] = []
    with lock:
        restored = restore(root / DEFAULT_QUARANTINE, target, conflicts)
        _remember_rollbacks(root, restored)
    for e in restored:
        console.print(Text(f"restored {e.original}"))
    for c in conflicts:
        kept = f"; the original stays at {c.kept_in}" if c.kept_in is not None else ""
        notes.print(Text(f"not restored: {c.original}: {c.reason}{kept}"))
    if conflicts:
        # Exit 1, as a run with failed jobs: something asked for did not happen.
        raise typer.Exit(EXIT_FAILED_JOBS)


def _remember_rollbacks(root: Path, restored: list[QuarantineEntry]) -> None:
    """Mark each original put back, so that no later --replace swaps it out again while it
    is that same file (a person chose it over its replacement), with its whole-file hash
    when the swap knew it (touched or synced since, it is still that file)."""
    with Catalog.for_library(root) as state:
        for entry in restored:
            path = entry.original
            try:
                rel = path.resolve().relative_to(root).as_posix()
            except ValueError:
                notes.print(Text(f"warning: {path} was put back, outside the library {root}"))
                continue
            try:
                st = path.stat()
                back = (st.st_size, st.st_ino) == (entry.original_size, entry.original_inode)
                state.record_rollback(rel, st, entry.original_hash if back else None)
            except OSError as exc:  # moved or removed at once
                why = exc.strerror or exc
                notes.print(Text(f"warning: {path} was put back but not marked so: {why}"))


QuarantineDir = Annotated[Path, typer.Argument(help="The library.", parser=a_folder)]


@quarantine_app.command("list", epilog="Example: hevcq quarantine list ~/Videos")
def quarantine_list(library: QuarantineDir = Path()) -> None:
    """Originals in the quarantine, with their state and keep-until date."""

    if not (library / DEFAULT_QUARANTINE).is_dir():
        console.print(Text(_no_quarantine(library)))
        return
    t = Table(title=Text(f"quarantine of {library.resolve()}"))
    for col in ("id", "state", "original", "replaced by", "keep until"):
        t.add_column(col)
    root = library.absolute()
    for e in list_quarantine(library / DEFAULT_QUARANTINE):
        orig, final = (
            str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
            for p in (e.original, e.final)
        )
        t.add_row(shown(e.id), e.state, shown(orig), shown(final), f"{e.keep_until:%Y-%m-%d %H:%M}")
    console.print(t)


def _no_quarantine(library: Path) -> str:
    return (
        f"No quarantine in {library.resolve()}: nothing was replaced there. Give the"
        " library's own folder (the one `hevcq ingest --replace` was given)."
    )


@quarantine_app.command("purge", epilog="Example: hevcq quarantine purge ~/Videos")
def quarantine_purge(library: QuarantineDir = Path()) -> None:
    """Delete quarantined originals whose keep time has passed."""

    if not (library / DEFAULT_QUARANTINE).is_dir():
        console.print(Text(_no_quarantine(library)))
        return
    logs.configure(level="warning")  # what was purged is the output, not log lines
    gone = purge(library / DEFAULT_QUARANTINE, datetime.now(UTC))
    for p in gone:
        console.print(Text(f"purged the original of {p}"))
    console.print(f"{len(gone)} originals purged")
