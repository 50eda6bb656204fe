"""Running ffmpeg: its own process group, progress from a pipe, stop and stall handling."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from hevcq.errors import (
    ConfigError,
    HevcqError,
    InterruptedJob,
    PermanentError,
    RetryableError,
    StalledError,
)
from hevcq.limits import MiB
from hevcq.media.demuxers import read_alone
from hevcq.media.progress import Progress, ProgressParser
from hevcq.pools import Pool

log = structlog.get_logger()

STDERR_TAIL_LINES = 40
SUMMARY_LINES = 5  # of the tail, quoted in failure messages
# Less free space than this on the output's filesystem after a failed run means the
# failure was (or may well have been) the disk filling up: worth retrying elsewhere.
DISK_FULL_MARGIN_BYTES = 64 * MiB
DISK_FULL_RETRY_DELAY_S = 60.0
# ffmpeg catches SIGINT/SIGTERM, finishes the file and exits with 255 (fftools/ffmpeg.c).
FFMPEG_SIGNALLED_EXIT = 255


class Process(Protocol):
    """What the runner needs from a started ffmpeg; real or fake."""

    def stdout_chunks(self) -> Iterator[str]:
        """Text from stdout as it arrives; ends when stdout closes."""
        ...

    def stderr_lines(self) -> Iterator[str]:
        """Lines from stderr as they arrive; ends when stderr closes."""
        ...

    def poll(self) -> int | None:
        """The exit status if the process has ended, else None."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Reap the process; raises ``subprocess.TimeoutExpired`` after ``timeout``."""
        ...

    def signal_group(self, sig: int) -> None:
        """Send a signal to the process's whole group."""
        ...


Spawner = Callable[[list[str]], Process]


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL ffmpeg if the worker dies (even by SIGKILL).

    ffmpeg runs in its own session so that stopping it is one signal to its group; the
    price is that it would outlive a killed worker and keep encoding for nobody.
    """
    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class PopenProcess:
    """A ``subprocess.Popen`` in its own session, so its group can be signalled as one."""

    def __init__(self, args: list[str]) -> None:
        try:
            self._popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, no locks
            )
        except OSError as exc:
            raise ConfigError(f"cannot start ffmpeg ({args[0]}): {exc}") from exc

    @property
    def pid(self) -> int:
        """The process id, which is also its process group id."""
        return self._popen.pid

    def stdout_chunks(self) -> Iterator[str]:
        """Lines from stdout (``-progress`` flushes whole lines)."""
        assert self._popen.stdout is not None  # noqa: S101 - opened with PIPE above
        yield from self._popen.stdout

    def stderr_lines(self) -> Iterator[str]:
        """Lines from stderr."""
        assert self._popen.stderr is not None  # noqa: S101 - opened with PIPE above
        yield from self._popen.stderr

    def poll(self) -> int | None:
        """The exit status if the process has ended, else None."""
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Reap the process (no zombie left behind)."""
        return self._popen.wait(timeout)

    def signal_group(self, sig: int) -> None:
        """Signal the group; a group that is already gone is not an error."""
        # Until wait() reaps the leader its pid cannot be reused, so this never hits a stranger.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, sig)


def find_ffmpeg(configured: str | None = None) -> str:
    """The configured binary (``HEVCQ_FFMPEG``), else the pinned static build.

    The pinned build is the one the ``imageio-ffmpeg`` wheel ships, at the exact version
    ``pyproject.toml`` names; every image installs the same wheel, so the same job makes
    the same bytes on a laptop and in the cloud, and ``preset`` means the same everywhere.
    An ``ffmpeg`` on PATH is used only where that build is missing for the platform.
    """
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ConfigError(f"ffmpeg binary not found or not executable: {configured}")
        return found
    try:
        import imageio_ffmpeg  # noqa: PLC0415 - loaded only when ffmpeg is first needed

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        on_path = shutil.which("ffmpeg")
        if on_path:
            return on_path
        raise ConfigError("no ffmpeg: install hevcq's dependencies or set HEVCQ_FFMPEG") from exc


@dataclass(frozen=True)
class FfmpegBuild:
    """What an ffmpeg binary is: its version line and the encoders it has."""

    path: str
    version: str
    encoders: frozenset[str]
    filters: frozenset[str] = frozenset()
    decoders: frozenset[str] = frozenset()

    def missing(self, pools: Iterable[Pool]) -> list[str]:
        """What each pool names that this ffmpeg cannot do, one line per encoder, decoder or
        filter: its encoders, the filters its sources may need (``SOURCE_FILTERS``, and
        ``SDR_FILTERS`` where it makes a ladder or posters), the decoders of a transparent
        VP8/VP9 source where it takes those codecs (``ALPHA_DECODERS``), and the filter
        that scores a pool's quality target (libvmaf, or xpsnr for an XPSNR target)."""
        lines = []
        where = f"the ffmpeg at {self.path} ({self.version}) lacks"
        for pool in pools:
            lines += [
                f"pool {pool.name} needs the {enc} encoder, which {where}"
                for enc in sorted(pool.encoders)
                if enc not in self.encoders
            ]
            needs = SOURCE_FILTERS
            if pool.ladder is not None or pool.poster:
                needs += SDR_FILTERS
            lines += [
                f"pool {pool.name} needs the {name} filter, which {where}"
                for name in needs
                if name not in self.filters
            ]
            alpha = {ALPHA_DECODERS.get(codec) for codec in pool.applies.source_codecs}
            lines += [
                f"pool {pool.name} needs the {name} decoder (a WebM's alpha), which {where}"
                for name in sorted(n for n in alpha if n)
                if name not in self.decoders
            ]
            if pool.quality is None:
                continue
            scorer = SCORING_FILTERS[pool.quality.metric]
            if scorer not in self.filters:
                lines.append(f"pool {pool.name} scores quality with {scorer}, which {where}")
        return lines


# The ffmpeg filter that measures each metric a quality target may be in.
SCORING_FILTERS = {"vmaf": "libvmaf", "xpsnr": "xpsnr"}
# Filters any pool's job may need for its source: the deinterlacer (decision 0027), the
# flattening of a transparent picture onto black (0036), and the frame description that
# tells whether an HEVC stream of two layers has an alpha (``probe.layered_alpha``).
SOURCE_FILTERS: tuple[str, ...] = ("bwdif", "premultiply", "showinfo")
# And a ladder's or a poster's: the tone map of an HDR source to SDR (decision 0028).
SDR_FILTERS: tuple[str, ...] = ("zscale", "tonemap")
# The decoders that read a VP8 or VP9 stream's alpha, which libavcodec's own decoders
# leave out (WebM keeps it beside each picture; decision 0036): a pool that takes such
# sources needs them.
ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
_VERSION_LINE = re.compile(r"^ffmpeg version (\S+)")
_ENCODER_LINE = re.compile(r"^ ([VAS])[.A-Z]{5} (\S+)")
_FILTER_LINE = re.compile(r"^ [T.][S.][C.]? (\S+) +\S+->\S+")


@functools.lru_cache(maxsize=8)
def ffmpeg_build(path: str) -> FfmpegBuild:
    """Ask ``path`` for its version and encoders (once per process and path).

    Raises ``ConfigError`` when it does not run or does not answer like ffmpeg.
    """
    try:
        version = _ask(path, "-version")
        encoders = _ask(path, "-encoders")
        filters = _ask(path, "-filters")
        decoders = _ask(path, "-decoders")
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"cannot run ffmpeg at {path}: {exc}") from exc
    found = _VERSION_LINE.match(version)
    if found is None:
        raise ConfigError(f"{path} does not say it is ffmpeg (its -version: {version[:80]!r})")
    kinds = frozenset(m.group(1) for m in map(_FILTER_LINE.match, filters.splitlines()) if m)
    return FfmpegBuild(path, found.group(1), _codecs(encoders), kinds, _codecs(decoders))


def _codecs(listing: str) -> frozenset[str]:
    """The names an ``-encoders`` or ``-decoders`` listing gives (they share a layout)."""
    return frozenset(m.group(2) for m in map(_ENCODER_LINE.match, listing.splitlines()) if m)


def _ask(path: str, option: str) -> str:
    done = subprocess.run(
        [path, "-hide_banner", option],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=30,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return done.stdout


@dataclass(frozen=True)
class Watch:
    """What an ffmpeg run that is not an encode runs under (a score, a poster): the job's
    stop, and how long it may go without progress before it counts as stalled (an
    encode's default)."""

    stop: threading.Event = field(default_factory=threading.Event)
    stall_timeout_s: float = 300.0


def run_ffmpeg(
    args: list[str],
    *,
    on_progress: Callable[[Progress], None] | None,
    stop: threading.Event,
    stall_timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
    term_grace_s: float = 5.0,
    spawn: Spawner = PopenProcess,
    output: Path | None = None,
    poll_interval_s: float = 0.25,
) -> None:
    """Run ffmpeg to completion, or stop it and raise; see the module's error classes.

    ``output`` (default: the last argument when it is a ``file:`` path) is where free
    space is checked to recognise a full disk after a failure.
    """
    if stop.is_set():
        raise InterruptedJob("stop requested before ffmpeg started")
    proc = spawn(read_alone(args))
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    chunks: queue.Queue[str | None] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout_chunks(), chunks), daemon=True),
        threading.Thread(target=_collect, args=(proc.stderr_lines(), tail), daemon=True),
    ]
    for reader in readers:
        reader.start()
    watch = _Watch(proc, chunks, on_progress, clock, stall_timeout_s)
    try:
        watch.until_exit(stop, poll_interval_s)
        # stdout closes during ffmpeg's own exit: give it time to finish rather than
        # signalling it, which would turn a clean exit into "received signal" (255).
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=term_grace_s)
    except (InterruptedJob, StalledError) as exc:
        log.warning("ffmpeg_stopping", reason=str(exc))
        raise
    finally:
        if proc.poll() is None:
            terminate(proc, term_grace_s)
        returncode = proc.wait()
        for reader in readers:
            reader.join(timeout=term_grace_s)
    watch.drain()
    if returncode != 0:
        target = output or _output_of(args)
        raise classify_failure(returncode, list(tail), _free_bytes(target))


def terminate(proc: Process, grace_s: float) -> None:
    """SIGTERM to the group, ``grace_s`` to finish, then SIGKILL; always reaps."""
    proc.signal_group(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.signal_group(signal.SIGKILL)
        proc.wait()


class _Watch:
    """Feeds progress to the callback and notices stalls while ffmpeg runs."""

    def __init__(
        self,
        proc: Process,
        chunks: queue.Queue[str | None],
        on_progress: Callable[[Progress], None] | None,
        clock: Callable[[], float],
        stall_timeout_s: float,
    ) -> None:
        self.proc, self.chunks, self.on_progress = proc, chunks, on_progress
        self.clock, self.stall_timeout_s = clock, stall_timeout_s
        self.parser = ProgressParser()
        self.best: tuple[float, int] = (-1.0, -1)
        self.last_advance = clock()

    def until_exit(self, stop: threading.Event, poll_interval_s: float) -> None:
        """Return when stdout closes or the process ends; raise on stop or stall."""
        while True:
            if stop.is_set():
                raise InterruptedJob("stop requested while ffmpeg was running")
            try:
                chunk = self.chunks.get(timeout=poll_interval_s)
            except queue.Empty:
                chunk = ""
            if chunk is None:
                return
            self.feed(chunk)
            if self.proc.poll() is not None:
                return
            idle = self.clock() - self.last_advance
            if idle > self.stall_timeout_s:
                raise StalledError(f"ffmpeg made no progress for {idle:.0f} s")

    def drain(self) -> None:
        """Deliver what ffmpeg wrote before exiting (the final ``progress=end`` block)."""
        while True:
            try:
                chunk = self.chunks.get_nowait()
            except queue.Empty:
                return
            if chunk is not None:
                self.feed(chunk)

    def feed(self, chunk: str) -> None:
        """Parse a chunk; an advance in time or frames resets the stall timer."""
        for progress in self.parser.feed(chunk):
            time_s = progress.out_time_s if progress.out_time_s is not None else -1.0
            frame = progress.frame if progress.frame is not None else -1
            if time_s > self.best[0] or frame > self.best[1] or progress.done:
                self.best = (max(time_s, self.best[0]), max(frame, self.best[1]))
                self.last_advance = self.clock()
            if self.on_progress is not None:
                self.on_progress(progress)


def _pump(source: Iterator[str], sink: queue.Queue[str | None]) -> None:
    try:
        for chunk in source:
            sink.put(chunk)
    finally:
        sink.put(None)  # end of stdout: ffmpeg has exited or is exiting


def _collect(source: Iterator[str], tail: deque[str]) -> None:
    for line in source:
        if line.strip():
            tail.append(line.rstrip())


def _output_of(args: Sequence[str]) -> Path | None:
    last = args[-1] if args else ""
    return Path(last.removeprefix("file:")) if last.startswith("file:") else None


def _free_bytes(output: Path | None) -> int | None:
    if output is None:
        return None
    try:
        return shutil.disk_usage(output.parent).free
    except OSError:
        return None


def classify_failure(
    returncode: int, stderr_tail: Sequence[str], free_bytes: int | None
) -> HevcqError:
    """The error for a non-zero exit: retryable for signals and a full disk, else permanent.

    A full disk is recognised two ways: the output's filesystem has less than
    ``DISK_FULL_MARGIN_BYTES`` free after the failure, or ffmpeg's message carries the
    ENOSPC text (``strerror(ENOSPC)``, which is what libav prints for that error).
    """
    summary = " | ".join(_cause(stderr_tail)) or "no error output"
    if returncode < 0:
        return RetryableError(f"{killed(returncode)}: {summary}")
    if returncode == FFMPEG_SIGNALLED_EXIT:
        return RetryableError(f"ffmpeg exited after receiving a signal: {summary}")
    enospc = os.strerror(errno.ENOSPC)
    if (free_bytes is not None and free_bytes < DISK_FULL_MARGIN_BYTES) or any(
        enospc in line for line in stderr_tail
    ):
        return RetryableError(
            f"output disk full ({free_bytes} bytes free): {summary}",
            delay_s=DISK_FULL_RETRY_DELAY_S,
        )
    return PermanentError(f"ffmpeg failed with exit status {returncode}: {summary}")


_SIGNALS = frozenset(s.value for s in signal.Signals)


def killed(returncode: int) -> str:
    """What a negative exit status says: the signal that killed ffmpeg, and for SIGKILL,
    which nothing in hevcq sends before SIGTERM has had its grace, the likeliest sender:
    the kernel, out of memory (an 8K encode holds 4-6 GB; docs/cloud.md sizes tasks)."""
    name = signal.Signals(-returncode).name if -returncode in _SIGNALS else str(-returncode)
    hint = " (the kernel does this when memory runs out)" if name == "SIGKILL" else ""
    return f"ffmpeg killed by signal {name}{hint}"


# "Format not on whitelist '<every demuxer>'": the list (``read_alone``'s) is kilobytes long.
_WHITELIST = re.compile(r"whitelist '[^']*'")
# What ffmpeg prints after the error that stopped it, as each of its threads winds down,
# and the banner SVT-AV1 writes to stderr itself: an encoder that could not open ended
# on five of these, which pushed its one line of cause out of the message.
_ECHOES = re.compile(
    r"Task finished with error code|Terminating thread with return code"
    r"|Nothing was written into output file|Error sending frames to consumers"
    r"|Conversion failed!|^Svt\[info\]"
)
# "[libopus @ 0x55d0c3a1e2c0]": the same failure names a new address on every run.
_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+\]")


def _cause(tail: Sequence[str]) -> list[str]:
    """The last lines of ``tail`` that say why ffmpeg failed (all of its last lines when
    none does), each as it is shown in a failure message."""
    lines = [_ADDRESS.sub("]", _WHITELIST.sub("whitelist", line)) for line in tail]
    said = [line for line in lines if line.strip() and not _ECHOES.search(line)]
    return (said or lines)[-SUMMARY_LINES:]
