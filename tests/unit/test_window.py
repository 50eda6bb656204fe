"""The streaming round trip's window and result handler, with fakes (no farm)."""

from __future__ import annotations

import dataclasses
import errno
import shutil
import threading
from collections import namedtuple
from pathlib import Path

import pytest

from hevcq.errors import RetryableError
from hevcq.farm.client import Farm
from hevcq.library.quarantine import OutputFolderUnusable
from hevcq.library.results import drain
from hevcq.library.roundtrip import (
    Control,
    IngestOptions,
    RoundTrip,
    Streaming,
    Window,
    _Run,
    fetch_options,
)
from hevcq.library.scan import FileEntry
from hevcq.library.scan import ScanReport as Report
from hevcq.library.upload import NoProgress, Uploaded
from hevcq.library.walk import OUTPUTS_MARKER, fingerprint
from hevcq.pools import Pool
from tests.unit import test_fetch
from tests.unit.test_fetch import FakeInbox, Lib, plan

lib = test_fetch.lib  # the library fixture of the fetch tests


def entry(rel: str) -> FileEntry:
    return FileEntry(
        rel=rel,
        size=10,
        duration_s=1.0,
        fingerprint=f"fp-{rel}",
        status="send",
        decisions={"hevc": plan("hevc")},
    )


def test_the_window_holds_at_most_its_size_and_takes_the_next_as_one_settles() -> None:
    w = Window([entry(f"{i}.mp4") for i in range(5)], size=2)
    first = w.take()
    assert [e.rel for e in first] == ["0.mp4", "1.mp4"]
    assert w.take() == []  # full while uploading
    w.uploaded("TODO/0.mp4", "0.mp4", ("hevc", "720p"))
    w.uploaded("TODO/1.mp4", "1.mp4", ("hevc",))
    assert w.take() == []  # full while in the farm
    assert not w.settle("TODO/0.mp4", "hevc")  # 720p still to report
    assert w.settle("TODO/1.mp4", "hevc")
    assert [e.rel for e in w.take()] == ["2.mp4"]
    assert w.in_flight() == [("TODO/0.mp4", "720p")]


def test_a_failed_upload_frees_its_slot_and_a_closed_window_takes_nothing() -> None:
    w = Window([entry("a.mp4"), entry("b.mp4")], size=1)
    w.take()
    w.uploaded("TODO/a.mp4", "a.mp4", ())
    w.closed = True
    assert w.take() == []
    assert w.idle
    assert [e.rel for e in w.waiting] == ["b.mp4"]  # left for the next run


def test_results_of_jobs_the_run_does_not_wait_for_are_not_its_own() -> None:
    w = Window([], size=2)
    w.uploading = 1
    w.uploaded("TODO/a.mp4", "a.mp4", ("720p",))
    assert w.expects("TODO/a.mp4", "720p")
    assert not w.expects("TODO/a.mp4", "hevc")  # settled in an earlier run
    assert not w.settle("TODO/a.mp4", "hevc")


def test_interrupt_drains_first_and_stops_on_the_second() -> None:
    c = Control()
    c.interrupt()
    assert c.draining.is_set()
    assert not c.stop.is_set()
    c.interrupt()
    assert c.stop.is_set()


def _streaming(lib: Lib, **fetch: object) -> tuple[Streaming, Window]:
    w = Window([], size=4)
    w.uploading = 1
    w.uploaded("TODO/a.mp4", "a.mp4", ("720p", "hevc"))
    rt = RoundTrip(Report(lib.root, (), (), {}, 0, 0, 0.0))
    return Streaming(rt, w, lib.fetcher(**fetch)), w


def test_drain_until_the_expected_set_is_complete_places_each_result_as_it_arrives(
    lib: Lib,
) -> None:
    handler, w = _streaming(lib)
    lib.output("hevc")
    lib.output("720p")
    placed: list[int] = []

    def arrive(inbox: FakeInbox) -> None:
        if inbox.receives == 1:
            inbox.put(lib.result("hevc").model_dump_json())
        if inbox.receives == 3:
            placed.append(len(list(lib.out.rglob("*.mp4"))))
            inbox.put(lib.result("720p").model_dump_json())

    inbox = FakeInbox(on_receive=arrive)
    drain(inbox, handler, follow=True, stop=threading.Event(), until=lambda: w.idle)
    assert placed == [1]  # the first output was home before the second result came
    assert w.idle
    assert inbox.receives == 3  # stopped once the set was complete, not at a timeout
    assert lib.state.decisions("a.mp4")["hevc"].outcome == "done"


def test_a_replacing_result_waits_for_the_files_renditions(lib: Lib) -> None:
    handler, w = _streaming(lib, replace=frozenset({"hevc"}))
    lib.output("hevc")
    lib.output("720p")
    first = handler.process(lib.result("hevc"))
    assert first.action == "waiting"
    assert lib.src.read_bytes() != b""  # the original is still in place
    assert not list(lib.root.glob(".hevcq-quarantine/**/*.mp4"))
    handler.process(lib.result("720p"))
    assert handler.rt.fetched[("TODO/a.mp4", "720p")].action == "placed"
    assert handler.rt.fetched[("TODO/a.mp4", "hevc")].action == "replaced"
    assert w.idle


@pytest.mark.parametrize(("fresh_farm", "cleanup"), [(True, True), (False, False)])
def test_the_embedded_farm_s_objects_go_once_home_a_configured_farm_s_stay(
    fresh_farm: bool, cleanup: bool, farm: dict[str, Pool]
) -> None:
    # The embedded bucket is scratch space: its disk must hold the window, not the library.
    options = fetch_options(IngestOptions(fresh_farm=fresh_farm), farm)
    assert options.cleanup is cleanup


DiskUsage = namedtuple("DiskUsage", "total used free")


def _disk_with(monkeypatch: pytest.MonkeyPatch, free: list[int]) -> None:
    """The output disk's free bytes, one value per placement asked about."""
    monkeypatch.setattr(shutil, "disk_usage", lambda _: DiskUsage(0, 0, free.pop(0)))


def _both_pools_sent(lib: Lib, handler: Streaming) -> None:
    e = FileEntry(
        rel="a.mp4",
        size=10,
        duration_s=1.0,
        fingerprint="fp",
        status="send",
        decisions={"hevc": plan("hevc"), "720p": plan("720p")},
        upload_key="TODO/a.mp4",
    )
    handler.rt.report = Report(lib.root, (e,), (), {}, 0, 0, 0.0)


def test_a_full_output_disk_stops_the_run_and_keeps_what_was_placed(
    lib: Lib, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, w = _streaming(lib)
    _both_pools_sent(lib, handler)
    lib.output("hevc")
    lib.output("720p")
    _disk_with(monkeypatch, [1 << 30, 100])  # room for the first output, not the second
    inbox = FakeInbox()
    inbox.put(lib.result("hevc").model_dump_json())
    inbox.put(lib.result("720p").model_dump_json())
    with pytest.raises(OutputFolderUnusable, match=r"no space left in .*out/720p: a.mp4 \[720p\]"):
        drain(inbox, handler, follow=True, stop=threading.Event(), until=lambda: w.idle)
    placed = sorted(p.name for p in lib.out.rglob("*"))
    assert placed == [OUTPUTS_MARKER, "a.mp4", "hevc"]  # kept (its folder marked); no .part
    assert inbox.deleted == ["m0"]
    assert inbox.hidden == {"m1": 0}  # the unplaced result is visible again at once
    rows = {r.pool: (r.outcome, r.reason) for r in handler.rt.rows(["720p", "hevc"])}
    assert rows == {"hevc": ("done", ""), "720p": ("pending", "not placed; the next run takes it")}


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (errno.ENOSPC, "no space left in .*out/hevc: a.mp4 \\[hevc\\]; free some space"),
        (errno.EROFS, "out/hevc is read-only: a.mp4 \\[hevc\\]; make it writable"),
        (errno.EACCES, "permission denied in .*out/hevc: a.mp4 \\[hevc\\]; give this user"),
    ],
)
def test_a_placement_that_fails_for_good_stops_the_run(lib: Lib, err: int, says: str) -> None:
    handler, _ = _streaming(lib)
    lib.output("hevc")
    # As the S3 store reports a local write that failed: wrapped, the OSError its cause.
    wrapped = RetryableError("download DONE/hevc/a.mp4: disk trouble")
    wrapped.__cause__ = OSError(err, "disk trouble")
    lib.objects.fail["DONE/hevc/a.mp4"] = wrapped
    with pytest.raises(OutputFolderUnusable, match=says):
        handler.process(lib.result("hevc"))
    assert not lib.out.exists()
    assert ("TODO/a.mp4", "hevc") not in handler.rt.fetched


def test_a_passing_download_error_is_still_tried_again(lib: Lib) -> None:
    handler, _ = _streaming(lib)
    lib.output("hevc")
    wrapped = RetryableError("download DONE/hevc/a.mp4: reset")
    wrapped.__cause__ = OSError(errno.ECONNRESET, "reset")
    lib.objects.fail["DONE/hevc/a.mp4"] = wrapped
    assert handler.process(lib.result("hevc")).action == "retry"
    assert not Path(lib.out).exists()


def test_a_result_only_the_ledger_has_comes_home_and_its_late_copy_is_consumed(
    lib: Lib,
) -> None:
    handler, w = _streaming(lib)
    lib.output("hevc")
    handler.missed([lib.result("hevc")])  # the queue never delivered it
    assert handler.rt.fetched[("TODO/a.mp4", "hevc")].action == "placed"
    assert not w.expects("TODO/a.mp4", "hevc")
    handler.missed([lib.result("hevc")])  # asked again: nothing happens twice
    inbox = FakeInbox()
    inbox.put(lib.result("hevc").model_dump_json())  # the message, late after all
    got = drain(inbox, handler, follow=False, stop=threading.Event())
    assert [(f.pool, f.action) for f in got] == [("hevc", "already")]
    assert inbox.deleted == ["m0"]  # consumed, not left for another reader
    assert w.expects("TODO/a.mp4", "720p")


def test_a_replacing_result_held_for_renditions_is_not_taken_again_from_the_ledger(
    lib: Lib,
) -> None:
    handler, w = _streaming(lib, replace=frozenset({"hevc"}))
    lib.output("hevc")
    assert handler.process(lib.result("hevc")).action == "waiting"
    handler.missed([lib.result("hevc")])
    assert ("TODO/a.mp4", "hevc") not in handler.rt.fetched
    assert w.expects("TODO/a.mp4", "hevc")


def _cleaned_up(lib: Lib) -> tuple[Streaming, Window]:
    """A run on the embedded farm (no upload in the catalog: a result is known as this
    library's by its source's metadata) whose hevc result came home first: its clean-up
    saw every other pool's job settled in the ledger and deleted the source."""
    lib.state._db.execute("UPDATE files SET upload_key=NULL, upload_fingerprint=NULL")
    handler, w = _streaming(lib)
    for pool in ("hevc", "720p", "1080p"):
        lib.ledger.set("TODO/a.mp4", pool, "skipped")
    first = handler.process(lib.result("hevc", "skipped", reason="kept the original"))
    assert first.source_deleted
    assert lib.objects.head("TODO/a.mp4") is None
    return handler, w


def test_a_result_that_comes_after_its_source_was_cleaned_up_is_still_this_runs(
    lib: Lib,
) -> None:
    # The 720p result, on its way when the source went, belonged to nobody, stayed hidden
    # for good, and the run waited for ever.
    handler, w = _cleaned_up(lib)
    stop = threading.Event()

    def arrive(inbox: FakeInbox) -> None:
        if inbox.receives == 1:
            inbox.put(lib.result("720p", "skipped", reason="kept the original").model_dump_json())
        if inbox.receives > 5:
            stop.set()  # what the run did: wait on

    inbox = FakeInbox(on_receive=arrive)
    drain(inbox, handler, follow=True, stop=stop, until=lambda: w.idle)
    assert w.idle
    assert not stop.is_set()
    assert lib.state.decisions("a.mp4")["720p"].outcome == "skipped"
    assert inbox.deleted == ["m0"]


def test_a_result_for_another_version_of_a_cleaned_up_source_is_not_this_runs(
    lib: Lib,
) -> None:
    handler, _ = _cleaned_up(lib)
    assert not handler.owns(lib.result("720p", "skipped", source_etag="another version"))
    assert handler.owns(lib.result("720p", "skipped"))


def test_an_embedded_farm_run_matches_a_late_result_by_its_own_upload_record(lib: Lib) -> None:
    # The embedded farm's uploads are not written to the catalog: once the source had left
    # the bucket, nothing told which version was uploaded and the result was orphaned.
    test_fetch._embedded_farm(lib)
    handler, _ = _streaming(lib)
    farm: Farm = None  # type: ignore[assignment]  # the run only hands it on
    run = _Run(
        handler.rt,
        handler,
        farm,
        options=IngestOptions(fresh_farm=True, wait=True),
        control=Control(),
        on_tick=None,
    )
    run.progress = NoProgress()
    e = dataclasses.replace(entry("a.mp4"), fingerprint=fingerprint(lib.src))
    handler.window.uploading += 1
    run._uploaded(Uploaded(e, "TODO/a.mp4", sent=True))
    lib.objects.delete("TODO/a.mp4")  # cleaned up before this result was read
    lib.output("720p")
    got = handler.process(lib.result("720p"))
    assert got.action == "placed", got.reason
