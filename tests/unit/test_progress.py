"""The -progress parser: blocks, units, N/A values, arbitrary chunking."""

from __future__ import annotations

import pytest

from hevcq.media.progress import (
    GUESSED_AT_MOST,
    PercentTracker,
    Progress,
    ProgressParser,
    block_to_progress,
    percent,
)
from hevcq.worker.runner import JobContext, _progress_sink

BLOCK = (
    "frame=48\nfps=23.50\nstream_0_0_q=28.0\nbitrate= 512.0kbits/s\ntotal_size=131072\n"
    "out_time_us=2000000\nout_time_ms=2000000\nout_time=00:00:02.000000\n"
    "dup_frames=0\ndrop_frames=0\nspeed=1.25x\nprogress=continue\n"
)


def test_one_block_parses_every_field() -> None:
    assert ProgressParser().feed(BLOCK) == [
        Progress(out_time_s=2.0, frame=48, fps=23.5, speed=1.25, done=False)
    ]


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(BLOCK)])
def test_any_chunking_gives_the_same_blocks(size: int) -> None:
    text = BLOCK + BLOCK.replace("progress=continue", "progress=end")
    parser = ProgressParser()
    got: list[Progress] = []
    for start in range(0, len(text), size):
        got += parser.feed(text[start : start + size])
    assert [p.done for p in got] == [False, True]
    assert all(p.out_time_s == 2.0 and p.frame == 48 for p in got)


def test_partial_line_is_held_until_its_newline() -> None:
    parser = ProgressParser()
    assert parser.feed("out_time_us=1500000\nprogress=cont") == []
    assert parser.feed("inue\n") == [Progress(out_time_s=1.5)]


def test_crlf_lines_are_accepted() -> None:
    assert ProgressParser().feed("frame=3\r\nprogress=end\r\n") == [Progress(frame=3, done=True)]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # out_time_ms is really microseconds, like out_time_us.
        ({"out_time_ms": "3500000"}, 3.5),
        ({"out_time_us": "N/A", "out_time_ms": "N/A", "out_time": "00:01:02.500000"}, 62.5),
        ({"out_time_us": "N/A", "out_time": "N/A"}, None),
        ({"out_time_us": "-9223372036854775807"}, None),
        ({"out_time": "-00:00:00.041000"}, None),
        ({}, None),
    ],
)
def test_out_time_units_and_missing_values(fields: dict[str, str], expected: float | None) -> None:
    assert block_to_progress(fields).out_time_s == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"frame": "N/A", "fps": "N/A", "speed": "N/A"}, Progress()),
        ({"fps": "0.00", "speed": "0x"}, Progress(fps=0.0, speed=0.0)),
        ({"frame": "garbage", "speed": "fast"}, Progress()),
        ({"progress": "end"}, Progress(done=True)),
    ],
)
def test_na_and_garbage_values_become_none(fields: dict[str, str], expected: Progress) -> None:
    assert block_to_progress(fields) == expected


def test_lines_without_equals_are_ignored() -> None:
    assert ProgressParser().feed("hello\n=x\nframe=2\nprogress=continue\n") == [Progress(frame=2)]


@pytest.mark.parametrize(
    ("progress", "duration", "expected"),
    [
        (Progress(out_time_s=5.0), 10.0, 50.0),
        (Progress(out_time_s=12.0), 10.0, 100.0),
        (Progress(out_time_s=1.0), None, None),
        (Progress(out_time_s=1.0), 0.0, None),
        (Progress(), 10.0, None),
        (Progress(done=True), None, 100.0),
    ],
)
def test_percent(progress: Progress, duration: float | None, expected: float | None) -> None:
    assert percent(progress, duration) == expected


@pytest.mark.parametrize(
    ("progress", "frames", "expected"),
    [
        # A copied audio stream runs ahead: out_time says 40 %, one frame is out of 100.
        (Progress(out_time_s=4.0, frame=1), 100, 1.0),
        (Progress(out_time_s=4.0, frame=50), 100, 50.0),
        (Progress(out_time_s=4.0, frame=120), 100, 100.0),
        (Progress(out_time_s=4.0), 100, 40.0),  # no frame count: time it is
        (Progress(out_time_s=4.0, frame=1), None, 40.0),
    ],
)
def test_percent_counts_frames_where_it_can(
    progress: Progress, frames: int | None, expected: float
) -> None:
    assert percent(progress, 10.0, frames) == expected


def test_a_running_encode_never_reports_less_than_before() -> None:
    # What ffmpeg printed for a sample clip: out_time ahead of the video, then behind it.
    tracker = PercentTracker(10.0)
    seen = [tracker.update(Progress(out_time_s=t)) for t in (None, 9.0, 4.6, 7.8, 10.0)]
    assert seen == [None, 90.0, 90.0, 90.0, 100.0]


def test_the_tracker_counts_frames_when_the_plan_knows_them() -> None:
    tracker = PercentTracker(10.0, frames=200)
    assert tracker.update(Progress(out_time_s=9.0, frame=2)) == 1.0
    assert tracker.update(Progress(out_time_s=4.6, frame=100)) == 50.0
    assert tracker.update(Progress(done=True)) == 100.0


def test_an_encode_of_a_guessed_length_reads_100_only_at_its_end() -> None:
    # A bare stream's length is guessed from its first frames, and the encode can outrun
    # the guess: it must not read as finished while ffmpeg still encodes.
    tracker = PercentTracker(10.0, guessed=True)
    seen = [tracker.update(Progress(out_time_s=t)) for t in (5.0, 10.0, 12.5)]
    assert seen == [50.0, GUESSED_AT_MOST, GUESSED_AT_MOST]
    assert tracker.update(Progress(out_time_s=12.6, done=True)) == 100.0


def test_a_source_of_no_stated_length_counts_its_percent_against_its_guess() -> None:
    said: list[float] = []
    ctx = JobContext(on_progress=said.append)
    _progress_sink(ctx, None, None, guess_s=20.0)(Progress(out_time_s=5.0))
    _progress_sink(ctx, None, None)(Progress(out_time_s=5.0))  # no guess: no percent
    _progress_sink(ctx, 10.0, None, guess_s=20.0)(Progress(out_time_s=5.0))  # stated wins
    assert said == [25.0, 50.0]
