"""ffmpeg ``-progress`` output: a pure, incremental parser of its key=value blocks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One ``-progress`` block; ``None`` where ffmpeg reported ``N/A`` or nothing."""

    out_time_s: float | None = None
    frame: int | None = None
    fps: float | None = None
    speed: float | None = None
    done: bool = False


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    text = raw.strip().rstrip("x")  # speed is written as "1.25x"
    if not text or text.upper() == "N/A":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _clock_time(raw: str | None) -> float | None:
    """``HH:MM:SS.micro`` (the ``out_time`` key) in seconds."""
    if raw is None or raw.count(":") != 2:
        return None
    hours, minutes, seconds = raw.strip().lstrip("-").split(":")
    try:
        total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None
    return -total if raw.strip().startswith("-") else total


def _out_time_s(fields: dict[str, str]) -> float | None:
    # out_time_ms is, despite its name, in microseconds too (a long-standing ffmpeg quirk).
    micros = _number(fields.get("out_time_us"))
    if micros is None:
        micros = _number(fields.get("out_time_ms"))
    seconds = micros / 1_000_000 if micros is not None else _clock_time(fields.get("out_time"))
    if seconds is None or seconds < 0:
        # Before the first packet ffmpeg prints negative times or AV_NOPTS_VALUE.
        return None
    return seconds


def block_to_progress(fields: dict[str, str]) -> Progress:
    """Turn one complete block of key=value fields into a ``Progress``."""
    frame = _number(fields.get("frame"))
    return Progress(
        out_time_s=_out_time_s(fields),
        frame=int(frame) if frame is not None and frame >= 0 else None,
        fps=_number(fields.get("fps")),
        speed=_number(fields.get("speed")),
        done=fields.get("progress", "").strip() == "end",
    )


class ProgressParser:
    """Feed it raw text as it arrives; it returns the blocks completed by that text."""

    def __init__(self) -> None:
        self._partial = ""
        self._fields: dict[str, str] = {}

    def feed(self, text: str) -> list[Progress]:
        """Consume a chunk (any split, even mid-line); return the blocks it completed."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()  # the text after the last newline is not a line yet
        completed: list[Progress] = []
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if not sep or not key:
                continue
            self._fields[key.strip()] = value.strip()
            if key.strip() == "progress":
                completed.append(block_to_progress(self._fields))
                self._fields = {}
        return completed


def percent(
    progress: Progress, duration_s: float | None, frames: int | None = None
) -> float | None:
    """Share of the source encoded, 0 to 100; ``None`` when it cannot be known.

    Frames encoded over ``frames`` expected, when both are known: ``out_time`` is the
    time of whatever packet was muxed last, and a copied audio stream runs ahead of the
    encoder's lookahead, so early on it can read 30 % where a single frame is out.
    """
    if progress.done:
        return 100.0
    if frames and frames > 0 and progress.frame is not None:
        return max(0.0, min(100.0, 100.0 * progress.frame / frames))
    if progress.out_time_s is None or not duration_s or duration_s <= 0:
        return None
    return max(0.0, min(100.0, 100.0 * progress.out_time_s / duration_s))


# Where the percent of an encode of a guessed length stops until ffmpeg says it ended.
GUESSED_AT_MOST = 99.0


class PercentTracker:
    """The percent a running encode reports: ``percent`` of each block, never going back.

    ``guessed``: ``duration_s`` is a guess (a bare stream's, ``MediaInfo.duration_guess_s``)
    that the encode may outrun, so only its end reads 100."""

    def __init__(
        self, duration_s: float | None, frames: int | None = None, *, guessed: bool = False
    ) -> None:
        self._duration_s = duration_s
        self._frames = frames
        self._guessed = guessed
        self._best: float | None = None

    def update(self, progress: Progress) -> float | None:
        """The percent to report after ``progress``; ``None`` until one is known."""
        pct = percent(progress, self._duration_s, self._frames)
        if pct is not None and self._guessed and not progress.done:
            pct = min(pct, GUESSED_AT_MOST)
        if pct is not None and (self._best is None or pct > self._best):
            self._best = pct
        return self._best
