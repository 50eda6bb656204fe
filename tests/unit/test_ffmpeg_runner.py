"""run_ffmpeg() against a hand-written fake process: stop, stall, exit classification."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hevcq.errors import ConfigError, InterruptedJob, PermanentError, RetryableError, StalledError
from hevcq.media.ffmpeg import (
    DISK_FULL_MARGIN_BYTES,
    STDERR_TAIL_LINES,
    Process,
    classify_failure,
    find_ffmpeg,
    run_ffmpeg,
)
from hevcq.media.progress import Progress

SAFETY_S = 5.0  # a fake that never ends fails the test instead of hanging it


class FakeClock:
    """Time that moves only when the fake process says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TickingClock(FakeClock):
    """Every reading is ``step_s`` later than the one before."""

    def __init__(self, step_s: float) -> None:
        super().__init__()
        self.step_s = step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


class FakeProcess:
    """Plays scripted stdout/stderr, then exits or lingers until signalled."""

    def __init__(
        self,
        chunks: Sequence[str] = (),
        *,
        stderr: Sequence[str] = (),
        exit_code: int = 0,
        lingers: bool = False,
        ignores_sigterm: bool = False,
        clock: FakeClock | None = None,
        seconds_per_chunk: float = 1.0,
        closes_stdout_early: bool = False,
    ) -> None:
        self.chunks, self.stderr, self.exit_code = chunks, stderr, exit_code
        self.lingers, self.ignores_sigterm = lingers, ignores_sigterm
        self.clock, self.seconds_per_chunk = clock, seconds_per_chunk
        self.closes_stdout_early = closes_stdout_early
        self.returncode: int | None = None
        self.signals: list[int] = []
        self.reaped = False
        self._ended = threading.Event()

    def _end(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        self._ended.set()

    def end_later(self, code: int) -> None:
        self._end(code)

    def stdout_chunks(self) -> Iterator[str]:
        for chunk in self.chunks:
            if self.clock is not None:
                self.clock.now += self.seconds_per_chunk
            yield chunk
        if not self.lingers:
            self._end(self.exit_code)
        elif self.closes_stdout_early:
            return
        self._ended.wait(SAFETY_S)

    def stderr_lines(self) -> Iterator[str]:
        yield from self.stderr
        self._ended.wait(SAFETY_S)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(SAFETY_S if timeout is None else timeout):
            if timeout is None:
                raise AssertionError("fake ffmpeg never ended")
            raise subprocess.TimeoutExpired("ffmpeg", timeout)
        self.reaped = True
        assert self.returncode is not None
        return self.returncode

    def signal_group(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL:
            self._end(-signal.SIGKILL)
        elif not self.ignores_sigterm:
            self._end(255)


def block(frame: int, *, end: bool = False) -> str:
    state = "end" if end else "continue"
    return f"frame={frame}\nout_time_us={frame * 41_666}\nspeed=1.0x\nprogress={state}\n"


def run(
    fake: FakeProcess,
    *,
    stop: threading.Event | None = None,
    on_progress: list[Progress] | None = None,
    stall_timeout_s: float = 2.5,
    clock: FakeClock | None = None,
    tmp: Path | None = None,
) -> None:
    seen = on_progress if on_progress is not None else []

    def spawn(args: list[str]) -> Process:
        assert args[0] == "ffmpeg"
        return fake

    run_ffmpeg(
        ["ffmpeg", "-i", "x", f"file:{tmp or Path('/tmp')}/out"],
        on_progress=seen.append,
        stop=stop or threading.Event(),
        stall_timeout_s=stall_timeout_s,
        clock=clock or FakeClock(),
        term_grace_s=0.05,
        spawn=spawn,
        poll_interval_s=0.001,
    )


def test_success_delivers_every_block_including_the_last() -> None:
    fake = FakeProcess([block(1), block(2), block(3, end=True)])
    seen: list[Progress] = []
    run(fake, on_progress=seen)
    assert [p.frame for p in seen] == [1, 2, 3]
    assert seen[-1].done
    assert fake.signals == []
    assert fake.reaped


def test_stdout_closing_just_before_the_exit_is_not_signalled() -> None:
    fake = FakeProcess([block(1, end=True)], lingers=True, closes_stdout_early=True)
    # The real ffmpeg closes its -progress pipe in its exit path, a moment before it ends.
    threading.Timer(0.05, fake.end_later, args=(0,)).start()
    run_ffmpeg(
        ["ffmpeg"],
        on_progress=None,
        stop=threading.Event(),
        stall_timeout_s=60,
        term_grace_s=2.0,
        spawn=lambda _: fake,
        poll_interval_s=0.001,
    )
    assert fake.signals == []
    assert fake.returncode == 0


def test_blocks_split_across_chunks_are_reassembled() -> None:
    text = block(1) + block(2, end=True)
    fake = FakeProcess([text[i : i + 5] for i in range(0, len(text), 5)])
    seen: list[Progress] = []
    run(fake, on_progress=seen)
    assert [p.frame for p in seen] == [1, 2]


def test_steady_progress_on_a_slow_clock_is_not_a_stall() -> None:
    clock = FakeClock()
    fake = FakeProcess([block(n) for n in range(1, 30)], clock=clock)
    run(fake, clock=clock, stall_timeout_s=2.5)
    assert clock.now == 29.0  # far beyond the stall timeout in total, never between blocks
    assert fake.signals == []


def test_no_advance_is_a_stall_and_ffmpeg_is_stopped() -> None:
    clock = TickingClock(step_s=0.5)
    fake = FakeProcess([block(5), block(5), block(4)], lingers=True)
    with pytest.raises(StalledError, match="no progress"):
        run(fake, clock=clock, stall_timeout_s=2.5)
    assert fake.signals == [signal.SIGTERM]
    assert fake.reaped


def test_stop_terminates_the_group_and_raises_interrupted() -> None:
    stop = threading.Event()
    fake = FakeProcess([block(1)], lingers=True)

    def on_progress(_: Progress) -> None:
        stop.set()

    with pytest.raises(InterruptedJob):
        run_ffmpeg(
            ["ffmpeg"],
            on_progress=on_progress,
            stop=stop,
            stall_timeout_s=60,
            clock=FakeClock(),
            term_grace_s=0.05,
            spawn=lambda _: fake,
            poll_interval_s=0.001,
        )
    assert fake.signals == [signal.SIGTERM]
    assert fake.reaped


def test_sigterm_ignored_escalates_to_sigkill_after_the_grace() -> None:
    stop = threading.Event()
    fake = FakeProcess([block(1)], lingers=True, ignores_sigterm=True)
    with pytest.raises(InterruptedJob):
        run_ffmpeg(
            ["ffmpeg"],
            on_progress=lambda _: stop.set(),
            stop=stop,
            stall_timeout_s=60,
            term_grace_s=0.05,
            spawn=lambda _: fake,
            poll_interval_s=0.001,
        )
    assert fake.signals == [signal.SIGTERM, signal.SIGKILL]
    assert fake.returncode == -signal.SIGKILL
    assert fake.reaped


def test_stop_before_start_never_spawns() -> None:
    stop = threading.Event()
    stop.set()

    def spawn(_: list[str]) -> Process:
        raise AssertionError("must not start ffmpeg")

    with pytest.raises(InterruptedJob):
        run_ffmpeg(["ffmpeg"], on_progress=None, stop=stop, stall_timeout_s=1, spawn=spawn)


def test_a_failing_callback_still_stops_ffmpeg() -> None:
    fake = FakeProcess([block(1)], lingers=True)

    def explode(_: Progress) -> None:
        raise KeyError("callback bug")

    with pytest.raises(KeyError):
        run_ffmpeg(
            ["ffmpeg"],
            on_progress=explode,
            stop=threading.Event(),
            stall_timeout_s=60,
            term_grace_s=0.05,
            spawn=lambda _: fake,
            poll_interval_s=0.001,
        )
    assert fake.signals == [signal.SIGTERM]
    assert fake.reaped


def test_error_exit_is_permanent_and_quotes_the_stderr_tail(tmp_path: Path) -> None:
    noise = [f"warning {n}\n" for n in range(100)]
    fake = FakeProcess(
        [block(1)], stderr=[*noise, "Error while decoding stream #0:0\n"], exit_code=1
    )
    with pytest.raises(PermanentError) as info:
        run(fake, tmp=tmp_path)
    message = str(info.value)
    assert "exit status 1" in message
    assert "Error while decoding stream #0:0" in message
    assert "warning 0" not in message  # only the tail is kept


def test_killed_by_signal_is_retryable(tmp_path: Path) -> None:
    fake = FakeProcess([block(1)], exit_code=-signal.SIGKILL)
    with pytest.raises(RetryableError, match="SIGKILL") as info:
        run(fake, tmp=tmp_path)
    assert not isinstance(info.value, StalledError)


def test_no_space_left_is_retryable_with_a_delay(tmp_path: Path) -> None:
    fake = FakeProcess(
        [block(1)],
        stderr=["av_interleaved_write_frame(): No space left on device\n"],
        exit_code=228,
    )
    with pytest.raises(RetryableError, match="disk full") as info:
        run(fake, tmp=tmp_path)
    assert info.value.delay_s is not None


@pytest.mark.parametrize(
    ("returncode", "tail", "free", "expected"),
    [
        (1, ["Invalid data found when processing input"], 10**12, PermanentError),
        (1, [], None, PermanentError),
        (234, ["Invalid argument"], 10**12, PermanentError),
        (-9, [], 10**12, RetryableError),
        (-15, [], 10**12, RetryableError),
        (255, ["Exiting normally, received signal 15."], 10**12, RetryableError),
        (1, ["Error muxing a packet"], DISK_FULL_MARGIN_BYTES - 1, RetryableError),
        (1, ["No space left on device"], 10**12, RetryableError),
    ],
)
def test_classify_failure(
    returncode: int, tail: list[str], free: int | None, expected: type[Exception]
) -> None:
    error = classify_failure(returncode, tail, free)
    assert type(error) is expected


def test_a_kill_says_what_likely_sent_it() -> None:
    # The kernel's out-of-memory killer sends SIGKILL; hevcq sends it only after SIGTERM.
    message = str(classify_failure(-9, [], 10**12))
    assert message.startswith("ffmpeg killed by signal SIGKILL (the kernel does this when memory")
    assert "memory" not in str(classify_failure(-15, [], 10**12))


def test_stderr_tail_is_bounded_in_the_message() -> None:
    tail = [f"line {n}" for n in range(STDERR_TAIL_LINES)]
    message = str(classify_failure(1, tail, None))
    assert "line 39" in message
    assert "line 0 " not in message
    assert len(message) < 400


def test_find_ffmpeg_prefers_the_configured_binary(tmp_path: Path) -> None:
    binary = tmp_path / "my-ffmpeg"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_ffmpeg(str(binary)) == str(binary)


def test_find_ffmpeg_rejects_a_missing_configured_binary(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        find_ffmpeg(str(tmp_path / "nope"))


def test_find_ffmpeg_falls_back_to_a_usable_binary() -> None:
    assert Path(find_ffmpeg()).is_file()


def test_the_message_keeps_the_cause_and_drops_the_threads_winding_down() -> None:
    # ffmpeg's own tail when libopus refused a layout, SVT-AV1's banner in front of it:
    # the cause came first and the last five lines were all echoes of it.
    tail = [
        "Svt[info]: -------------------------------------------",
        "Svt[info]: SVT [version]:\tSVT-AV1 Encoder Lib v4.2.0",
        "[libopus @ 0x55fc8c17d0c0] Invalid channel layout 5.1(side) for specified mapping"
        " family -1.",
        "[aost#0:1/libopus @ 0x55fc8c17c4c0] [enc:libopus @ 0x55fc8c1182c0] Error while opening"
        " encoder - maybe incorrect parameters such as bit_rate, rate, width or height.",
        "[af#0:0 @ 0x55fc8c13d900] Error sending frames to consumers: Invalid argument",
        "[af#0:0 @ 0x55fc8c13d900] Task finished with error code: -22 (Invalid argument)",
        "[af#0:0 @ 0x55fc8c13d900] Terminating thread with return code -22 (Invalid argument)",
        "[aost#0:1/libopus @ 0x55fc8c17c4c0] [enc:libopus @ 0x55fc8c1182c0] Could not open"
        " encoder before EOF",
        "[aost#0:1/libopus @ 0x55fc8c17c4c0] Task finished with error code: -22 (Invalid argument)",
        "[aost#0:1/libopus @ 0x55fc8c17c4c0] Terminating thread with return code -22 (Invalid"
        " argument)",
        "[out#0/webm @ 0x564352730800] Nothing was written into output file, because at least"
        " one of its streams received no packets.",
    ]
    message = str(classify_failure(234, tail, 10**12))
    assert message == (
        "ffmpeg failed with exit status 234: [libopus] Invalid channel layout 5.1(side) for"
        " specified mapping family -1. | [aost#0:1/libopus] [enc:libopus] Error while opening"
        " encoder - maybe incorrect parameters such as bit_rate, rate, width or height."
        " | [aost#0:1/libopus] [enc:libopus] Could not open encoder before EOF"
    )


def test_a_tail_of_echoes_alone_is_still_quoted() -> None:
    tail = ["[out#0/mp4 @ 0x5643] Nothing was written into output file, because at least one"]
    assert "[out#0/mp4] Nothing was written" in str(classify_failure(1, tail, 10**12))
