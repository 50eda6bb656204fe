"""The library scan: filters, state store fast path, duplicates, problems, estimates."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hevcq.errors import PermanentError
from hevcq.library import scan as scan_module
from hevcq.library import walk
from hevcq.library.catalog import (
    Catalog,
    decision_from_json,
    decision_to_json,
    default_store_path,
    info_from_json,
    info_to_json,
)
from hevcq.library.estimate import (
    FARGATE_PRICES,
    PER_TITLE_PROBE_SHARE,
    PROBE_SCORE_SPEED,
    SCORE_SPEED,
    SEARCH_PROBES,
    JobWork,
    TaskSize,
    estimate,
    job_work,
    rung_work,
)
from hevcq.library.scan import PoolTotals, ScanOptions, ScanReport, scan
from hevcq.library.walk import Matcher, fingerprint, glob_regex, sample_offsets
from hevcq.media.model import AudioStream, Decision, EncodePlan, MediaInfo, Skip, VideoStream
from hevcq.pools import Applies, Encode, Pool, Quality, load_farm, primary_pool
from hevcq.settings import state_dir

HEVC = Pool(name="hevc", applies=Applies(source_codecs=("h264",)))
P720 = Pool(
    name="720p",
    output_suffix=".720p",
    applies=Applies(source_codecs=("h264", "hevc"), target_height=720),
)
POOLS = (HEVC, P720)


class FakeProbe:
    """Reads the codec from the file's first line; counts calls per file name."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, path: Path) -> MediaInfo:
        self.calls.append(path.name)
        head = path.read_bytes()[:16]
        if head.startswith(b"BAD"):
            raise PermanentError("not a media file: invalid data")
        codec = head.split(b"\n")[0].decode() or "h264"
        video = (VideoStream(0, codec, 1920, 1080, "yuv420p", 8),)
        return MediaInfo("mov,mp4", 12.5, path.stat().st_size, video, (AudioStream(1, "aac"),))


class FakeDecide:
    """Encode h264 in every pool, hevc only in renditions; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, info: MediaInfo, pool: Pool, source_name: str) -> Decision:
        self.calls += 1
        codec = info.video[0].codec
        if codec not in pool.applies.source_codecs:
            return Skip(f"{codec} source")
        return EncodePlan(
            pool=pool.name,
            container="mp4",
            video_index=0,
            width=1920,
            height=1080,
            rotation=0,
            ten_bit=False,
            crf=pool.encode.crf,
            preset="medium",
        )


def make(root: Path, rel: str, body: bytes = b"h264\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body + rel.encode())  # distinct content per path unless asked otherwise
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(tmp_path / "state" / "lib.sqlite3") as s:
        yield s


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    return root


def run(root: Path, store: Catalog, probe: FakeProbe | None = None, **kw: Any) -> ScanReport:
    decide = kw.pop("decide", None) or FakeDecide()
    pools = kw.pop("pools", POOLS)
    return scan(
        root,
        pools,
        store,
        kw.pop("options", None),
        probe_fn=probe or FakeProbe(),
        decide_fn=decide,
        workers=2,
        **kw,
    )


# --- filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("*.mp4", "a.mp4", True),
        ("*.mp4", "d/a.mp4", False),  # '*' stays in one segment
        ("**/*.mp4", "d/e/a.MP4", True),  # case-insensitive, any depth
        ("**/*.mp4", "a.mp4", True),  # '**/' also matches no folder
        ("Camera/**", "Camera", True),  # names the folder itself, so it is pruned
        ("Camera/**", "Camera/2024/x.mov", True),
        ("Camera/**", "CameraRoll/x.mov", False),
        ("clip?.mov", "clip1.mov", True),
        ("clip[!0-9].mov", "clip1.mov", False),
        ("a+b (1).mov", "a+b (1).mov", True),  # regex metacharacters are literal
    ],
)
def test_glob_regex(pattern: str, path: str, hit: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is hit


@pytest.mark.parametrize(
    ("rel", "wanted"),
    [
        ("a.MOV", True),
        ("b.mts", True),
        # camera and broadcast recordings: professional MXF, SD camcorders, HDV, DV
        ("cam/C0001.MXF", True),
        ("cam/MOV001.MOD", True),
        ("cam/MOV001.TOD", True),
        ("tape/hdv.m2t", True),
        ("tape/capture.dv", True),
        # TV recorders: Windows Media Center, set-top boxes' transport streams
        ("tv/News.wtv", True),
        ("tv/Film.dvr-ms", True),
        ("tv/rec0001.tp", True),
        ("tv/rec0002.TRP", True),
        # a DVD's MPEG-2 video alone, an OGM and RealMedia: listed, skipped where no
        # pool takes their codec
        ("dvd/title.m2v", True),
        ("anime/ep01.ogm", True),
        ("old/clip.rmvb", True),
        ("old/clip.rm", True),
        ("c.jpg", False),
        ("c.m3u8", False),
        ("noext", False),
        ("._a.mov", False),  # macOS AppleDouble debris
        ("x/@eaDir/a.mp4/SYNOFILM.mp4", False),
    ],
)
def test_default_filters(rel: str, wanted: bool) -> None:
    m = Matcher.from_options(ScanOptions())
    ok = m.wants_file(rel) and all(
        m.wants_dir("/".join(rel.split("/")[: i + 1])) for i in range(rel.count("/"))
    )
    assert ok is wanted


def test_include_exclude_and_extensions(lib: Path, store: Catalog) -> None:
    for rel in ("Camera/a.mp4", "Camera/b.mkv", "Camera/skip/c.mp4", "Other/d.mp4", "e.MOV"):
        make(lib, rel)
    opts = ScanOptions(
        extensions=frozenset({"MP4", ".mov"}),
        include=("Camera/**", "*.mov"),
        exclude=("Camera/skip",),
    )
    report = run(lib, store, options=opts)
    assert [e.rel for e in report.entries] == ["Camera/a.mp4", "e.MOV"]


# --- fingerprints ---------------------------------------------------------------------------


def test_sample_offsets_cover_head_middle_tail() -> None:
    assert sample_offsets(1000) == [(0, 1000)]
    size = 100 << 20
    windows = sample_offsets(size)
    assert windows[0] == (0, walk.EDGE_BYTES)
    assert windows[-1] == (size - walk.EDGE_BYTES, walk.EDGE_BYTES)
    assert len(windows) == walk.STRIPES + 2
    assert all(off >= 0 and off + n <= size for off, n in windows)


def test_fingerprint_sees_size_and_tail(tmp_path: Path) -> None:
    big = bytes(range(256)) * 16384  # 4 MiB: sampled
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(big)
    b.write_bytes(big[:-1] + b"!")
    c.write_bytes(big)
    assert fingerprint(a).startswith("s1:")
    assert fingerprint(a) == fingerprint(c)
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a, full=True).startswith("f1:")
    assert fingerprint(a, full=True) != fingerprint(a)


# --- the state store ------------------------------------------------------------------------


def test_state_dir_follows_xdg(tmp_path: Path) -> None:
    assert state_dir({"XDG_STATE_HOME": "/xdg"}, tmp_path) == Path("/xdg/hevcq")
    assert state_dir({"XDG_STATE_HOME": "rel"}, tmp_path) == tmp_path / ".local/state/hevcq"
    p1 = default_store_path(Path("/media/a"), tmp_path)
    assert p1.parent == tmp_path
    assert p1.suffix == ".sqlite3"
    assert p1 != default_store_path(Path("/media/b"), tmp_path)


def test_media_and_decisions_round_trip() -> None:
    info = MediaInfo(
        "mov,mp4",
        3.0,
        10,
        (VideoStream(0, "h264", 8, 6, "yuv420p", 8, 90, 30.0, colours=(1, 2, 2)),),
        (AudioStream(1, "aac", 6, bit_rate_kbps=384),),
    )
    assert info_from_json(info_to_json(info)) == info  # colours a tuple again, not a list
    plan = EncodePlan(
        pool="hevc",
        container="mp4",
        video_index=0,
        width=8,
        height=6,
        rotation=90,
        ten_bit=False,
        crf=26,
        preset="medium",
        x265_params={"aq-mode": "3"},
        audio=((1, "copy"), (3, "aac")),
        audio_rates=((3, 480),),
        subtitles=((2, "mov_text"),),
        extra_video=(4,),
    )
    assert decision_from_json(decision_to_json(plan)) == plan
    assert decision_from_json(decision_to_json(Skip("no"))) == Skip("no")
    with pytest.raises(ValueError, match="stale"):
        info_from_json('{"format_name": "x"}')


def test_a_bare_stream_probed_before_its_length_was_guessed_is_probed_again() -> None:
    video = (VideoStream(0, "h264", 1280, 720, "yuv420p", 8, fps=25.0),)
    guessed = MediaInfo("h264", None, 10, video, duration_guess_s=42.0)
    assert info_from_json(info_to_json(guessed)) == guessed
    older = info_to_json(guessed).replace(',"duration_guess_s":42.0', "")
    assert "duration_guess_s" not in older
    with pytest.raises(ValueError, match="stale"):
        info_from_json(older)
    # A file that states its length has nothing to guess.
    stated = MediaInfo("mov,mp4", 4.0, 10, video)
    assert info_from_json(info_to_json(stated).replace(',"duration_guess_s":null', "")) == stated


def test_a_file_stating_no_length_probed_before_such_files_were_measured_is_probed_again() -> None:
    video = (VideoStream(0, "vp8", 1280, 720, "yuv420p", 8, sized_by_keyframes=True),)
    measured = MediaInfo("matroska,webm", 42.0, 10, video, length_measured=True)
    assert info_from_json(info_to_json(measured)) == measured
    unknown = MediaInfo("matroska,webm", None, 10, video)  # read before measuring
    older = info_to_json(unknown).replace(',"length_measured":false', "")
    assert "length_measured" not in older
    with pytest.raises(ValueError, match="stale"):
        info_from_json(older)
    # One that could not be measured stays known as such; one that states its length
    # has nothing to measure.
    assert info_from_json(info_to_json(unknown)) == unknown
    stated = MediaInfo("mov,mp4", 4.0, 10, video)
    assert info_from_json(info_to_json(stated).replace(',"length_measured":false', "")) == stated


def test_a_vp8_or_vp9_picture_probed_before_its_keyframes_were_read_is_probed_again() -> None:
    # Such a record holds the first keyframe's size only: a call recording that started
    # at 320x180 was taken to be that small, and the 720p pool skipped it for good.
    for codec in ("vp8", "vp9"):
        read = MediaInfo(
            "matroska,webm",
            4.0,
            10,
            (VideoStream(0, codec, 1280, 720, "yuv420p", 8, sized_by_keyframes=True),),
        )
        assert info_from_json(info_to_json(read)) == read
        older = info_to_json(read).replace(',"sized_by_keyframes":true', "")
        assert "sized_by_keyframes" not in older
        with pytest.raises(ValueError, match="stale"):
            info_from_json(older)
    # Other codecs state one size in their header, so nothing about them is stale.
    h264 = MediaInfo("mov,mp4", 4.0, 10, (VideoStream(0, "h264", 1280, 720, "yuv420p", 8),))
    assert info_from_json(info_to_json(h264).replace(',"sized_by_keyframes":false', "")) == h264


def test_store_uses_wal(store: Catalog) -> None:
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


# --- the scan ----------------------------------------------------------------------------


def test_first_scan_decides_per_pool(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")
    make(lib, "sub/b.mkv", b"hevc\n")
    report = run(lib, store)
    a, b = report.entries
    assert (a.status, a.pools_to_encode, a.upload_key) == ("send", ("hevc", "720p"), "TODO/a.mp4")
    assert b.pools_to_encode == ("720p",)
    assert b.decisions["hevc"] == Skip("hevc source")
    assert report.totals["hevc"] == PoolTotals(1, a.size, 12.5, 12.5)
    assert report.totals["720p"] == PoolTotals(2, a.size + b.size, 25.0, 25.0)
    assert store.count() == 2


def test_unchanged_files_are_not_opened(lib: Path, store: Catalog) -> None:
    for i in range(20):
        make(lib, f"d{i % 3}/f{i}.mp4")
    run(lib, store)
    probe, decide = FakeProbe(), FakeDecide()

    def no_open(path: Path) -> str:
        raise AssertionError(f"opened {path}")

    report = run(lib, store, probe, decide=decide, fingerprint_fn=no_open)
    assert probe.calls == []
    assert decide.calls == 0
    assert report.reused == 20
    assert report.probed == 0
    assert all(e.cached and e.status == "send" for e in report.entries)


def test_changed_file_is_probed_again(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")
    path = make(lib, "b.mp4")
    run(lib, store)
    path.write_bytes(b"hevc\nnew content")
    os.utime(path, ns=(1, 1_000_000_000))
    probe = FakeProbe()
    report = run(lib, store, probe)
    assert probe.calls == ["b.mp4"]
    assert report.entries[1].decisions["hevc"] == Skip("hevc source")


def test_a_file_hevcq_swapped_in_is_never_a_source(lib: Path, store: Catalog) -> None:
    # A 1080p HEVC replacement of an H.264 original: the 720p pool would encode it.
    placed = make(lib, "cam/a.mp4", b"hevc\n")
    store.record_replacement("cam/a.mp4", placed.stat(), "cam/a.MOV")
    entry = next(e for e in run(lib, store).entries if e.rel == "cam/a.mp4")
    assert entry.status == "skip"
    assert entry.pools_to_encode == ()
    reason = entry.decisions["720p"]
    assert isinstance(reason, Skip)
    assert "from cam/a.MOV" in reason.reason


def test_a_file_hevcq_swapped_in_then_renamed_is_still_no_source(lib: Path, store: Catalog) -> None:
    """Renamed or moved, it is the same file: the 720p pool must not make a rendition of
    the rendition (it did, once the name no longer matched the replacement's record)."""
    placed = make(lib, "cam/a.mp4", b"hevc\n")
    store.record_replacement("cam/a.mp4", placed.stat(), "cam/a.MOV")
    (lib / "2024").mkdir()
    placed.rename(lib / "2024" / "beach.mp4")
    entry = next(e for e in run(lib, store).entries if e.rel == "2024/beach.mp4")
    assert (entry.status, entry.pools_to_encode) == ("skip", ())
    reason = entry.decisions["720p"]
    assert isinstance(reason, Skip)
    assert "from cam/a.MOV" in reason.reason


def test_a_replacement_changed_since_is_a_source_again(lib: Path, store: Catalog) -> None:
    placed = make(lib, "cam/a.mp4", b"hevc\n")
    store.record_replacement("cam/a.mp4", placed.stat(), "cam/a.MOV")
    placed.write_bytes(b"hevc\nedited by someone since")
    entry = next(e for e in run(lib, store).entries if e.rel == "cam/a.mp4")
    assert entry.pools_to_encode == ("720p",)


def test_a_replacement_touched_or_synced_since_is_still_no_source(
    lib: Path, store: Catalog
) -> None:
    """A sync client rewriting times gave hevcq's HEVC copy a new mtime: the 720p pool
    then made a rendition of it, over the one made from the original."""
    placed = make(lib, "cam/a.mp4", b"hevc\n")
    store.record_replacement(
        "cam/a.mp4", placed.stat(), "cam/a.MOV", fingerprint(placed, full=True)
    )
    read: list[Path] = []
    real = scan_module._holds_content

    def holds_content(pair: tuple[Any, str]) -> bool:
        read.append(pair[0].path)
        return real(pair)

    for n in range(2):  # the second run finds the new identity recorded, and reads nothing
        os.utime(placed, ns=(1, 2_000_000_000 + n))
        read.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scan_module, "_holds_content", holds_content)
            entry = next(e for e in run(lib, store).entries if e.rel == "cam/a.mp4")
            again = next(e for e in run(lib, store).entries if e.rel == "cam/a.mp4")
        assert (entry.status, entry.pools_to_encode) == ("skip", ())
        reason = entry.decisions["720p"]
        assert isinstance(reason, Skip)
        assert "from cam/a.MOV" in reason.reason
        assert again.status == "skip"
        assert read == [placed]  # hashed once, by the first of the two runs
    st = placed.stat()
    assert store.load_replacements()["cam/a.mp4"].holds(st.st_size, st.st_mtime_ns, st.st_ino)


def test_a_replacement_edited_in_place_to_the_same_size_is_a_source_again(
    lib: Path, store: Catalog
) -> None:
    placed = make(lib, "cam/a.mp4", b"hevc\n")
    store.record_replacement(
        "cam/a.mp4", placed.stat(), "cam/a.MOV", fingerprint(placed, full=True)
    )
    was = store.load_replacements()["cam/a.mp4"]
    body = placed.read_bytes()
    placed.write_bytes(body[:-1] + b"X")  # same size, other content, new mtime
    entry = next(e for e in run(lib, store).entries if e.rel == "cam/a.mp4")
    assert entry.pools_to_encode == ("720p",)
    # known changed: its mark keeps the placed file's identity, and no later scan reads it
    assert store.load_replacements()["cam/a.mp4"] == replace(was, content_hash=None)


def test_a_copy_of_a_replaced_original_stays_its_duplicate(lib: Path, store: Catalog) -> None:
    for rel in ("b.mp4", "a.mp4"):
        (lib / rel).write_bytes(b"h264\nsame bytes")
    assert [e.rel for e in run(lib, store).to_send] == ["a.mp4"]
    placed = make(lib, "a.mp4", b"hevc\n")  # swapped in for the original, as fetch does
    store.record_replacement("a.mp4", placed.stat(), "a.mp4")
    for _ in range(2):
        report = run(lib, store)
        assert report.to_send == ()
        assert [(e.rel, e.duplicate_of) for e in report.duplicates] == [("b.mp4", "a.mp4")]


def test_a_catalog_from_before_replacements_kept_fingerprints_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE replacements (rel TEXT PRIMARY KEY, size INTEGER NOT NULL,"
            " mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, original TEXT NOT NULL,"
            " replaced_at REAL NOT NULL)"
        )
        db.execute("INSERT INTO replacements VALUES ('a.mp4', 1, 2, 3, 'a.MOV', 0)")
    with Catalog(path) as old:
        made = old.load_replacements()["a.mp4"]
        assert (made.original_fingerprint, made.content_hash) == (None, None)


def test_changed_pool_settings_redecide_without_probing(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")
    run(lib, store)
    probe, decide = FakeProbe(), FakeDecide()
    tuned = Pool(name="hevc", applies=HEVC.applies, encode=Encode(crf=22))
    report = run(lib, store, probe, decide=decide, pools=(tuned, P720))
    assert probe.calls == []
    assert decide.calls == 1  # only the pool whose settings hash changed
    plan = report.entries[0].decisions["hevc"]
    assert isinstance(plan, EncodePlan)
    assert plan.crf == 22


def test_uploaded_file_is_not_sent_again(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")
    first = run(lib, store).entries[0]
    store.record_upload("a.mp4", "TODO/a.mp4", first.fingerprint)
    store.record_outcome("a.mp4", "hevc", "done")
    entry = run(lib, store).entries[0]
    assert entry.status == "uploaded"
    assert entry.outcomes == {"hevc": "done", "720p": "uploaded"}
    assert run(lib, store).to_send == ()


def test_a_done_job_is_finished_only_while_its_output_is_in_out(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    """Outputs are looked for under the names the workers give them (pool suffix, the
    collision rule's extension); the one missing is the one to do again."""
    for rel in ("IMG_1.MOV", "IMG_1.mp4"):
        make(lib, rel)
    run(lib, store)
    for rel in ("IMG_1.MOV", "IMG_1.mp4"):
        for pool in ("hevc", "720p"):
            store.record_outcome(rel, pool, "done")
    out = tmp_path / "out"
    for rel in ("hevc/IMG_1.MOV.mp4", "hevc/IMG_1.mp4", "720p/IMG_1.MOV.720p.mp4"):
        make(out, rel)
    report = run(lib, store, out_dir=out)
    assert {e.rel: (e.status, e.pools_pending) for e in report.entries} == {
        "IMG_1.MOV": ("finished", ()),
        "IMG_1.mp4": ("send", ("720p",)),
    }
    assert run(lib, store).with_status("finished") != ()  # no --out to bring home to: as before
    assert len(run(lib, store, out_dir=tmp_path / "new").to_send) == 2


def test_renamed_uploaded_file_is_a_duplicate_without_probing(lib: Path, store: Catalog) -> None:
    make(lib, "old/a.mp4")
    first = run(lib, store).entries[0]
    store.record_upload("old/a.mp4", "TODO/old/a.mp4", first.fingerprint)
    (lib / "new").mkdir()
    (lib / "old/a.mp4").rename(lib / "new/a.mp4")
    probe = FakeProbe()
    report = run(lib, store, probe)
    assert probe.calls == []  # same inode, size and mtime: reused without opening
    (entry,) = report.entries
    assert (entry.rel, entry.status, entry.duplicate_of) == ("new/a.mp4", "duplicate", "old/a.mp4")


def test_copies_in_one_run_are_sent_once(lib: Path, store: Catalog) -> None:
    body = b"h264\nsame bytes"
    for rel in ("b/copy.mp4", "a/orig.mp4", "c/another.mov"):
        (lib / rel).parent.mkdir(parents=True)
        (lib / rel).write_bytes(body)
    report = run(lib, store)
    assert [e.rel for e in report.to_send] == ["a/orig.mp4"]
    assert {e.rel: e.duplicate_of for e in report.duplicates} == {
        "b/copy.mp4": "a/orig.mp4",
        "c/another.mov": "a/orig.mp4",
    }
    assert report.totals["hevc"].files == 1


def test_copy_of_an_uploaded_file_is_a_duplicate(lib: Path, store: Catalog) -> None:
    path = make(lib, "z.mp4")
    entry = run(lib, store).entries[0]
    store.record_upload("z.mp4", "TODO/z.mp4", entry.fingerprint)
    (lib / "a.mp4").write_bytes(path.read_bytes())
    report = run(lib, store)
    assert [(e.rel, e.status, e.duplicate_of) for e in report.entries] == [
        ("a.mp4", "duplicate", "z.mp4"),
        ("z.mp4", "uploaded", None),
    ]


def test_upload_of_a_changed_file_no_longer_claims_its_old_content(
    lib: Path, store: Catalog
) -> None:
    path = make(lib, "z.mp4", b"h264\nfirst")
    entry = run(lib, store).entries[0]
    store.record_upload("z.mp4", "TODO/z.mp4", entry.fingerprint)
    (lib / "a.mp4").write_bytes(path.read_bytes())  # a copy of the uploaded content...
    path.write_bytes(b"h264\nedited")  # ...whose original then changes
    os.utime(path, ns=(1, 1_000_000_000))
    report = run(lib, store)
    assert {e.rel: e.status for e in report.entries} == {"a.mp4": "send", "z.mp4": "send"}


def test_limits_defer_and_stop_probing(lib: Path, store: Catalog) -> None:
    for i in range(40):
        make(lib, f"f{i:02}.mp4")
    probe = FakeProbe()
    report = run(lib, store, probe, options=ScanOptions(max_files=3))
    assert [e.rel for e in report.to_send] == ["f00.mp4", "f01.mp4", "f02.mp4"]
    assert len(report.with_status("deferred")) == 37
    assert len(probe.calls) < 40  # later batches were not probed at all
    size = (lib / "f00.mp4").stat().st_size
    again = run(lib, store, options=ScanOptions(max_bytes=2 * size))
    assert len(again.to_send) == 2


def test_probe_failure_is_reported_and_remembered(lib: Path, store: Catalog) -> None:
    make(lib, "bad.mp4", b"BAD")
    make(lib, "good.mp4")
    report = run(lib, store)
    assert [(p.rel, p.kind) for p in report.problems] == [("bad.mp4", "probe_failed")]
    assert "not a media file" in report.problems[0].reason
    probe = FakeProbe()
    again = run(lib, store, probe)
    assert probe.calls == []
    assert [p.rel for p in again.problems] == ["bad.mp4"]


def test_probe_crash_is_reported_and_retried_next_time(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")

    def crash(path: Path) -> MediaInfo:
        raise RuntimeError("boom")

    report = run(lib, store, crash)  # type: ignore[arg-type]
    assert [(p.kind, p.reason) for p in report.problems] == [
        ("probe_failed", "probe crashed: RuntimeError('boom')")
    ]
    probe = FakeProbe()
    assert run(lib, store, probe).entries[0].status == "send"
    assert probe.calls == ["a.mp4"]


def test_broken_symlink_and_symlinked_folder(lib: Path, store: Catalog, tmp_path: Path) -> None:
    make(lib, "real.mp4")
    outside = tmp_path / "outside"
    make(outside, "x.mp4")
    (lib / "gone.mp4").symlink_to(tmp_path / "missing.mp4")
    (lib / "link.mp4").symlink_to(outside / "x.mp4")
    (lib / "loop").symlink_to(lib)  # would loop forever if followed
    report = run(lib, store)
    assert [e.rel for e in report.entries] == ["link.mp4", "real.mp4"]
    kinds = {p.rel: p.kind for p in report.problems}
    assert kinds == {"gone.mp4": "broken_symlink", "loop": "symlinked_dir"}


def test_a_name_that_is_not_utf8_is_a_problem_not_a_crash(lib: Path, store: Catalog) -> None:
    make(lib, "ok.mp4")
    (lib / "sub").mkdir()
    with open(os.fsencode(lib) + b"/sub/x\xff.mp4", "wb") as f:  # noqa: PTH123 (bytes path)
        f.write(b"h264\n")
    report = run(lib, store)
    assert [e.rel for e in report.entries] == ["ok.mp4"]
    assert [(p.rel, p.kind) for p in report.problems] == [("sub/x\\xff.mp4", "bad_path")]
    assert "not UTF-8" in report.problems[0].reason
    assert run(lib, store).problems == report.problems  # the catalog kept nothing broken


def test_hevcq_folders_and_skip_dirs_are_not_scanned(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")
    make(lib, ".hevcq/quarantine/x/a.mp4")
    make(lib, "out/hevc/a.mp4")
    report = run(lib, store, options=ScanOptions(skip_dirs=(lib / "out",)))
    assert [e.rel for e in report.entries] == ["a.mp4"]


def test_permission_denied_file_is_reported(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")
    make(lib, "locked.mp4")

    def opener(path: Path) -> str:
        if path.name == "locked.mp4":
            raise PermissionError(13, "Permission denied")
        return fingerprint(path)

    report = run(lib, store, fingerprint_fn=opener)
    assert [e.rel for e in report.entries] == ["a.mp4"]
    assert [(p.rel, p.kind) for p in report.problems] == [("locked.mp4", "permission")]


def test_permission_denied_folder_is_reported(
    lib: Path, store: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(lib, "a.mp4")
    make(lib, "private/b.mp4")
    real = os.scandir

    def scandir(path: Path) -> object:
        if Path(path).name == "private":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(walk, "_scandir", scandir)
    report = run(lib, store)
    assert [e.rel for e in report.entries] == ["a.mp4"]
    assert [(p.rel, p.kind) for p in report.problems] == [("private", "permission")]


def test_file_vanishing_mid_scan_is_reported(
    lib: Path, store: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    make(lib, "a.mp4")
    gone = make(lib, "b.mp4")
    real = os.scandir

    class Listing:
        def __init__(self, path: Path) -> None:
            self.entries = list(real(path))
            gone.unlink(missing_ok=True)  # deleted after listing, before stat

        def __enter__(self) -> list[os.DirEntry[str]]:
            return self.entries

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(walk, "_scandir", Listing)
    report = run(lib, store)
    assert [e.rel for e in report.entries] == ["a.mp4"]
    assert [(p.rel, p.kind) for p in report.problems] == [("b.mp4", "vanished")]


def test_file_deleted_before_fingerprint_is_reported(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")

    def delete_then_read(path: Path) -> str:
        path.unlink()
        return fingerprint(path)

    report = run(lib, store, fingerprint_fn=delete_then_read)
    assert report.entries == ()
    assert [p.kind for p in report.problems] == ["vanished"]


def test_file_growing_during_probe_is_reported(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")
    probe = FakeProbe()

    def growing(path: Path) -> MediaInfo:
        info = probe(path)
        with path.open("ab") as fh:
            fh.write(b"more")
        return info

    report = run(lib, store, growing)  # type: ignore[arg-type]
    assert [p.kind for p in report.problems] == ["changing"]
    assert store.count() == 0  # nothing remembered about a half-written file


def test_bad_relative_path_is_reported(lib: Path, store: Catalog) -> None:
    make(lib, "tab\there.mp4")
    report = run(lib, store)
    assert [p.kind for p in report.problems] == ["bad_path"]


def test_decide_error_becomes_a_skip(lib: Path, store: Catalog) -> None:
    make(lib, "a.mp4")

    def refuse(info: MediaInfo, pool: Pool, name: str) -> Decision:
        raise PermanentError("no usable video stream")

    entry = run(lib, store, decide=refuse).entries[0]
    assert entry.status == "skip"
    assert entry.decisions["hevc"] == Skip("cannot decide: no usable video stream")


# --- estimates ---------------------------------------------------------------------------


def _report(totals: dict[str, PoolTotals]) -> ScanReport:
    return ScanReport(Path("/lib"), (), (), totals, 0, 0, 0.0)


def test_estimate_hours_and_costs() -> None:
    report = _report({"hevc": PoolTotals(10, 10**9, 36_000.0), "720p": PoolTotals()})
    est = estimate(report, {"hevc": 0.5}, task=TaskSize(2, 4), local_cpus=4)
    hevc = est.pools["hevc"]
    assert hevc.calibrated
    assert hevc.vcpu_hours == pytest.approx(20.0)
    assert hevc.local_hours == pytest.approx(5.0)
    assert hevc.task_hours == pytest.approx(10.0)
    p = FARGATE_PRICES
    assert hevc.on_demand_usd == pytest.approx(10 * (2 * p.vcpu_hour + 4 * p.gb_hour))
    assert hevc.spot_usd < hevc.on_demand_usd
    assert est.pools["720p"].local_hours == 0
    assert not est.pools["720p"].calibrated
    assert est.on_demand_usd == pytest.approx(hevc.on_demand_usd)


def test_estimate_uses_pool_task_sizes_and_extra_storage() -> None:
    report = _report({"hevc": PoolTotals(1, 1, 3600.0)})
    size = TaskSize.of(HEVC)
    assert (size.vcpu, size.memory_gib, size.ephemeral_gib) == (2.0, 4.0, 40)
    est = estimate(report, {"hevc": 1.0}, task={"hevc": size}, local_cpus=1)
    p = FARGATE_PRICES
    hourly = 2 * p.vcpu_hour + 4 * p.gb_hour + 20 * p.storage_gb_hour
    assert est.pools["hevc"].on_demand_usd == pytest.approx(0.5 * hourly)


def test_library_reexports() -> None:
    assert scan_module.ScanOptions is walk.ScanOptions


def _plan(pool: str, width: int, height: int, **kw: Any) -> EncodePlan:
    """A plain plan of ``pool`` at this size (``kw``: any other field)."""
    fields: dict[str, Any] = {
        "container": "mp4",
        "video_index": 0,
        "rotation": 0,
        "ten_bit": False,
        "crf": 26,
        "preset": "medium",
    }
    return EncodePlan(pool=pool, width=width, height=height, **(fields | kw))


def _ladder_entry(
    rel: str, width: int, height: int, seconds: float, rotation: int = 0
) -> scan_module.FileEntry:
    plan = _plan("hls", width, height, rotation=rotation, crf=23, preset="veryfast")
    return scan_module.FileEntry(
        rel=rel, size=1, duration_s=seconds, fingerprint="f", status="send", decisions={"hls": plan}
    )


def test_a_ladder_pool_is_priced_rung_by_rung_from_each_files_own_rungs() -> None:
    entries = (
        _ladder_entry("a.mp4", 1920, 1080, 3600.0),
        # A portrait phone clip (coded 1280x720, shown upright): portrait 720p rungs.
        _ladder_entry("b.mov", 1280, 720, 3600.0, rotation=90),
    )
    report = ScanReport(Path("/lib"), entries, (), {"hls": PoolTotals(2, 2, 7200.0)}, 0, 0, 0.0)
    est = estimate(
        report, {"hls": 0.5}, task=TaskSize(2, 4), local_cpus=2, ladders=frozenset({"hls"})
    )
    hls = est.pools["hls"]
    assert [r.rung for r in hls.rungs] == ["1080p", "720p", "480p", "360p", "240p"]
    assert [r.files for r in hls.rungs] == [1, 2, 2, 2, 2]
    # The 1080p source's whole ladder is what the speed stands for: 2 vCPU-hours an hour.
    # The 720p source's ladder encodes fewer pixels, and its cost follows them.
    plans = [e.decisions["hls"] for e in entries]
    assert all(isinstance(p, EncodePlan) for p in plans)
    a, b = (sum(rung_work(p).values()) for p in plans if isinstance(p, EncodePlan))
    assert a == pytest.approx(1.0)
    assert 0.4 < b < 0.55
    assert hls.vcpu_hours == pytest.approx(2.0 * (a + b))
    assert sum(r.vcpu_hours for r in hls.rungs) == pytest.approx(hls.vcpu_hours)
    assert sum(r.spot_usd for r in hls.rungs) == pytest.approx(hls.spot_usd)
    assert hls.rungs[0].vcpu_hours > hls.rungs[1].vcpu_hours > hls.rungs[-1].vcpu_hours


def _file_entry(
    rel: str, seconds: float | None, plans: dict[str, EncodePlan]
) -> scan_module.FileEntry:
    return scan_module.FileEntry(
        rel=rel, size=1, duration_s=seconds, fingerprint="f", status="send", decisions=plans
    )


def test_a_jobs_work_is_its_source_seconds_over_its_pools_speed_and_none_for_a_copy() -> None:
    farm = load_farm()
    primary = primary_pool(farm.values())
    assert primary is not None
    assert primary.name == "hevc"
    plan = _plan("hevc", 1920, 1080)
    film = _file_entry(
        "film.mkv",
        7200.0,
        {
            "hevc": plan,
            # A 1080p source: the 1080p pool's plan is the primary's, so it copies that output.
            "1080p": replace(plan, pool="1080p"),
            "720p": replace(plan, pool="720p", width=1280, height=720, scale=True),
        },
    )
    speeds = {"hevc": 0.5, "720p": 2.0}
    assert job_work(film, farm["hevc"], speeds, primary).total == pytest.approx(14400.0)
    assert job_work(film, farm["720p"], speeds, primary).total == pytest.approx(3600.0)
    assert job_work(film, farm["1080p"], speeds, primary) == JobWork(0.0)
    # Without the primary's plan beside it, the rendition is an encode of its own.
    alone = _file_entry("b.mkv", 7200.0, {"1080p": replace(plan, pool="1080p")})
    assert job_work(alone, farm["1080p"], speeds, primary).total == pytest.approx(7200.0 / 0.28)
    # A ladder's work follows its own rungs: a 720p source's is about half a 1080p one's.
    small = _ladder_entry("c.mp4", 1280, 720, 100.0)
    hls = job_work(small, farm["hls"], {"hls": 1.0}, primary)
    assert hls is not None
    assert 40.0 < hls.total < 55.0
    assert job_work(_file_entry("d.mp4", None, {"hevc": plan}), farm["hevc"], speeds) is None


def test_a_quality_target_is_priced_its_search_and_its_scores() -> None:
    """A pool with a quality target scores every output in full and, with a size limit,
    first searches its CRF on samples: both are work the encode's speed leaves out. A
    4-minute clip with a target was estimated at 2.4 minutes and took 17.5 (a 7-minute
    search, a 7-minute encode and a 3.5-minute score)."""
    farm = load_farm()
    hevc = farm["hevc"]
    searching = hevc.with_target(93)
    scoring = hevc.model_copy(update={"quality": Quality(vmaf=93)})
    film = _file_entry("film.mkv", 600.0, {"hevc": _plan("hevc", 1920, 1080)})
    speeds = {"hevc": 0.1}

    def parts(pool: Pool) -> tuple[float, float, float]:
        work = job_work(film, pool, speeds)
        assert work is not None
        return work.encode, work.search, work.score

    assert parts(hevc) == pytest.approx((6000.0, 0.0, 0.0))
    # Scored only: every frame, at SCORE_SPEED for a 1080p picture.
    assert parts(scoring) == pytest.approx((6000.0, 0.0, 600 / SCORE_SPEED))
    # Searched: three 20 s samples of a 10-minute source, each probe an encode of them and
    # a score without NEG.
    probe = 60 / 600 * 6000.0 + 60 / PROBE_SCORE_SPEED
    assert parts(searching) == pytest.approx((6000.0, SEARCH_PROBES * probe, 600 / SCORE_SPEED))
    # A short clip is searched whole; an 8K output is scored at 4K.
    clip = _file_entry("clip.mp4", 20.0, {"hevc": _plan("hevc", 7680, 4320)})
    work = job_work(clip, searching, speeds)
    assert work is not None
    assert work.encode == pytest.approx(20 / 0.1 * 16)
    assert work.score == pytest.approx(20 * 4 / SCORE_SPEED)
    assert work.search == pytest.approx(SEARCH_PROBES * (work.encode + 20 * 4 / PROBE_SCORE_SPEED))
    # A per-title ladder: its probes, a share of its encode, and its top rung's score.
    ladder = farm["hls"].model_copy(
        update={
            "quality": Quality(vmaf=93),
            "ladder": farm["hls"].ladder.model_copy(update={"per_title": True}),
        }
    )
    rungs = _ladder_entry("c.mp4", 1280, 720, 100.0)
    got = job_work(rungs, ladder, {"hls": 1.0})
    assert got is not None
    assert got.search == pytest.approx(PER_TITLE_PROBE_SHARE * got.encode)
    assert got.score == pytest.approx(100 * (1280 * 720) / (1920 * 1080) / SCORE_SPEED)
    # The estimate: the pool's hours with them, and how much of them they are.
    report = ScanReport(
        Path("/lib"), (film,), (), {"hevc": PoolTotals(1, 1, 600.0, 600.0)}, 0, 0, 0.0
    )
    without = estimate(report, speeds, local_cpus=2).pools["hevc"]
    est = estimate(report, speeds, local_cpus=2, pools={"hevc": searching}).pools["hevc"]
    total = job_work(film, searching, speeds)
    assert total is not None
    assert without.vcpu_hours == pytest.approx(6000.0 / 3600)
    assert without.quality_vcpu_hours == 0.0
    assert est.vcpu_hours == pytest.approx(total.total / 3600)
    assert est.quality_vcpu_hours == pytest.approx((total.total - 6000.0) / 3600)
    assert est.local_hours == pytest.approx(est.vcpu_hours / 2)
    assert est.spot_usd == pytest.approx(without.spot_usd * total.total / 6000.0)
    # A pool without a target is priced as before, pools given or not.
    assert estimate(report, speeds, local_cpus=2, pools={"hevc": hevc}).pools["hevc"] == without


def test_a_pool_that_keeps_the_sources_size_is_priced_by_the_pixels_it_encodes() -> None:
    """The speeds are measured on a 1920x1080 source: a 4K film costs four times its
    seconds' worth and a 640x360 clip a ninth; a rendition is encoded at its own size."""
    plan = _plan("hevc", 3840, 2160)
    small = replace(plan, width=640, height=360)
    rendition = replace(plan, pool="720p", width=1280, height=720, scale=True)
    assert scan_module.work_share(plan) == pytest.approx(4.0)
    assert scan_module.work_share(small) == pytest.approx(1 / 9)
    assert scan_module.work_share(rendition) == 1.0
    assert scan_module.work_share(Skip("no")) == 1.0
    entries = (
        _file_entry("film.mkv", 3600.0, {"hevc": plan, "720p": rendition}),
        _file_entry("clip.mp4", 3600.0, {"hevc": small}),
    )
    report = ScanReport(
        Path("/lib"),
        entries,
        (),
        {
            "hevc": PoolTotals(2, 2, 7200.0, 3600.0 * (4 + 1 / 9)),
            "720p": PoolTotals(1, 1, 3600.0, 3600.0),
        },
        0,
        0,
        0.0,
    )
    est = estimate(report, {"hevc": 1.0, "720p": 1.0}, local_cpus=1)
    assert est.pools["hevc"].vcpu_hours == pytest.approx(4 + 1 / 9)
    assert est.pools["hevc"].source_hours == pytest.approx(2.0)
    assert est.pools["720p"].vcpu_hours == pytest.approx(1.0)
    farm = load_farm()
    assert job_work(entries[0], farm["hevc"], {"hevc": 1.0}).total == pytest.approx(4 * 3600.0)
    assert job_work(entries[1], farm["hevc"], {"hevc": 1.0}).total == pytest.approx(400.0)


def test_a_pool_is_priced_by_the_frames_it_encodes_a_ladder_at_its_own_rate() -> None:
    """The speeds are measured at 24 frames a second: a phone's 60 fps clip was priced as
    if it had the frames of a film, and a 240 fps slow-motion clip's time left read 34 s
    while its encode had two minutes to go. A ladder is made at 60 at most."""
    seconds = 10.0
    film = _plan("hevc", 1920, 1080, expected_frames=240)
    phone = replace(film, expected_frames=600)
    slow = replace(film, expected_frames=2400)
    assert scan_module.work_share(film, seconds) == pytest.approx(1.0)
    assert scan_module.work_share(phone, seconds) == pytest.approx(2.5)
    assert scan_module.work_share(slow, seconds) == pytest.approx(10.0)
    assert scan_module.work_share(slow) == pytest.approx(1.0)  # no length: as measured
    rendition = replace(slow, pool="720p", width=1280, height=720, scale=True)
    assert scan_module.work_share(rendition, seconds) == pytest.approx(10.0)
    farm = load_farm()
    speeds = {"hevc": 1.0, "hls": 1.0}
    for plan, frames in ((film, 1.0), (phone, 2.5), (slow, 10.0)):
        entry = _file_entry("clip.mp4", seconds, {"hevc": plan})
        assert job_work(entry, farm["hevc"], speeds).total == pytest.approx(seconds * frames)
    ladder = {"hls": replace(slow, pool="hls")}
    made_at_60 = job_work(_file_entry("clip.mp4", seconds, ladder), farm["hls"], speeds)
    as_film = job_work(_file_entry("c.mp4", seconds, {"hls": film}), farm["hls"], speeds)
    assert made_at_60 is not None
    assert as_film is not None
    assert made_at_60.total == pytest.approx(as_film.total * 60 / 24)
    assert sum(rung_work(ladder["hls"], seconds).values()) == pytest.approx(2.5)


def test_the_scans_totals_weigh_each_files_seconds_by_the_pixels_it_encodes(
    lib: Path, store: Catalog
) -> None:
    plain = FakeDecide()

    def in_4k(info: MediaInfo, pool: Pool, source_name: str) -> Decision:
        d = plain(info, pool, source_name)
        return replace(d, width=3840, height=2160) if isinstance(d, EncodePlan) else d

    make(lib, "a.mp4")
    report = run(lib, store, decide=in_4k)
    assert report.totals["hevc"].seconds == 12.5
    assert report.totals["hevc"].weighed_seconds == pytest.approx(4 * 12.5)
