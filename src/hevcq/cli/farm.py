"""Farm commands: status, serve, dlq, redrive, sample, ladder, quality, config."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.table import Table
from rich.text import Text

from hevcq import logs
from hevcq.cli.app import (
    EXIT_CONFIG,
    EXIT_FARM_MISCONFIGURED,
    a_path,
    app,
    config_app,
    configured,
    console,
    fail,
    more_than,
    setup,
)
from hevcq.cli.screen import shown
from hevcq.cli.tfconfig import api_addresses, settings_from_outputs, write_env_file
from hevcq.cores import machine_cores
from hevcq.errors import ConfigError, FailureClass, HevcqError, PermanentError
from hevcq.farm.embedded import running_farm
from hevcq.library.results import announced_objects
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import MASTER, build_ladder, read_renditions
from hevcq.media.picshape import probe_main
from hevcq.media.poster import POSTER, make_poster
from hevcq.media.probe import probe
from hevcq.media.quality import lengths_differ, score, xpsnr_score
from hevcq.media.samples import foreign_files, make_sample_library
from hevcq.media.verify import as_played, packet_ends
from hevcq.settings import load_settings
from hevcq.settings import state_dir as default_state_dir
from hevcq.web.view import SCAN_SHARE, FarmView

log = structlog.get_logger()

# What reading a farm raises once it stops answering.
FARM_GONE: tuple[type[Exception], ...] = (HevcqError,)


@app.command(epilog="Example: hevcq status --json | jq '.pools'")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    watch: Annotated[
        float | None,
        typer.Option(
            help="Refresh every this many seconds (0.5 or more), until Ctrl-C.",
            callback=more_than(0.5, at_least=True),
        ),
    ] = None,
) -> None:
    """Queue depths per pool, running jobs with progress, and totals per state."""

    settings, _, farm = configured()
    if watch is None:
        _print_status(FarmView(farm), as_json=as_json)
        return
    view = FarmView(farm, scan_share=SCAN_SHARE)  # a large ledger is scanned less often
    try:
        while True:
            console.clear()
            _print_status(view, as_json=as_json)
            time.sleep(max(0.5, watch))
    except KeyboardInterrupt:
        return
    except FARM_GONE as exc:
        if settings.embedded and running_farm() is None:  # its ingest ended: nothing to watch
            console.print(Text("The ingest ended and its embedded farm with it."))
            return
        raise fail(f"the farm stopped answering: {exc}", EXIT_FARM_MISCONFIGURED) from exc


def _print_status(view: FarmView, *, as_json: bool = False) -> None:
    report = view.status()
    if as_json:
        print(report.model_dump_json(indent=2))
        return
    t = Table(title="queues")
    for col in ("pool", "waiting", "in flight", "delayed", "dead letters", "workers"):
        t.add_column(col)
    for p in report.pools:
        t.add_row(
            p.pool,
            str(p.waiting),
            str(p.in_flight),
            str(p.delayed),
            str(p.dead_lettered),
            str(p.workers_alive),
        )
    console.print(t)
    r = Table(title="running jobs")
    for col in ("key", "pool", "worker", "progress", "age", "eta"):
        r.add_column(col)
    for j in report.running:
        eta = f"{j.eta_s:.0f}s" if j.eta_s is not None else "-"
        r.add_row(shown(j.key), j.pool, shown(j.worker), j.done, f"{j.age_s:.0f}s", eta)
    console.print(r)
    s = Table(title="jobs by state")
    for col in ("pool", "state", "jobs"):
        s.add_column(col)
    for total in report.totals:
        s.add_row(total.pool, total.state, str(total.jobs))
    console.print(s)


@app.command(epilog="Example: hevcq serve --host 0.0.0.0 --port 8765   (with HEVCQ_API_TOKEN set)")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.", parser=_an_address)] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = 8765,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where a running embedded farm leaves its farm file.", parser=a_path),
    ] = None,
) -> None:
    """Serve the dashboard and the API for the configured or the running embedded farm."""
    from hevcq.web import server as web_server  # noqa: PLC0415 - the other commands need none
    from hevcq.web.listen import bind, signed_in_address  # noqa: PLC0415

    try:
        settings, pools = setup()
        located = web_server.locate(settings, pools, state_dir or default_state_dir())
        config = web_server.web_config(settings, located, host)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    if located.farm is None:
        console.print(
            Text.assemble((located.reason, "yellow"), ": the page and /api/health say so.")
        )
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise fail(
            f"cannot listen on {host}:{port}: {_why(exc)}; {_listen_hint(exc)}",
            EXIT_CONFIG,
        ) from exc
    bound = sock.getsockname()[1]  # --port 0: the free one the system gave
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{bound}"
    local = config.auth.config.local_token
    if local:  # the embedded farm: its run's token, which other users of this machine lack
        console.print(f"Dashboard: {signed_in_address(base + '/', local)}", soft_wrap=True)
        console.print(
            f"API on {base} with 'Authorization: Bearer {local}' (OpenAPI at /docs)",
            soft_wrap=True,
        )
    else:
        console.print(f"Dashboard and API on {base} (OpenAPI at /docs)")
    web_server.serve(config, sock)


def _listen_hint(exc: OSError) -> str:
    """What to change when a listening socket cannot be had: the port when it is taken
    or reserved, the host when it names no address of this machine."""
    # A name that does not resolve: getaddrinfo's errors are negative, whether raised as
    # socket.gaierror or passed on by socket.create_server as a plain OSError.
    if (exc.errno or 0) < 0 or exc.errno == errno.EADDRNOTAVAIL:
        return "give another --host (an address of this machine, or 0.0.0.0 for all)"
    if exc.errno == errno.EACCES:
        return "give a --port above 1023"
    return "give another --port"


def _why(exc: OSError) -> str:
    """The system's reason, without the address ``socket.create_server`` appends."""
    return (exc.strerror or str(exc)).split(" (while attempting to bind", 1)[0]


def _an_address(value: str) -> str:
    """``--host``, refused when empty: an empty host listens on every interface, which
    only an explicit 0.0.0.0 should do."""
    if not value.strip():
        raise typer.BadParameter("an empty address; give one (0.0.0.0 for every interface)")
    return value


@app.command(epilog="Example: hevcq dlq --pool 720p")
def dlq(pool: Annotated[str | None, typer.Option(help="Only this pool.")] = None) -> None:
    """List dead-letter messages with their failure class and reason."""

    _, _, farm = configured()
    t = Table(title="dead letters")
    for col in ("pool", "object", "class", "reason"):
        t.add_column(col)
    for name in sorted(farm.refs.pools):
        if pool and name != pool:
            continue
        for m in farm.dead_letters(name):
            keys = ", ".join(o.key for o in announced_objects(m.body)) or "(unparseable message)"
            t.add_row(name, shown(keys), shown(m.failure_class), shown(m.reason))
    console.print(t)


@app.command(epilog="Example: hevcq redrive --dlq --pool hevc --class transient")
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
        raise fail("say --dlq to move dead-letter messages back to their queues")
    _, _, farm = configured()
    moved = farm.redrive([pool] if pool else None, failure_class)
    for name, n in moved.items():
        console.print(Text(f"{name}: {n if isinstance(n, str) else f'{n} messages moved'}"))


@app.command(epilog="Example: hevcq sample ~/hevcq-sample && hevcq ingest ~/hevcq-sample")
def sample(
    dest: Annotated[Path, typer.Argument(help="Folder for the sample library.", parser=a_path)],
) -> None:
    """Generate a small sample library (the README's demo)."""

    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    logs.configure(settings.log_format, settings.log_level)
    if dest.exists() and not dest.is_dir():
        raise fail(f"{dest} is a file; give a folder for the sample library")
    others = foreign_files(dest)
    if others:
        raise fail(
            f"{dest} holds other files ({others[0].relative_to(dest)}, ...); the sample goes"
            " into an empty or new folder, and never overwrites anything"
        )
    try:
        files = make_sample_library(dest)
    except OSError as exc:
        raise fail(f"cannot write the sample library in {dest}: {exc.strerror or exc}") from exc
    console.print(Text(f"Sample library with {len(files)} files in {dest}"))


@config_app.command(
    "from-terraform", epilog="Example: hevcq config from-terraform --tf-dir infra/terraform"
)
def from_terraform(
    tf_dir: Annotated[Path, typer.Option(help="The Terraform root module.", parser=a_path)] = Path(
        "infra/terraform"
    ),
    path: Annotated[Path, typer.Option(help="Settings file to write.", parser=a_path)] = Path(
        ".hevcq.env"
    ),
) -> None:
    """Write the settings file from `terraform output -json`."""

    command = ["terraform", f"-chdir={tf_dir}", "output", "-no-color", "-json"]
    try:
        raw = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    except OSError as exc:
        raise fail(f"cannot run terraform ({exc.strerror}): install Terraform 1.x") from exc
    except subprocess.CalledProcessError as exc:
        raise fail(f"{shlex.join(command)} failed: {terraform_error(exc.stderr)}") from exc
    try:
        outputs = json.loads(raw)
        settings = settings_from_outputs(outputs if isinstance(outputs, dict) else {})
    except (ValueError, ConfigError) as exc:
        raise fail(f"{exc} (read with: {shlex.join(command)})") from exc
    try:
        write_env_file(settings, path)
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}") from exc
    console.print(Text(f"Wrote {path}"))
    for label, value in api_addresses(outputs).items():
        console.print(Text(f"{label}: {value}"))


def terraform_error(stderr: str) -> str:
    """The line of terraform's error output that says what is wrong (its first "Error"
    line, without the box drawing), else its last line."""
    lines = [ln.strip(" │╷╵\t") for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    errors = [ln for ln in lines if ln.startswith("Error")]
    return (errors or lines or ["no error output"])[0]


def _discard(folder: Path, *, made: bool) -> None:
    """Remove what a failed ``hevcq ladder`` wrote: ``folder`` itself when the command
    made it, else everything in it (it was empty)."""
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir() if folder.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@app.command(epilog="Example: hevcq ladder phone/IMG_0042.MOV --out ~/ladders/IMG_0042")
def ladder(
    source: Annotated[
        Path,
        typer.Argument(
            help="The video to make a streaming ladder of.", exists=True, dir_okay=False
        ),
    ],
    out: Annotated[Path, typer.Option(help="A new or empty folder for the ladder.", parser=a_path)],
    codec: Annotated[
        list[str],
        typer.Option(
            "--codec", help="A codec group beside H.264 (hevc or av1); repeat it for several."
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
) -> None:
    """Make and check an HLS ladder of one file on this machine.

    The ladder is CMAF segments, H.264 + AAC (plus any --codec group).

    It is checked: every rung decodes, IDR frames line up, bandwidths are measured.

    A poster (poster.jpg, a representative frame) goes beside the master playlist.
    """

    try:
        settings = load_settings(os.environ)
        ffmpeg = find_ffmpeg(settings.ffmpeg)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    logs.configure(settings.log_format, settings.log_level)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise fail(f"{out} is not an empty folder; the ladder goes into a new or empty one")
    made = not out.exists()
    try:
        try:
            variants = build_ladder(ffmpeg, source, out, probe_main(source), groups=tuple(codec))
            make_poster(ffmpeg, source, out / POSTER)
        except BaseException:
            # A ladder that failed a check, or was stopped half made, must not be left
            # looking like one (its master playlist written): the folder goes back to
            # how it was, which was new or empty, so all in it is this command's.
            _discard(out, made=made)
            raise
    except HevcqError as exc:
        raise fail(f"{source}: {exc}") from exc
    except OSError as exc:
        raise fail(f"cannot write the ladder in {out}: {exc.strerror or exc}") from exc
    for v in variants:
        kbps = f"{v.bandwidth // 1000} kb/s peak, {v.average_bandwidth // 1000} kb/s average"
        console.print(Text(f"{v.width}x{v.height}  {kbps}  {v.codecs}"))
    renditions = [("audio", r) for r in read_renditions(out / MASTER)]
    renditions += [("subtitles", r) for r in read_renditions(out / MASTER, "SUBTITLES")]
    for kind, r in renditions:
        said = [
            r.attributes.get("LANGUAGE", ""),
            "default" if r.attributes.get("DEFAULT") == "YES" else "",
        ]
        about = ", ".join(x for x in said if x)
        console.print(
            Text(f"{kind}  {r.attributes.get('NAME', '')}" + (f" ({about})" if about else ""))
        )
    console.print(Text(f"Ladder checked: {out / MASTER}; poster: {out / POSTER}"))


def _probed_length(path: Path) -> tuple[float | None, bool]:
    """A file's length for ``quality``, as it plays (two recordings joined into one
    MPEG-TS file play for both, whatever their header says: ``verify.as_played``), and
    whether its timestamps jump so; ``HevcqError`` naming it when it is no video (not a
    media file, or one without a video stream: a length is no reason to score it)."""
    try:
        info = probe(path)
    except HevcqError as exc:
        raise PermanentError(f"{path.name}: {exc}") from exc
    if info.main_video is None:
        raise PermanentError(f"{path.name}: no video stream")
    played = as_played(info, path)
    return played.duration_s, played is not info


def _playing_length(path: Path, probed: tuple[float | None, bool]) -> float | None:
    """How long a file's picture and sound play, as the output check reads it: its
    packets' ends, or, when its timestamps jump, the length ``_probed_length`` found."""
    length, jumps = probed
    return length if jumps else packet_ends(path).picture_and_sound


@app.command(epilog="Example: hevcq quality clip.mp4 hevcq-out/hevc/clip.mp4")
def quality(
    source: Annotated[
        Path, typer.Argument(help="The original video.", exists=True, dir_okay=False)
    ],
    output: Annotated[
        Path, typer.Argument(help="An encode of it to score.", exists=True, dir_okay=False)
    ],
    phone: Annotated[bool, typer.Option(help="Also score with VMAF's phone model.")] = False,
    xpsnr: Annotated[
        bool, typer.Option(help="Also measure XPSNR (luma, dB), for choosing an XPSNR target.")
    ] = False,
    own_size: Annotated[
        bool,
        typer.Option(
            help="Score a smaller encode (a rendition) at its own size, as rendition pools "
            "do, instead of scaled up to the original's."
        ),
    ] = False,
) -> None:
    """Score an encode against its original with VMAF.

    Both sides are aligned first: upright, same size, same start, one constant frame rate."""

    try:
        settings = load_settings(os.environ)
        ffmpeg = find_ffmpeg(settings.ffmpeg)
        logs.configure(settings.log_format, settings.log_level)
        files = (source, output)
        probed = [_probed_length(path) for path in files]
        lengths = [length for length, _ in probed]
        # Lengths as files that differ by a stream other than picture and sound (a
        # subtitle cue timed past the end) say nothing of what is scored: compare what
        # plays, as the output check does.
        if lengths_differ(*lengths) and lengths_differ(*map(_playing_length, files, probed)):
            src_s, out_s = (f"{x:.2f} s" for x in lengths if x is not None)
            raise fail(
                f"{output.name} lasts {out_s} and {source.name} {src_s}: not an encode of "
                f"the whole source (VMAF would compare only the part both have)"
            )
        got = score(ffmpeg, source, output, phone=phone, threads=machine_cores(), own_size=own_size)
        db = xpsnr_score(ffmpeg, source, output, own_size=own_size) if xpsnr else None
    except HevcqError as exc:
        raise fail(str(exc)) from exc
    neg = f", NEG {got.neg_mean:.2f}" if got.neg_mean is not None else ""
    on_phone = f", phone {got.phone:.2f}" if got.phone is not None else ""
    console.print(
        Text(
            f"VMAF {got.mean:.2f} (1% low {got.low:.2f}{neg}{on_phone}) "
            f"with {got.model}, {got.frames} frame{'' if got.frames == 1 else 's'}"
        )
    )
    if db is not None:
        console.print(Text(f"XPSNR {db.mean:.2f} dB (1% low {db.low:.2f})"))
