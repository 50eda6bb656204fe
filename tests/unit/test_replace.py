"""Verified, atomic, reversible placement: verification, swap order under crashes, rollback."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hevcq.errors import PermanentError
from hevcq.library import quarantine
from hevcq.library.quarantine import (
    DEFAULT_QUARANTINE,
    Conflict,
    OutputExists,
    ReplaceRefused,
    compare,
    list_quarantine,
    place_output,
    purge,
    recover,
    rollback,
    swap_in,
    verify_replacement,
)
from hevcq.media.model import AudioStream, MediaInfo, SubtitleStream, VideoStream
from hevcq.media.verify import readable_video_end
from tests.conftest import run_cli

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ORIGINAL = b"original h264 bytes " * 200
CANDIDATE = b"hevc output " * 100
OLD_NS = 1_600_000_000_123_456_789


def info(
    duration: float | None = 10.0, videos: int = 1, audios: int = 1, subtitles: int = 0
) -> MediaInfo:
    v = tuple(VideoStream(i, "hevc", 64, 48, "yuv420p", 8) for i in range(videos))
    a = tuple(AudioStream(videos + i, "aac") for i in range(audios))
    s = tuple(SubtitleStream(videos + audios + i, "mov_text") for i in range(subtitles))
    return MediaInfo("mov,mp4", duration, 1, v, a, subtitles=s)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    return root


def setup_pair(lib: Path, name: str = "a.MOV") -> tuple[Path, Path, Path]:
    original = lib / "sub" / name
    original.write_bytes(ORIGINAL)
    os.utime(original, ns=(OLD_NS, OLD_NS))
    candidate = lib.parent / "work" / "out.mp4"
    candidate.parent.mkdir(exist_ok=True)
    candidate.write_bytes(CANDIDATE)
    return original, candidate, lib / ".hevcq" / "quarantine"


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".hevcq-"))


# --- verification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cand", "orig", "reason"),
    [
        (info(10.0), info(10.4), None),
        (info(10.0), info(10.6), "duration 10.00 s differs"),
        (info(10.0, audios=0), info(10.0), "stream counts differ"),
        (info(10.0, videos=2), info(10.0), "stream counts differ"),
        (info(None), info(10.0), "duration unknown"),
        (info(10.0, subtitles=2), info(10.0, subtitles=2), None),
        (info(10.0, subtitles=1), info(10.0), None),  # none lost
        (info(10.0), info(10.0, subtitles=2), "it holds 0 of the original's 2 subtitle"),
        (info(10.0, subtitles=1), info(10.0, subtitles=2), "1 of the original's 2"),
        (info(10.0), info(10.0, subtitles=1), "(an MP4 cannot hold bitmap subtitles;"),
    ],
)
def test_compare(cand: MediaInfo, orig: MediaInfo, reason: str | None) -> None:
    got = compare(cand, orig)
    assert got == reason if reason is None else reason in (got or "")


def fake_probe(by_name: dict[str, MediaInfo]) -> Callable[[Path], MediaInfo]:
    def probe(path: Path) -> MediaInfo:
        found = by_name.get(path.name)
        if found is None:
            raise PermanentError("unreadable or truncated: moov atom not found")
        return found

    return probe


def no_sound(path: Path) -> dict[int, float]:
    """``sound_fn`` for files whose sound is not looked at."""
    return {}


def test_verification_accepts_a_good_candidate(lib: Path) -> None:
    original, candidate, _ = setup_pair(lib)
    probe = fake_probe({"a.MOV": info(10.0), "out.mp4": info(10.02)})
    verify_replacement(
        candidate,
        original,
        allow_larger=False,
        probe_fn=probe,
        decode_fn=lambda p: 9.98,
        sound_fn=no_sound,
    )


def check(
    candidate: Path,
    original: Path,
    probed: dict[str, MediaInfo],
    *,
    decoded: float,
    sound: Callable[[Path], dict[int, float]] = no_sound,
    span: Callable[[Path, int], float | None] = readable_video_end,
) -> None:
    """``verify_replacement`` on fakes: the files probed as ``probed`` (by name), the
    candidate's picture decoding to ``decoded`` seconds, their sound and the original's
    picture span as given."""
    verify_replacement(
        candidate,
        original,
        allow_larger=False,
        probe_fn=fake_probe(probed),
        decode_fn=lambda p: decoded,
        sound_fn=sound,
        video_span_fn=span,
    )


@pytest.mark.parametrize(
    ("probed", "decoded", "grow", "reason"),
    [
        ({"a.MOV": info(10.0)}, 10.0, False, "candidate unreadable"),
        ({"a.MOV": info(10.0), "out.mp4": info(4.0)}, 4.0, False, "duration 4.00 s"),
        ({"a.MOV": info(10.0), "out.mp4": info(10.0)}, 6.0, False, "only 6.00 s"),
        ({"out.mp4": info(10.0)}, 10.0, False, "original unreadable"),
        ({"a.MOV": info(10.0), "out.mp4": info(10.0)}, 10.0, True, "larger than"),
    ],
)
def test_a_refused_candidate_leaves_the_original_untouched(
    lib: Path,
    probed: dict[str, MediaInfo],
    decoded: float,
    grow: bool,
    reason: str,
) -> None:
    original, candidate, _ = setup_pair(lib)
    if grow:
        candidate.write_bytes(ORIGINAL + b"more")
    with pytest.raises(ReplaceRefused, match=reason):
        check(candidate, original, probed, decoded=decoded)
    assert original.read_bytes() == ORIGINAL
    assert original.stat().st_mtime_ns == OLD_NS
    assert sorted(p.name for p in original.parent.iterdir()) == ["a.MOV"]


def test_a_candidate_must_last_as_long_as_the_originals_picture_not_its_file(
    lib: Path,
) -> None:
    """An original whose picture starts 2 s after its sound: its file lasts 6 s, its
    picture 4 s, and so does a faithful encode's. It was refused as truncated."""
    original, candidate, _ = setup_pair(lib)
    probed = {"a.MOV": info(6.0), "out.mp4": info(6.0)}
    spans: list[tuple[str, int]] = []

    def picture(path: Path, index: int) -> float:
        spans.append((path.name, index))
        return 4.0

    check(candidate, original, probed, decoded=4.0, span=picture)
    assert spans == [("a.MOV", 0)]
    # A candidate whose picture stops short of the original's is still refused.
    with pytest.raises(ReplaceRefused, match=r"only 2\.50 s of 4\.00 s decode: truncated"):
        check(candidate, original, probed, decoded=2.5, span=picture)
    assert original.read_bytes() == ORIGINAL
    # An original trimmed by an edit list reads 8 s of packets and plays 6.7 s, as its
    # encode does: the file's length bounds what its packets say.
    probed = {"a.MOV": info(6.7), "out.mp4": info(6.7)}
    check(candidate, original, probed, decoded=6.7, span=lambda path, index: 8.0)


def check_sound(
    candidate: Path,
    original: Path,
    probed: dict[str, MediaInfo],
    sound: dict[str, dict[int, float]],
) -> None:
    """``verify_replacement`` of a whole picture, with the seconds of sound each file's
    audio streams decode to, by file name and stream index."""
    check(candidate, original, probed, decoded=12.0, sound=lambda p: sound[p.name])


def test_a_candidate_must_give_as_much_sound_as_the_original(lib: Path) -> None:
    """Its picture decodes in full, and its sound is short: AAC copied from MPEG-TS across
    a change to 5.1 does not decode from the change on. Refused; within the tolerance, kept."""
    original, candidate, _ = setup_pair(lib)
    probed = {"a.MOV": info(12.0, audios=2), "out.mp4": info(12.0, audios=2)}
    sound = {"a.MOV": {1: 12.1, 2: 12.1}, "out.mp4": {1: 12.1, 2: 8.06}}
    with pytest.raises(
        ReplaceRefused,
        match=r"audio stream 2 decodes to 8\.06 s of sound where the original's gives 12\.10 s",
    ):
        check_sound(candidate, original, probed, sound)
    assert original.read_bytes() == ORIGINAL
    sound["out.mp4"][2] = 12.1 - 0.45  # an encoder's priming and padding
    check_sound(candidate, original, probed, sound)


def test_an_originals_stream_without_a_shape_is_left_out_unless_it_holds_sound(lib: Path) -> None:
    """A broadcast's listed, silent second language: no output has it, and none loses
    anything. One whose sound starts past what the probe read is another matter."""
    original, candidate, _ = setup_pair(lib)
    silent = AudioStream(2, "mp2", channels=0)
    recording = dataclasses.replace(info(12.0), audio=(*info(12.0).audio, silent))
    probed = {"a.MOV": recording, "out.mp4": info(12.0)}
    sound = {"a.MOV": {1: 12.0, 2: 0.0}, "out.mp4": {1: 12.0}}
    check_sound(candidate, original, probed, sound)
    sound["a.MOV"][2] = 4.0
    with pytest.raises(ReplaceRefused, match=r"the original's stream 2 holds 4\.00 s of sound"):
        check_sound(candidate, original, probed, sound)
    assert original.read_bytes() == ORIGINAL


def test_larger_candidate_allowed_when_asked(lib: Path) -> None:
    original, candidate, _ = setup_pair(lib)
    candidate.write_bytes(ORIGINAL + b"more")
    probe = fake_probe({"a.MOV": info(10.0), "out.mp4": info(10.0)})
    verify_replacement(
        candidate,
        original,
        allow_larger=True,
        probe_fn=probe,
        decode_fn=lambda p: 10.0,
        sound_fn=no_sound,
    )


def test_refused_is_permanent() -> None:
    assert issubclass(ReplaceRefused, PermanentError)


# --- place_output -------------------------------------------------------------------------


def test_place_output_is_atomic_and_never_clobbers(lib: Path) -> None:
    _, candidate, _ = setup_pair(lib)
    dest = lib / "out" / "hevc" / "a.mp4"
    assert place_output(candidate, dest) == dest
    assert dest.read_bytes() == CANDIDATE
    assert place_output(candidate, dest) == dest  # same bytes again: a no-op
    other = lib / "sub" / "b.mp4"
    other.write_bytes(b"someone else's file")
    with pytest.raises(OutputExists):
        place_output(candidate, other)
    assert other.read_bytes() == b"someone else's file"
    place_output(candidate, other, overwrite=True)
    assert other.read_bytes() == CANDIDATE
    assert temps(dest.parent) == temps(other.parent) == []


# --- swap_in, rollback, purge ---------------------------------------------------------------


def test_swap_in_places_the_output_and_keeps_the_original(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib)
    entry = swap_in(original, candidate, quarantine_root=qroot, keep_days=30, now=NOW)
    final = lib / "sub" / "a.mp4"
    assert entry.final == final.absolute()
    assert not original.exists()
    st = final.stat()  # before reading it, which would update the atime
    assert (st.st_mtime_ns, st.st_atime_ns) == (OLD_NS, OLD_NS)
    assert final.read_bytes() == CANDIDATE
    assert entry.quarantined.read_bytes() == ORIGINAL
    assert entry.keep_until == NOW + timedelta(days=30)
    (listed,) = list_quarantine(qroot)
    assert (listed.state, listed.original) == ("complete", original.absolute())
    assert temps(original.parent) == []
    assert candidate.read_bytes() == CANDIDATE  # the caller's file is left alone


def test_swap_in_on_the_same_path(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib, "a.mp4")
    entry = swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    assert entry.same_path
    assert original.read_bytes() == CANDIDATE
    assert rollback(qroot) == [original.absolute()]
    assert original.read_bytes() == ORIGINAL
    assert original.stat().st_mtime_ns == OLD_NS


def test_swap_in_refuses_to_take_another_files_path(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib)
    (lib / "sub" / "a.mp4").write_bytes(b"a different video")
    with pytest.raises(ReplaceRefused, match="already exists"):
        swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    assert original.read_bytes() == ORIGINAL
    assert (lib / "sub" / "a.mp4").read_bytes() == b"a different video"
    assert list_quarantine(qroot) == []


def test_swap_in_beside_a_sibling_takes_the_name_it_is_given(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib)
    sibling = lib / "sub" / "a.mp4"
    sibling.write_bytes(b"a different video")
    final = lib / "sub" / "a.MOV.mp4"
    entry = swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW, final=final)
    assert entry.final == final.absolute()
    assert final.read_bytes() == CANDIDATE
    assert sibling.read_bytes() == b"a different video"
    assert rollback(qroot) == [original.absolute()]
    assert not final.exists()
    assert original.read_bytes() == ORIGINAL


def test_swap_in_refuses_a_symlink(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib)
    link = lib / "sub" / "link.mov"
    link.symlink_to(original)
    with pytest.raises(ReplaceRefused, match="not a regular file"):
        swap_in(link, candidate, quarantine_root=qroot, keep_days=1, now=NOW)


def test_rollback_restores_originals(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib)
    other = lib / "sub" / "b.mkv"
    other.write_bytes(b"mkv original")
    swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    swap_in(other, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    assert (lib / "sub" / "b.mkv").read_bytes() == CANDIDATE  # Matroska stays Matroska
    assert rollback(qroot, lib / "sub" / "a.mp4") == [original.absolute()]  # by final path
    assert original.read_bytes() == ORIGINAL
    assert original.stat().st_mtime_ns == OLD_NS
    assert not (lib / "sub" / "a.mp4").exists()
    assert rollback(qroot) == [other.absolute()]
    assert other.read_bytes() == b"mkv original"
    assert list_quarantine(qroot) == []


def test_rollback_keeps_an_output_the_user_changed(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib)
    swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    final = lib / "sub" / "a.mp4"
    final.write_bytes(b"edited by the user")
    assert rollback(qroot) == [original.absolute()]
    assert original.read_bytes() == ORIGINAL
    assert final.read_bytes() == b"edited by the user"


def _touched(path: Path) -> None:
    os.utime(path, ns=(OLD_NS + 10**12, OLD_NS + 10**12))  # a sync client rewrote its times


def _written_anew(path: Path) -> None:
    copy = path.with_name(path.name + ".restored")
    shutil.copyfile(path, copy)
    copy.replace(path)  # the same bytes under another inode, as a restore writes them


@pytest.mark.parametrize("name", ["a.MOV", "a.mp4"], ids=["beside", "same-path"])
@pytest.mark.parametrize("change", [_touched, _written_anew], ids=["touched", "written-anew"])
def test_rollback_takes_back_an_output_a_sync_or_restore_rewrote_unchanged(
    lib: Path, name: str, change: Callable[[Path], None]
) -> None:
    """Its mtime or inode is not what was placed, its bytes are: it is still ours, and the
    original comes back (a sync client touching every swapped-in file made every rollback a
    conflict, the originals left in the quarantine for the user to move by hand)."""
    original, candidate, qroot = setup_pair(lib, name)
    entry = swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    change(entry.final)
    conflicts: list[Conflict] = []
    assert rollback(qroot, conflicts=conflicts) == [original.absolute()]
    assert conflicts == []
    assert original.read_bytes() == ORIGINAL
    assert entry.final == original.absolute() or not entry.final.exists()


def test_rollback_keeps_an_output_edited_to_the_same_size(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib, "a.mp4")
    swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    edited = bytes(reversed(CANDIDATE))  # the same size, other bytes
    assert edited != CANDIDATE
    original.write_bytes(edited)
    conflicts: list[Conflict] = []
    assert rollback(qroot, conflicts=conflicts) == []
    assert [c.reason for c in conflicts] == [
        "the file there changed since hevcq swapped it in; it stays as it is"
    ]
    assert original.read_bytes() == edited


def test_rollback_never_overwrites_a_replaced_same_path_file(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib, "a.mp4")
    swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    original.unlink()
    original.write_bytes(b"a new file the user put here")
    conflicts: list[Conflict] = []
    assert rollback(qroot, conflicts=conflicts) == []
    assert original.read_bytes() == b"a new file the user put here"
    [entry] = list_quarantine(qroot)  # kept for the user to resolve
    # Said, with where the original still is (it was only a log line).
    assert conflicts == [
        Conflict(
            original.absolute(),
            "the file there changed since hevcq swapped it in; it stays as it is",
            entry.quarantined,
        )
    ]


def test_purge_deletes_only_expired_originals(lib: Path) -> None:
    original, candidate, qroot = setup_pair(lib)
    other = lib / "sub" / "b.mov"
    other.write_bytes(b"b")
    old = swap_in(original, candidate, quarantine_root=qroot, keep_days=7, now=NOW)
    swap_in(other, candidate, quarantine_root=qroot, keep_days=30, now=NOW)
    (qroot / "junk-without-manifest").mkdir()
    assert purge(qroot, NOW + timedelta(days=6)) == []
    assert purge(qroot, NOW + timedelta(days=8)) == [original.absolute()]
    assert not old.quarantined.exists()
    assert [e.original for e in list_quarantine(qroot)] == [other.absolute()]
    assert not (qroot / "junk-without-manifest").exists()
    assert rollback(qroot, original) == []  # purged: nothing left to restore


# --- crash injection --------------------------------------------------------------------------


class Crash(BaseException):
    """A simulated power cut: no except clause of ours sees it."""


class Injector:
    """Counts os-level steps and fails the n-th one, by crash or by an I/O error."""

    STEPS = ("rename", "replace", "link", "unlink", "fsync", "utime", "mkdir")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None, mode: str) -> None:
        self.count, self.fail_at, self.mode, self.armed = 0, fail_at, mode, True
        for name in self.STEPS:
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))
        real_copy = shutil.copyfileobj

        def half_copy(src: Any, dst: Any, length: int = 0) -> None:
            if self._hit():
                dst.write(src.read(len(CANDIDATE) // 2))  # a torn, partial temp file
                self._fail()
            real_copy(src, dst, length)

        monkeypatch.setattr(shutil, "copyfileobj", half_copy)

    def _hit(self) -> bool:
        if not self.armed:
            return False
        self.count += 1
        return self.count == self.fail_at

    def _fail(self) -> None:
        if self.mode == "crash":
            raise Crash
        raise OSError(errno.EIO, "injected I/O error")

    def _wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            if self._hit():
                self._fail()
            return real(*args, **kwargs)

        return step


def _steps(lib: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> int:
    (lib / "sub").mkdir(parents=True)
    original, candidate, qroot = setup_pair(lib, name)
    with monkeypatch.context() as m:
        inj = Injector(m, None, "crash")
        swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
        return inj.count


def _assert_recoverable(original: Path, final: Path, qroot: Path) -> None:
    """The original is at its path or quarantined with a manifest; final is never partial."""
    entries = list_quarantine(qroot)
    at_path = original.exists() and original.read_bytes() == ORIGINAL
    quarantined = [e for e in entries if e.quarantined.exists()]
    assert at_path or (quarantined and quarantined[0].quarantined.read_bytes() == ORIGINAL)
    if quarantined:
        assert quarantined[0].original == original.absolute()
    if final.exists():
        assert final.read_bytes() in (ORIGINAL, CANDIDATE)


@pytest.mark.parametrize("name", ["a.MOV", "a.mp4"])
@pytest.mark.parametrize("then", ["rollback", "recover"])
def test_a_crash_at_any_step_is_recoverable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, then: str
) -> None:
    total = _steps(tmp_path / "count", monkeypatch, name)
    assert total >= 15  # every durable step is counted
    for k in range(1, total + 1):
        lib = tmp_path / f"{then}-{k}"
        (lib / "sub").mkdir(parents=True)
        original, candidate, qroot = setup_pair(lib, name)
        final = lib / "sub" / "a.mp4"
        with monkeypatch.context() as m:
            inj = Injector(m, k, "crash")
            with pytest.raises(Crash):
                swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
            inj.armed = False
        _assert_recoverable(original, final, qroot)
        if then == "rollback":
            rollback(qroot)
            assert original.read_bytes() == ORIGINAL, f"step {k}"
            assert original.stat().st_mtime_ns == OLD_NS
            assert final == original or not final.exists(), f"step {k}"
        else:
            recover(qroot)
            entries = list_quarantine(qroot)
            if entries:  # finished: the output in place, the original kept
                assert final.stat().st_mtime_ns == OLD_NS, f"step {k}"
                assert final.read_bytes() == CANDIDATE, f"step {k}"
                assert entries[0].quarantined.read_bytes() == ORIGINAL
            else:  # undone: as if never started
                assert original.read_bytes() == ORIGINAL, f"step {k}"
                assert final == original or not final.exists(), f"step {k}"
        assert temps(original.parent) == [], f"step {k}"
        assert all(e.state == "complete" for e in list_quarantine(qroot))


@pytest.mark.parametrize("name", ["a.MOV", "a.mp4"])
def test_an_io_error_at_any_step_leaves_the_original_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    total = _steps(tmp_path / "count", monkeypatch, name)
    for k in range(1, total + 1):
        lib = tmp_path / f"err-{k}"
        (lib / "sub").mkdir(parents=True)
        original, candidate, qroot = setup_pair(lib, name)
        with monkeypatch.context() as m:
            inj = Injector(m, k, "error")
            with pytest.raises(OSError, match="injected"):
                swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
            inj.armed = False
        assert original.read_bytes() == ORIGINAL, f"step {k}"
        assert original.stat().st_mtime_ns == OLD_NS
        final = lib / "sub" / "a.mp4"
        assert final == original or not final.exists(), f"step {k}"
        assert temps(original.parent) == [], f"step {k}"
        assert list_quarantine(qroot) == [], f"step {k}"


def test_module_exposes_default_quarantine() -> None:
    assert Path(".hevcq/quarantine") == quarantine.DEFAULT_QUARANTINE


def test_filesystems_without_hard_links_still_swap(
    lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    original, candidate, qroot = setup_pair(lib)
    swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    assert (lib / "sub" / "a.mp4").read_bytes() == CANDIDATE
    assert rollback(qroot) == [original.absolute()]
    assert original.read_bytes() == ORIGINAL


def test_rollback_waits_for_no_run_and_marks_what_it_put_back(
    lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hevcq rollback` moves files an ingest with --replace may be swapping right now: it
    is refused while a run holds the library, and once it runs it marks each original it
    put back in the catalog (the next --replace leaves them)."""
    from hevcq.library.catalog import Catalog, RunLock  # noqa: PLC0415

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    qroot = lib / DEFAULT_QUARANTINE
    original, candidate, _ = setup_pair(lib)
    swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    args = ["rollback", "--all", "--library", str(lib)]
    with RunLock.take(lib, "hevcq ingest"):
        refused = run_cli(args)
    assert refused.exit_code == 2, refused.output
    assert "already brings results home to this library" in " ".join(refused.output.split())
    assert not original.exists()
    done = run_cli(args)
    assert done.exit_code == 0, done.output
    assert original.read_bytes() == ORIGINAL
    with Catalog.for_library(lib) as state:
        back = state.load_rollbacks()[original.relative_to(lib).as_posix()]
    st = original.stat()
    assert back.holds(st.st_size, st.st_mtime_ns, st.st_ino)


def test_a_rollback_marks_the_original_with_the_hash_the_swap_knew(
    lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog's hash of the original goes into the manifest while the original is
    still the version it was taken at, and from there onto the rollback's mark."""
    from hevcq.library.catalog import Catalog  # noqa: PLC0415

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    qroot = lib / DEFAULT_QUARANTINE
    original, candidate, _ = setup_pair(lib)
    st = original.stat()
    known = ((st.st_size, st.st_mtime_ns, st.st_ino), "f1:known")
    entry = swap_in(
        original, candidate, quarantine_root=qroot, keep_days=1, now=NOW, original_hash=known
    )
    assert entry.original_hash == "f1:known"
    done = run_cli(["rollback", "--all", "--library", str(lib)])
    assert done.exit_code == 0, done.output
    with Catalog.for_library(lib) as state:
        back = state.load_rollbacks()[original.relative_to(lib).as_posix()]
    assert back.content_hash == "f1:known"
    # A hash taken of another version of the file is not the original's.
    stale = ((st.st_size, st.st_mtime_ns + 1, st.st_ino), "f1:older")
    again = swap_in(
        original, candidate, quarantine_root=qroot, keep_days=1, now=NOW, original_hash=stale
    )
    assert again.original_hash is None


@pytest.mark.parametrize("command", ["list", "purge"])
def test_quarantine_of_a_folder_with_none_says_to_give_the_library(
    tmp_path: Path, command: str
) -> None:
    """Run from anywhere but the library, `quarantine list` showed an empty table and
    `purge` "0 originals purged", as if the library's quarantine were empty."""

    done = run_cli(["quarantine", command, str(tmp_path)])
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())  # the console may wrap, as an earlier test set it
    assert said.startswith(f"No quarantine in {tmp_path.resolve()}: nothing was replaced")


@pytest.mark.parametrize("named", ["relative", "symlink"])
def test_rollback_marks_what_it_put_back_however_the_library_is_named(
    lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    """`rollback --all --library lib` from the library's parent put the original back but
    warned "not marked so: ... is not in the subpath of 'lib'": the next --replace swapped
    the original a person chose out again."""
    from hevcq.library.catalog import Catalog  # noqa: PLC0415

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    original, candidate, qroot = setup_pair(lib)
    swap_in(original, candidate, quarantine_root=qroot, keep_days=1, now=NOW)
    monkeypatch.chdir(lib.parent)
    if named == "symlink":
        (lib.parent / "via-link").symlink_to(lib)
    given = lib.name if named == "relative" else "via-link"
    done = run_cli(["rollback", "--all", "--library", given])
    assert done.exit_code == 0, done.output
    assert "warning" not in done.output
    assert original.read_bytes() == ORIGINAL
    with Catalog.for_library(lib.resolve()) as state:
        assert original.relative_to(lib).as_posix() in state.load_rollbacks()


def test_rollback_outside_a_library_names_the_folder_it_looked_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "Nothing to roll back: the quarantine is empty." of a folder with none."""
    monkeypatch.chdir(tmp_path)
    done = run_cli(["rollback", "--all"])
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert said.startswith(f"No quarantine in {tmp_path.resolve()}: nothing was replaced")
