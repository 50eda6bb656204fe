"""What every ``hevcq`` command shares: the typer app, the console, exit codes, setup."""

from __future__ import annotations

import errno
import math
import os
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import structlog
import typer
from rich.text import Text

from hevcq import __version__, logs
from hevcq.cli.screen import SafeConsole
from hevcq.errors import ConfigError, FarmConfigError, HevcqError
from hevcq.farm.client import Farm
from hevcq.farm.embedded import RunningFarm, running_farm
from hevcq.media.ffmpeg import ffmpeg_build, find_ffmpeg
from hevcq.pools import Pool, load_farm
from hevcq.procs import bound_malloc
from hevcq.settings import Settings, load_settings, state_dir

HELP = "Re-encode a video library or an app's uploads to HEVC, on this machine or in AWS."

app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    help=HELP,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"hevcq {__version__}")
        print(ffmpeg_line())
        raise typer.Exit


def ffmpeg_line() -> str:
    """Which ffmpeg this machine's workers would run, as one line (never an error)."""
    try:
        # The settings' ffmpeg (environment or settings file), as the workers resolve it.
        build = ffmpeg_build(find_ffmpeg(load_settings(os.environ).ffmpeg))
    except ConfigError as exc:
        return f"ffmpeg: none usable ({exc})"
    return f"ffmpeg {build.version} ({build.path})"


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options of the hevcq command itself."""


def more_than(low: float, *, at_least: bool = False) -> Callable[[float | None], float | None]:
    """A number option's check, made as it is read: a bad value is a usage error naming the
    option. It also refuses ``nan`` and ``inf``, which pass click's own range checks (every
    comparison with ``nan`` is false)."""
    bound = f"of at least {low:g}" if at_least else f"above {low:g}"

    def check(value: float | None) -> float | None:
        if value is None:
            return None
        if not math.isfinite(value) or value < low or (value == low and not at_least):
            raise typer.BadParameter(f"{value:g}: give a number {bound}")
        return value

    return check


def a_path(value: str | Path) -> Path:
    """A path option's or argument's value, made as it is read (``parser=a_path``). An
    empty one is refused: ``Path("")`` is the current folder, so ``--out "$OUT"`` with OUT
    unset wrote every output into the folder the command ran in."""
    if isinstance(value, str) and not value:
        raise typer.BadParameter("an empty path; give one")
    return Path(value)


def a_folder(value: str | Path) -> Path:
    """An existing folder, absolute (``parser=a_folder``): not empty, not a file, and not
    something that is neither (``/dev/null``, a FIFO), which click's own checks let by."""
    path = a_path(value)
    try:
        path.stat()
    except FileNotFoundError:
        raise typer.BadParameter(f"'{path}' does not exist") from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot read '{path}': {exc.strerror or exc}") from None
    if not path.is_dir():
        raise typer.BadParameter(f"'{path}' is not a folder")
    return path.resolve()


config_app = typer.Typer(
    help="Settings helpers.",
    epilog="Example: hevcq config from-terraform --tf-dir infra/terraform",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


def _console(*, stderr: bool = False) -> SafeConsole:
    """A console for people: on a terminal it fits the terminal; off one (a pipe, a file)
    lines never wrap, so each result stays one line for grep and for a log reader."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return SafeConsole(stderr=stderr, width=UNWRAPPED_WIDTH if wide else None)


UNWRAPPED_WIDTH = 100_000
console = _console()
# Notes about how a command runs, kept off stdout so `--json` output stays JSON.
notes = _console(stderr=True)
log = structlog.get_logger()

# Exit codes (README, "Exit codes"): 1 is only ever failed jobs.
EXIT_FAILED_JOBS = 1
EXIT_CONFIG = 2  # a mistake in the command line, the settings or the library
EXIT_FARM_MISCONFIGURED = 3  # credentials refused or the farm's resources missing
EXIT_INTERNAL = 4  # a bug: one line on the terminal, the traceback in the log
EXIT_TIMED_OUT = 5  # --timeout passed with jobs still in the farm
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_CANNOT_PLACE = 6  # an output folder is full, read-only or not writable: stopped at once


def setup(*, quiet: bool = False) -> tuple[Settings, dict[str, Pool]]:
    """Settings, logging and the pools; ``quiet`` keeps info lines out of a report's output."""
    settings = load_settings(os.environ)
    level = "warning" if quiet and settings.log_level == "info" else settings.log_level
    logs.configure(settings.log_format, level)
    return settings, load_farm(settings.workers_dir)


def fail(message: str, code: int = EXIT_CONFIG) -> typer.Exit:
    """Say what is wrong in one line, on stderr, and end with ``code``."""
    notes.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(code)


def attach(settings: Settings, pools: dict[str, Pool]) -> Farm:
    """The configured farm for a command a person runs: a set-up mistake (no region, no
    credentials, the endpoint unreachable, resources missing) is one line and exit 3."""
    try:
        return Farm.configured(settings, pools)
    except FarmConfigError as exc:
        raise fail(str(exc), EXIT_FARM_MISCONFIGURED) from exc


def need_farm(settings: Settings) -> None:
    if settings.embedded:
        raise ConfigError(
            "no farm configured (HEVCQ_BUCKET unset); the embedded farm lives only while "
            "`hevcq ingest` runs"
        )


def leave_results_to_ingest(farm: RunningFarm | None) -> None:
    """The embedded farm's results belong to the ingest that runs it: refuse to take them."""
    if farm is not None:
        raise ConfigError(
            f"the running ingest (pid {farm.pid}) brings the embedded farm's results home"
            " itself; fetch is for a configured farm (HEVCQ_BUCKET)"
        )


def configured(*, takes_results: bool = False) -> tuple[Settings, dict[str, Pool], Farm]:
    """The configured farm, or the running ingest's embedded one.

    ``takes_results``: the command consumes the results queue, which on the embedded farm
    belongs to its ingest (a result taken there never reaches the ingest's library).
    """
    try:
        settings, pools = setup()
        running = running_farm() if settings.embedded else None
        if takes_results:
            leave_results_to_ingest(running)
        if running is not None:
            notes.print(
                f"No farm configured: using the embedded farm of the running ingest"
                f" (pid {running.pid}, {running.endpoint})."
            )
            return (
                settings,
                pools,
                Farm.embedded(running.endpoint, running.refs, running.credentials),
            )
        need_farm(settings)
        farm = attach(settings, pools)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    return settings, pools, farm


def main() -> None:
    """Run the ``hevcq`` command with the commands registered so far: a hevcq error is one
    line and exit code 2, a full disk one line and exit code 6, a bug one line and exit
    code 4 (the traceback in the state dir), never a traceback on the terminal."""
    bound_malloc()  # the ingest, the workers and the dashboard alike
    try:
        app()
    except KeyboardInterrupt:  # before a command's own handling starts
        sys.exit(EXIT_INTERRUPTED)
    except FarmConfigError as exc:  # credentials refused, resources missing
        notes.print(Text.assemble(("error: ", "red"), str(exc)))
        sys.exit(EXIT_FARM_MISCONFIGURED)
    except HevcqError as exc:
        notes.print(Text.assemble(("error: ", "red"), str(exc)))
        sys.exit(EXIT_CONFIG)
    except (OSError, sqlite3.OperationalError) as exc:
        full = disk_full(exc)
        if full is None:
            _internal(exc)
        notes.print(Text.assemble(("error: ", "red"), full))
        sys.exit(EXIT_CANNOT_PLACE)
    except Exception as exc:  # a bug: one line here, the traceback in the state dir
        _internal(exc)


def disk_full(exc: BaseException) -> str | None:
    """What to tell a person when ``exc`` is a full disk (or quota) met outside an output
    folder, which ``fetch`` reports itself: the state folder's catalog or a run's log;
    None for anything else (pure)."""
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        where = "the library's catalog"
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f"{exc.filename}" if exc.filename else "a file hevcq writes"
    else:
        return None
    return (
        f"no space left on the disk of {where} (hevcq's state folder is {state_dir()}):"
        " free some space, then run the same command again"
    )


def _internal(exc: BaseException) -> NoReturn:
    """A bug: one line on the terminal, the traceback (of the exception being handled) in
    the state dir, exit 4."""
    notes.print(
        Text.assemble(
            ("internal error: ", "red"), f"{type(exc).__name__}: {exc} ({_saved_traceback()})"
        )
    )
    sys.exit(EXIT_INTERNAL)


def _saved_traceback() -> str:
    """Where the traceback being handled was saved: the state dir's crash log, else a
    private file in the temporary folder (the state dir may be what failed)."""
    try:
        return f"traceback in {logs.record_crash(state_dir())}"
    except OSError:
        pass
    try:
        fd, name = tempfile.mkstemp(prefix="hevcq-crash-", suffix=".log")  # mode 0600
        with os.fdopen(fd, "w") as f:
            f.write(traceback.format_exc())
    except OSError as exc:
        return f"traceback not saved: {exc.strerror or exc}"
    return f"traceback in {name}"
