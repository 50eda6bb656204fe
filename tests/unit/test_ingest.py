"""Ingest: what gets uploaded, with which metadata, resuming, summaries and dry-run tables."""

from __future__ import annotations

import functools
import io
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hevcq.cli import app as cli
from hevcq.cli import library as commands
from hevcq.cli.report import BarProgress, LineProgress, estimate_table, plan_tables, progress_for
from hevcq.errors import PermanentError, RetryableError
from hevcq.ledger import LedgerItem, State
from hevcq.library.catalog import Catalog, library_id
from hevcq.library.estimate import TaskSize, estimate
from hevcq.library.results import Fetched, result_from_item
from hevcq.library.roundtrip import RoundTrip, summary_rows
from hevcq.library.scan import ScanOptions, ScanReport, scan
from hevcq.library.upload import (
    Uploaded,
    parse_size,
    recorder,
    to_upload,
    upload_all,
    upload_metadata,
)
from hevcq.library.walk import fingerprint
from hevcq.media.model import AudioStream, EncodePlan, MediaInfo, Skip, VideoStream
from hevcq.messages import JobResult
from hevcq.metadata import (
    META_HASH,
    META_LIBRARY,
    META_MTIME,
    META_NAMING,
    META_POOLS,
    META_REL_PATH,
    META_SIZE,
    META_TARGET_VMAF,
    WITH_SOURCE_EXT,
    client_holds,
    client_settled,
)
from hevcq.objects import ObjectInfo
from hevcq.pools import Applies, Pool, load_farm
from tests.fakes import FakeStore

HEVC = Pool(name="hevc", applies=Applies(source_codecs=("h264",)))
P720 = Pool(
    name="720p",
    output_suffix=".720p",
    applies=Applies(source_codecs=("h264", "hevc"), target_height=720),
)
POOLS = (HEVC, P720)
LIB = "lib-id"


def fake_probe(path: Path) -> MediaInfo:
    """The codec is the file's first line; 'BAD' is not a video."""
    head = path.read_bytes()[:16]
    if head.startswith(b"BAD"):
        raise PermanentError("not a media file: invalid data")
    codec = head.split(b"\n")[0].decode()
    video = (VideoStream(0, codec, 1920, 1080, "yuv420p", 8),)
    return MediaInfo("mov,mp4", 10.0, path.stat().st_size, video, (AudioStream(1, "aac"),))


def make(root: Path, rel: str, body: bytes = b"h264\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body + rel.encode())
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(tmp_path / "state.sqlite3") as s:
        yield s


@pytest.fixture
def root(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    make(lib, "a/one.mp4")
    make(lib, "b/two.MOV")
    make(lib, "c/hevc.mkv", b"hevc\n")
    make(lib, "notes.mp4", b"BAD")
    return lib


def do_scan(root: Path, store: Catalog, **opts: object) -> ScanReport:
    return scan(root, POOLS, store, ScanOptions(**opts), probe_fn=fake_probe)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1500", 1500),
        ("2K", 2048),
        ("700M", 700 << 20),
        ("50G", 50 << 30),
        ("1.5T", 3 << 39),
        ("10GiB", 10 << 30),
        ("3gb", 3 << 30),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-5G", "G"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_library_id_is_stable_per_folder(tmp_path: Path) -> None:
    assert library_id(tmp_path / "a") == library_id(tmp_path / "a")
    assert library_id(tmp_path / "a") != library_id(tmp_path / "b")


def test_uploads_carry_path_size_mtime_fingerprint_and_library(root: Path, store) -> None:
    report = do_scan(root, store)
    target = FakeStore()
    ups = upload_all(target, root, to_upload(report), LIB)
    assert sorted(target.uploads) == ["TODO/a/one.mp4", "TODO/b/two.MOV", "TODO/c/hevc.mkv"]
    meta = target.objects["TODO/b/two.MOV"].metadata
    st = (root / "b/two.MOV").stat()
    entry = next(e for e in report.entries if e.rel == "b/two.MOV")
    assert meta == {
        META_REL_PATH: "b/two.MOV",
        META_SIZE: str(st.st_size),
        META_MTIME: str(st.st_mtime_ns),
        META_HASH: entry.fingerprint,
        META_LIBRARY: LIB,
        META_POOLS: ",".join(sorted(entry.decisions)),  # the pools this run chose
    }
    assert all(u.sent and u.ok for u in ups)


def test_sources_sharing_an_output_name_say_so_on_upload(root: Path, store) -> None:
    make(root, "b/two.mp4")
    target = FakeStore()
    report = do_scan(root, store)
    assert {e.rel for e in report.entries if e.with_source_ext} == {"b/two.MOV"}
    upload_all(target, root, to_upload(report), LIB)
    assert target.objects["TODO/b/two.MOV"].metadata[META_NAMING] == WITH_SOURCE_EXT
    assert META_NAMING not in target.objects["TODO/b/two.mp4"].metadata
    assert META_NAMING not in target.objects["TODO/a/one.mp4"].metadata


def test_an_upload_named_by_another_rule_is_sent_again(root: Path, store) -> None:
    report = do_scan(root, store)
    target = FakeStore()
    upload_all(target, root, to_upload(report), LIB)
    target.uploads.clear()
    make(root, "b/two.mp4")  # a sibling came: two.MOV's output name now keeps ".MOV"
    again = do_scan(root, store)
    upload_all(target, root, [e for e in again.entries if e.rel.startswith("b/")], LIB)
    assert sorted(target.uploads) == ["TODO/b/two.MOV", "TODO/b/two.mp4"]
    assert target.objects["TODO/b/two.MOV"].metadata[META_NAMING] == WITH_SOURCE_EXT


def test_same_content_already_in_the_bucket_is_not_sent_again(root: Path, store) -> None:
    report = do_scan(root, store)
    target = FakeStore()
    upload_all(target, root, to_upload(report), LIB)
    target.uploads.clear()
    # The state store forgot (a crash before recording): the HEAD check still catches it.
    again = upload_all(target, root, to_upload(report), LIB)
    assert target.uploads == []
    assert [u.sent for u in again] == [False, False, False]


def test_a_run_target_rides_on_every_upload_and_a_new_target_sends_the_file_again(
    root: Path, store
) -> None:
    report = do_scan(root, store)
    target = FakeStore()
    upload_all(target, root, to_upload(report), LIB, target_vmaf=93)
    assert {o.metadata.get(META_TARGET_VMAF) for o in target.objects.values()} == {"93"}
    target.uploads.clear()
    upload_all(target, root, to_upload(report), LIB, target_vmaf=93)
    assert target.uploads == []  # the same content for the same target is there
    # Another target, or none: the workers read the target from the object, so it is sent.
    upload_all(target, root, to_upload(report), LIB)
    assert len(target.uploads) == 3
    assert all(META_TARGET_VMAF not in o.metadata for o in target.objects.values())


def test_changed_content_under_the_same_key_is_sent(root: Path, store) -> None:
    report = do_scan(root, store)
    target = FakeStore({"TODO/a/one.mp4": ObjectInfo("TODO/a/one.mp4", 1, "e", {META_HASH: "x"})})
    upload_all(target, root, to_upload(report), LIB)
    assert "TODO/a/one.mp4" in target.uploads


def test_an_interrupted_ingest_resumes_without_resending(root: Path, store) -> None:
    report = do_scan(root, store)
    target = FakeStore(fail={"TODO/b/two.MOV": RetryableError("connection reset")})
    first = upload_all(target, root, to_upload(report), LIB, on_done=recorder(store))
    assert [u.rel for u in (x.entry for x in first if not x.ok)] == ["b/two.MOV"]
    target.fail.clear()
    target.uploads.clear()
    rescan = do_scan(root, store)
    assert [e.rel for e in to_upload(rescan)] == ["b/two.MOV"]
    upload_all(target, root, to_upload(rescan), LIB, on_done=recorder(store))
    assert target.uploads == ["TODO/b/two.MOV"]
    assert to_upload(do_scan(root, store)) == []


def test_a_fresh_farm_gets_files_an_earlier_farm_received(root: Path, store) -> None:
    report = do_scan(root, store)
    upload_all(FakeStore(), root, to_upload(report), LIB, on_done=recorder(store))
    again = do_scan(root, store)
    assert to_upload(again) == []
    assert len(to_upload(again, fresh_farm=True)) == 3


def test_a_failure_is_final_until_the_run_asks_to_try_again(root: Path, store) -> None:
    # A job that failed for a reason that has passed (a farm fault, a bug fixed in an
    # upgrade) had no way back but changing the file.
    report = do_scan(root, store)  # the embedded farm records no upload in the catalog
    for e in report.entries:
        for pool in e.pools_to_encode:
            store.record_outcome(e.rel, pool, "skipped")
    store.record_outcome("b/two.MOV", "hevc", "failed", "the worker died")
    again = do_scan(root, store)
    assert to_upload(again, fresh_farm=True) == []
    two = {e.rel: e for e in again.entries}["b/two.MOV"]
    assert "hevc" not in two.pools_pending
    rows = {(r.file, r.pool): r for r in summary_rows(RoundTrip(again), ["hevc"])}
    assert rows["b/two.MOV", "hevc"].reason == (
        "failed in an earlier run; --retry-failed tries again"
    )
    retried = do_scan(root, store, retry_failed=True)
    [entry] = to_upload(retried, fresh_farm=True)
    assert (entry.rel, entry.pools_pending) == ("b/two.MOV", ("hevc",))


def test_one_bad_file_does_not_stop_the_others(root: Path, store) -> None:
    report = do_scan(root, store)
    (root / "a/one.mp4").unlink()  # vanished between scan and upload
    target = FakeStore(fail={"TODO/c/hevc.mkv": PermanentError("AccessDenied")})
    ups = {u.entry.rel: u for u in upload_all(target, root, to_upload(report), LIB)}
    assert "disappeared" in (ups["a/one.mp4"].error or "")
    assert "AccessDenied" in (ups["c/hevc.mkv"].error or "")
    assert ups["b/two.MOV"].ok


def test_on_done_runs_in_the_calling_thread_and_progress_counts_bytes(root: Path, store) -> None:
    report = do_scan(root, store)
    threads: set[int] = set()
    seen: list[int] = []

    class Count:
        def begin(self, files: int, total_bytes: int) -> None:
            seen.append(total_bytes)

        def advance(self, nbytes: int) -> None:
            seen.append(nbytes)

        def file_done(self, up: Uploaded) -> None: ...
        def end(self) -> None: ...

    entries = to_upload(report)
    upload_all(
        FakeStore(),
        root,
        entries,
        LIB,
        progress=Count(),
        on_done=lambda u: threads.add(threading.get_ident()),
    )
    assert threads == {threading.get_ident()}
    assert seen[0] == sum(e.size for e in entries) == sum(seen[1:])


def test_limits_defer_files_to_the_next_run(root: Path, store) -> None:
    report = do_scan(root, store, max_files=1)
    assert [e.rel for e in to_upload(report)] == ["a/one.mp4"]
    assert {e.rel for e in report.with_status("deferred")} == {"b/two.MOV", "c/hevc.mkv"}


def test_include_and_exclude_globs_choose_the_files(root: Path, store) -> None:
    report = do_scan(root, store, include=("*.mov", "*.mp4"), exclude=("a/**",))
    assert [e.rel for e in to_upload(report)] == ["b/two.MOV"]


# --- summary rows ---------------------------------------------------------------------------


def result(key: str, pool: str, outcome: str = "done", **kw: object) -> JobResult:
    return JobResult(job_id="j", pool=pool, bucket="b", source_key=key, outcome=outcome, **kw)


def test_summary_rows_tell_every_file_and_pool_what_happened(root: Path, store) -> None:
    make(root, "d/copy.mp4", b"")  # same bytes as below: a duplicate
    (root / "d/copy.mp4").write_bytes((root / "a/one.mp4").read_bytes())
    report = do_scan(root, store)
    ups = upload_all(
        FakeStore(fail={"TODO/c/hevc.mkv": PermanentError("AccessDenied")}),
        root,
        to_upload(report),
        LIB,
    )
    rt = RoundTrip(report, ups)
    rt.results = {
        ("TODO/a/one.mp4", "hevc"): result("TODO/a/one.mp4", "hevc", output_bytes=10),
        ("TODO/a/one.mp4", "720p"): result("TODO/a/one.mp4", "720p"),
        ("TODO/b/two.MOV", "hevc"): result("TODO/b/two.MOV", "hevc", "failed", reason="boom"),
    }
    rt.fetched = {
        ("TODO/a/one.mp4", "720p"): Fetched("a/one.mp4", "720p", "refused", "larger"),
        ("TODO/a/one.mp4", "hevc"): Fetched("a/one.mp4", "hevc", "placed"),
        # fetch hands a farm failure on as such: the summary says "failed" once
        ("TODO/b/two.MOV", "hevc"): Fetched("b/two.MOV", "hevc", "failed", "boom"),
    }
    rows = {(r.file, r.pool): r for r in summary_rows(rt, ["720p", "hevc"])}
    assert (rows["notes.mp4", "-"].outcome, rows["notes.mp4", "-"].reason) == (
        "failed",
        "not a media file: invalid data",
    )
    assert rows["a/one.mp4", "hevc"].outcome == "done"
    assert (rows["a/one.mp4", "720p"].outcome, rows["a/one.mp4", "720p"].reason) == (
        "failed",
        "refused: larger",
    )
    assert rows["b/two.MOV", "hevc"].reason == "boom"
    assert rows["b/two.MOV", "720p"].outcome == "pending"
    assert "AccessDenied" in rows["c/hevc.mkv", "720p"].reason
    assert rows["d/copy.mp4", "hevc"].reason == "duplicate of a/one.mp4"
    assert rt.failed


def test_a_result_done_in_the_farm_but_never_placed_is_not_called_done(root: Path, store) -> None:
    # The run stopped (a full output disk, an interrupt) between the result and its placement.
    report = do_scan(root, store)
    rt = RoundTrip(report, upload_all(FakeStore(), root, to_upload(report), LIB))
    rt.results = {("TODO/a/one.mp4", "hevc"): result("TODO/a/one.mp4", "hevc", output_bytes=10)}
    row = {(r.file, r.pool): r for r in summary_rows(rt, ["hevc"])}["a/one.mp4", "hevc"]
    assert (row.outcome, row.reason) == ("pending", "not placed; the next run takes it")


def test_a_scored_output_shows_its_vmaf_in_the_summary(root: Path, store) -> None:
    report = do_scan(root, store)
    rt = RoundTrip(report, upload_all(FakeStore(), root, to_upload(report), LIB))
    rt.results = {
        ("TODO/a/one.mp4", "hevc"): result(
            "TODO/a/one.mp4", "hevc", output_bytes=10, vmaf=95.26, vmaf_low=90.04
        ),
        ("TODO/b/two.MOV", "hevc"): result(
            "TODO/b/two.MOV", "hevc", output_bytes=10, vmaf=95.26, vmaf_low=90.04, vmaf_neg=93.71
        ),
    }
    rt.fetched = {
        ("TODO/a/one.mp4", "hevc"): Fetched("a/one.mp4", "hevc", "placed"),
        ("TODO/b/two.MOV", "hevc"): Fetched("b/two.MOV", "hevc", "placed"),
    }
    rows = {(r.file, r.pool): r for r in summary_rows(rt, ["hevc"])}
    row = rows["a/one.mp4", "hevc"]
    assert (row.outcome, row.reason) == ("done", "VMAF 95.3 (90.0 low)")
    # NEG, where it was measured, beside the score.
    row = rows["b/two.MOV", "hevc"]
    assert (row.outcome, row.reason) == ("done", "VMAF 95.3 (90.0 low, NEG 93.7)")


@pytest.mark.parametrize(
    ("measured", "crf", "wanted"),
    [
        (
            {"output_bytes": 1060, "vmaf": 93.41, "vmaf_low": 88.0},
            24,
            "VMAF 93.4 (88.0 low) at CRF 24, 106 % of the predicted size",
        ),
        (
            {"output_bytes": 950, "xpsnr": 41.24, "xpsnr_low": 38.01},
            27,
            "XPSNR 41.2 dB (38.0 low) at CRF 27, 95 % of the predicted size",
        ),
    ],
    ids=["vmaf", "xpsnr"],
)
def test_a_searched_output_shows_its_score_crf_and_size_against_the_prediction(
    root: Path, store, measured: dict[str, object], crf: int, wanted: str
) -> None:
    report = do_scan(root, store)
    rt = RoundTrip(report, upload_all(FakeStore(), root, to_upload(report), LIB))
    searched = result("TODO/a/one.mp4", "hevc", "done", **measured)
    rt.results = {
        ("TODO/a/one.mp4", "hevc"): searched.model_copy(
            update={"crf": crf, "predicted_bytes": 1000}
        )
    }
    rt.fetched = {("TODO/a/one.mp4", "hevc"): Fetched("a/one.mp4", "hevc", "placed")}
    row = {(r.file, r.pool): r for r in summary_rows(rt, ["hevc"])}["a/one.mp4", "hevc"]
    assert row.reason == wanted


def test_a_result_taken_from_the_ledger_shows_what_its_output_measured(root: Path, store) -> None:
    # A run reads the ledger for jobs whose result message has not come: at the end of a
    # run the ledger often answers first, and its result must say what the message says.
    report = do_scan(root, store)
    rt = RoundTrip(report, upload_all(FakeStore(), root, to_upload(report), LIB))
    item = LedgerItem(
        key="TODO/a/one.mp4",
        pool="hevc",
        state=State.DONE,
        etag="e1",
        output_key="DONE/hevc/a/one.mp4",
        output_bytes=1060,
        vmaf=93.41,
        vmaf_low=88.0,
        vmaf_model="vmaf_v0.6.1",
        vmaf_neg=87.2,
        crf=24,
        predicted_bytes=1000,
    )
    from_ledger = result_from_item(item, "media")
    assert from_ledger is not None
    rt.results = {("TODO/a/one.mp4", "hevc"): from_ledger}
    rt.fetched = {("TODO/a/one.mp4", "hevc"): Fetched("a/one.mp4", "hevc", "placed")}
    row = {(r.file, r.pool): r for r in summary_rows(rt, ["hevc"])}["a/one.mp4", "hevc"]
    assert row.reason == "VMAF 93.4 (88.0 low, NEG 87.2) at CRF 24, 106 % of the predicted size"
    assert (from_ledger.vmaf_model, from_ledger.vmaf_neg) == ("vmaf_v0.6.1", 87.2)


def test_a_clean_run_is_not_failed(tmp_path: Path, store) -> None:
    lib = tmp_path / "clean"
    make(lib, "x.mp4", b"hevc\n")
    report = do_scan(lib, store)
    ups = upload_all(FakeStore(), lib, to_upload(report), LIB)
    results = {
        ("TODO/x.mp4", "720p"): result("TODO/x.mp4", "720p"),
        ("TODO/x.mp4", "hevc"): result("TODO/x.mp4", "hevc", "skipped"),
    }
    rt = RoundTrip(report, ups, results)
    assert not rt.failed
    rt.timed_out = True
    assert rt.failed


# --- dry-run rendering ----------------------------------------------------------------------


def test_a_duplicate_is_listed_as_not_uploaded_with_its_first_path(root, store) -> None:
    (root / "z.mp4").write_bytes((root / "a/one.mp4").read_bytes())
    text = render(*plan_tables(do_scan(root, store)))
    assert re.search(r"│ z\.mp4 +│ duplicate of a/one\.mp4", text)


def test_a_bare_streams_guessed_length_is_planned_and_shown_as_a_guess(tmp_path, store) -> None:
    # A security camera's .h264 states no length: the plan counted it as 0 seconds, so
    # the estimate priced a library of them at nothing.
    lib = tmp_path / "cams"
    make(lib, "cam01.h264")

    def bare(path: Path) -> MediaInfo:
        video = (VideoStream(0, "h264", 1920, 1080, "yuv420p", 8, fps=25.0),)
        return MediaInfo("h264", None, path.stat().st_size, video, duration_guess_s=600.0)

    report = scan(lib, POOLS, store, ScanOptions(extensions=frozenset({".h264"})), probe_fn=bare)
    (entry,) = report.entries
    assert (entry.duration_s, entry.duration_guessed) == (600.0, True)
    assert report.totals["hevc"].seconds == 600.0
    assert re.search(r"│ cam01\.h264 +│ +\S+ B +│ +~10m00s │", render(*plan_tables(report)))


def render(*tables: object) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=200)
    for t in tables:
        console.print(t)
    return buf.getvalue()


def test_dry_run_tables_list_uploads_per_pool_skips_with_reasons_and_totals(root, store) -> None:
    text = render(*plan_tables(do_scan(root, store)))
    line = next(ln for ln in text.splitlines() if "c/hevc.mkv" in ln)
    assert re.search(
        r"│ 720p +│ hevc: already HEVC │", line
    )  # encoded in 720p, skipped in hevc: why
    assert "notes.mp4" in text
    assert "not a media file" in text
    totals = next(ln for ln in text.splitlines() if "all (uploaded once)" in ln)
    assert "│     3 │" in totals
    assert "0m30s" in totals  # three files of 10 s


def test_estimate_table_says_when_speeds_are_defaults(root, store) -> None:
    report = do_scan(root, store)
    est = estimate(report, {"720p": 0.5}, task={"hevc": TaskSize(4, 8)}, local_cpus=2)
    text = render(estimate_table(est))
    assert "0.1 (default)" in text
    assert "0.5 (default)" not in text
    assert "4 vCPU/8 GiB" in text
    assert "Spot $" in text


def test_plain_progress_lines_when_not_on_a_terminal(root, store) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=200)
    shown = progress_for(console)
    assert isinstance(shown, LineProgress)
    upload_all(FakeStore(), root, to_upload(do_scan(root, store)), LIB, progress=shown)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("uploading 3 files")
    assert sorted(ln.split("] ")[1] for ln in lines[1:]) == [
        "a/one.mp4: sent",
        "b/two.MOV: sent",
        "c/hevc.mkv: sent",
    ]


def test_a_bar_on_a_terminal(root, store) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True)
    shown = progress_for(console)
    assert isinstance(shown, BarProgress)
    target = FakeStore(fail={"TODO/c/hevc.mkv": PermanentError("AccessDenied")})
    upload_all(target, root, to_upload(do_scan(root, store)), LIB, progress=shown)
    text = buf.getvalue()
    assert "files" in text
    assert "3/3" in text
    assert "upload failed" in text


def test_a_rescan_of_an_unchanged_library_only_stats(root, store) -> None:
    probes: list[str] = []

    def counting(path: Path) -> MediaInfo:
        probes.append(path.name)
        return fake_probe(path)

    scan(root, POOLS, store, probe_fn=counting)
    first = len(probes)
    again = scan(root, POOLS, store, probe_fn=counting)
    assert first == 4
    assert len(probes) == first
    assert again.probed == 0


@pytest.mark.parametrize(
    ("ext", "include", "exclude", "says"),
    [
        (".mkv", (), (), "holds no videos (.mkv)"),
        (".mp4", ("*.avi",), (), "holds videos, but none that matches --include '*.avi'"),
        (".mp4", (), ("a", "b b"), "holds videos, but none that is left after --exclude a, 'b b'"),
        (".mp4", ("*.avi",), ("a",), "matches --include '*.avi' and is left after --exclude a"),
    ],
)
def test_a_library_whose_videos_the_runs_own_globs_all_leave_out_says_so(
    tmp_path: Path, ext: str, include: tuple[str, ...], exclude: tuple[str, ...], says: str
) -> None:
    """Before, globs that matched nothing said the library "holds no videos", which sends
    a person looking for a problem with the files rather than with the command."""
    from hevcq.cli.library import preflight  # noqa: PLC0415 - the CLI loads typer
    from hevcq.errors import ConfigError  # noqa: PLC0415
    from hevcq.library.walk import DEFAULT_EXCLUDES  # noqa: PLC0415

    make(tmp_path / "lib", "a/one.mp4")
    make(tmp_path / "lib", "b b/two.mp4")
    options = ScanOptions(
        extensions=frozenset({ext}), include=include, exclude=DEFAULT_EXCLUDES + exclude
    )
    with pytest.raises(ConfigError) as refused:
        preflight(tmp_path / "lib", None, options)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("library", "out", "refused"),
    [
        ("lib", "lib", "is the library itself"),
        ("lib/./", "lib", "is the library itself"),
        ("out/hevc", "out", "holds the library in one of its pool folders"),
        ("out/720p/holiday", "out", "holds the library in one of its pool folders"),
        ("lib", "lib/hevcq-out", None),  # inside the library: the scan leaves it out
        ("lib", ".", None),  # beside it: outputs go to ./hevc/... and ./720p/...
        ("out/mine", "out", None),  # a folder of --out that no pool writes to
    ],
)
def test_outputs_never_land_where_the_next_scan_would_take_them_for_sources(
    tmp_path: Path, library: str, out: str, refused: str | None
) -> None:
    from hevcq.cli.library import outputs_stay_out_of  # noqa: PLC0415 - the CLI loads typer
    from hevcq.errors import ConfigError  # noqa: PLC0415

    (tmp_path / library).mkdir(parents=True, exist_ok=True)
    check = lambda: outputs_stay_out_of(tmp_path / library, tmp_path / out, ["hevc", "720p"])  # noqa: E731
    if refused is None:
        check()
        return
    with pytest.raises(ConfigError, match=refused):
        check()


def test_an_original_put_back_and_touched_since_is_still_left_to_it(
    root: Path, store: Catalog
) -> None:
    """A sync client rewrote its mtime: by size, mtime and inode alone the mark no longer
    held, and the next --replace run swapped the original out again. With its hash kept,
    the same bytes keep the mark (renewed); other bytes of the same size do not."""
    one = root / "a/one.mp4"
    store.record_rollback("a/one.mp4", one.stat(), fingerprint(one, full=True))
    replacing = frozenset({"hevc"})
    os.utime(one, ns=(1, 1_700_000_000_000_000_000))

    def hevc_decision() -> object:
        report = do_scan(root, store, replace_pools=replacing)
        return next(e for e in report.entries if e.rel == "a/one.mp4").decisions["hevc"]

    kept = hevc_decision()
    assert isinstance(kept, Skip)
    assert kept.reason.startswith("rolled back on ")
    st = one.stat()
    assert store.rollback("a/one.mp4").holds(st.st_size, st.st_mtime_ns, st.st_ino)
    body = one.read_bytes()
    one.write_bytes(body[:-1] + (b"X" if body[-1:] != b"X" else b"Y"))  # same size, other bytes
    assert isinstance(hevc_decision(), EncodePlan)


def test_an_original_a_rollback_put_back_is_left_to_it_until_it_changes(
    root: Path, store: Catalog
) -> None:
    """Only the replacing pool of a --replace run leaves it, and only while it is the very
    file put back: the 720p pool still takes it, and so does a run without --replace."""
    one = root / "a/one.mp4"
    store.record_rollback("a/one.mp4", one.stat())
    replacing = frozenset({"hevc"})

    entry = next(
        e for e in do_scan(root, store, replace_pools=replacing).entries if e.rel == "a/one.mp4"
    )
    assert isinstance(entry.decisions["hevc"], Skip)
    assert entry.decisions["hevc"].reason.startswith("rolled back on ")
    assert entry.outcomes["hevc"] == "skipped"
    assert entry.status == "send"  # for the 720p pool
    assert isinstance(entry.decisions["720p"], EncodePlan)
    # Uploaded for 720p, the hevc workers skip it at once: no encode to throw away.
    meta = upload_metadata(entry, 1, LIB)
    assert client_holds(meta, "hevc")
    assert not client_settled(meta, "720p")

    plain = next(e for e in do_scan(root, store).entries if e.rel == "a/one.mp4")
    assert isinstance(plain.decisions["hevc"], EncodePlan)

    # Moved into another folder, it is the same file, still left to it.
    (root / "kept").mkdir()
    moved = one.rename(root / "kept" / "one.mp4")
    entry = next(
        e for e in do_scan(root, store, replace_pools=replacing).entries if e.rel == "kept/one.mp4"
    )
    assert isinstance(entry.decisions["hevc"], Skip)
    one = moved.rename(one)

    one.write_bytes(b"h264\nedited since")
    changed = next(
        e for e in do_scan(root, store, replace_pools=replacing).entries if e.rel == "a/one.mp4"
    )
    assert isinstance(changed.decisions["hevc"], EncodePlan)


# --- estimate is ingest --dry-run -----------------------------------------------------------


def test_estimate_is_ingest_dry_run_whatever_out_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`estimate` planned without the output folder: a file done in an earlier run showed
    as finished even when its output was not in --out, where `ingest --dry-run` (and the
    ingest itself) sends it again. The dry run also printed a log line on stderr."""
    lib = make(tmp_path / "lib", "a/one.mp4").parents[1].resolve()
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith(("HEVCQ_", "AWS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(commands, "scan", functools.partial(scan, probe_fn=fake_probe))
    with Catalog.for_library(lib) as catalog:
        scan(lib, [load_farm()["hevc"]], catalog, probe_fn=fake_probe)
        catalog.record_outcome("a/one.mp4", "hevc", "done")

    def would_upload(*args: str) -> bool:
        shown = []
        for command in (["ingest", str(lib), "--dry-run"], ["estimate", str(lib)]):
            done = CliRunner().invoke(
                cli.app, [*command, "--pools", "hevc", *args], env={"COLUMNS": "200"}
            )
            assert done.exit_code == 0, done.output
            assert done.stderr == ""  # a report: no log lines
            shown.append(done.stdout)
        assert shown[0] == shown[1]
        plan = shown[0][: shown[0].index("not uploaded")]
        return "a/one.mp4" in plan

    assert would_upload()  # done before, but not in ./hevcq-out: brought home again
    placed = tmp_path / "hevcq-out" / "hevc" / "a" / "one.mp4"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"the output")
    assert not would_upload()
    assert would_upload("--out", str(tmp_path / "elsewhere"))


@pytest.mark.parametrize(
    ("statuses", "said"),
    [
        (["finished", "finished"], "2 files finished in earlier runs"),
        (["finished", "skip"], "1 file finished in earlier runs, 1 file needs no work"),
        # After --replace every file is one hevcq made: it said "0 files finished".
        (["skip", "skip", "skip"], "3 files need no work (the summary says why)"),
        ([], "no file needs work"),
    ],
)
def test_a_run_with_nothing_to_encode_says_why_in_counts(statuses: list[str], said: str) -> None:
    from hevcq.cli.library import _nothing_left  # noqa: PLC0415
    from hevcq.library.scan import FileEntry, ScanReport  # noqa: PLC0415

    entries = tuple(
        FileEntry(rel=f"f{i}.mp4", size=1, duration_s=1.0, fingerprint=str(i), status=s)  # type: ignore[arg-type]
        for i, s in enumerate(statuses)
    )
    report = ScanReport(Path("lib"), entries, (), {}, reused=0, probed=0, elapsed_s=0.0)
    assert said in _nothing_left(report)


def test_a_name_whose_outputs_would_not_fit_in_out_is_refused_before_any_encode(
    tmp_path: Path, store: Catalog
) -> None:
    # 252 bytes: the source fits (ext4 takes 255), its hevc output too, but not the 720p
    # output "<name>.720p.mp4". It used to be encoded, then refused at its placement.
    lib = tmp_path / "lib"
    long = "é" * 124 + ".mp4"  # two bytes a letter in UTF-8
    fits = "é" * 123 + ".mp4"  # its 720p output is 255 bytes exactly
    for name in (long, fits, "short.mp4"):
        make(lib, name)
    out = tmp_path / "out"
    report = scan(lib, POOLS, store, ScanOptions(), probe_fn=fake_probe, out_dir=out)
    assert sorted(e.rel for e in report.to_send) == sorted([fits, "short.mp4"])
    [problem] = report.problems
    assert (problem.rel, problem.kind) == (long, "bad_path")
    assert problem.reason == (
        f"name too long for its 720p output: 257 bytes with the pool's suffix, where {out}"
        " allows 255; rename it 2 bytes shorter"
    )
    # Without an --out (a cloud ingest that does not wait), there is nothing to measure.
    with Catalog(tmp_path / "other.sqlite3") as other:
        plain = scan(lib, POOLS, other, ScanOptions(), probe_fn=fake_probe)
    assert len(plain.to_send) == 3
