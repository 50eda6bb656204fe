"""fetch: ownership, verified placement and swap, S3 clean-up rules, the queue loop."""

from __future__ import annotations

import dataclasses
import errno
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hevcq.errors import RetryableError
from hevcq.ledger import LedgerItem, State
from hevcq.library.catalog import Catalog, FileRecord, PoolRecord
from hevcq.library.fetch import Fetcher, FetchOptions, _final_path, fetch_library, find_library
from hevcq.library.quarantine import (
    DEFAULT_QUARANTINE,
    LargerThanOriginal,
    ReplaceRefused,
    list_quarantine,
)
from hevcq.library.results import drain
from hevcq.library.walk import OUTPUTS_MARKER, fingerprint
from hevcq.media.decide import KEPT_ORIGINAL
from hevcq.media.model import EncodePlan
from hevcq.messages import JobResult
from hevcq.metadata import (
    META_CLIENT_SETTLED,
    META_CLIENT_SKIPS,
    META_HASH,
    META_LIBRARY,
    META_PARTS,
    client_skips_metadata,
)
from hevcq.queue import Received
from tests.fakes import FakeStore, MemoryLedger

NOW = datetime(2025, 3, 1, tzinfo=UTC)
LIB = "lib-1234"
POOLS = ("1080p", "720p", "hevc")
ORIGINAL = b"original h264 " * 100
OUTPUT = b"hevc output " * 50


def put(store: FakeStore, key: str, data: bytes, meta: dict[str, str] | None = None) -> None:
    """An object whose ETag names its key, as the results below expect."""
    store.add(key, etag=f"etag-{key}", data=data, meta=meta)


class FakeLedger(MemoryLedger):
    """The in-memory ledger, with items seeded as each test's farm left them."""

    def set(
        self, key: str, pool: str, state: str, etag: str = "etag-TODO/a.mp4", **kw: Any
    ) -> None:
        out = f"DONE/{pool}/{out_name(pool)}"
        if state == "done":  # a done job names its committed output, as put() makes it
            kw.setdefault("output_etag", f"etag-{out}")
        self.put(
            LedgerItem(key=key, pool=pool, state=State(state), etag=etag, output_key=out, **kw)
        )


def out_name(pool: str) -> str:
    """The output name a worker of ``pool`` gives ``a.mp4``."""
    return "a.mp4" if pool == "hevc" else f"a.{pool}.mp4"


def fake_verify(candidate: Path, original: Path, allow_larger: bool) -> None:
    if candidate.read_bytes().startswith(b"BAD"):
        raise ReplaceRefused("only 1.00 s of 3.00 s decode: truncated")


def plan(pool: str) -> EncodePlan:
    return EncodePlan(
        pool=pool,
        container="mp4",
        video_index=0,
        width=1920,
        height=1080,
        rotation=0,
        ten_bit=False,
        crf=26,
        preset="medium",
    )


@dataclass
class Lib:
    root: Path
    out: Path
    state: Catalog
    objects: FakeStore
    ledger: FakeLedger

    @property
    def src(self) -> Path:
        return self.root / "a.mp4"

    def fetcher(self, **kw: Any) -> Fetcher:
        opts = {"pools": frozenset(POOLS), "out_dir": self.out, **kw}
        return Fetcher(
            self.root,
            self.state,
            self.objects,
            self.ledger,
            FetchOptions(**opts),
            all_pools=POOLS,
            library=LIB,
            verify=fake_verify,
            clock=lambda: NOW,
        )

    def result(self, pool: str, outcome: str = "done", **kw: Any) -> JobResult:
        out = out_name(pool)
        fields: dict[str, Any] = {
            "job_id": "j",
            "pool": pool,
            "bucket": "b",
            "source_key": "TODO/a.mp4",
            "source_etag": "etag-TODO/a.mp4",
            "outcome": outcome,
            "output_key": f"DONE/{pool}/{out}" if outcome == "done" else None,
            "output_etag": f"etag-DONE/{pool}/{out}" if outcome == "done" else None,
        }
        return JobResult(**(fields | kw))

    def output(self, pool: str, data: bytes = OUTPUT) -> None:
        """A committed output: the object under DONE/ and the ledger's record of it."""
        out = out_name(pool)
        put(self.objects, f"DONE/{pool}/{out}", data)
        if (("TODO/a.mp4", pool)) not in self.ledger.items:
            self.ledger.set(
                "TODO/a.mp4",
                pool,
                "done",
                output_etag=f"etag-DONE/{pool}/{out}",
                output_bytes=len(data),
            )


def make_lib(tmp_path: Path, original: bytes = ORIGINAL) -> Lib:
    """A library holding ``a.mp4``, scanned, decided for every pool and uploaded."""
    root = tmp_path / "lib"
    root.mkdir()
    src = root / "a.mp4"
    src.write_bytes(original)
    st = src.stat()
    fp = fingerprint(src)
    state = Catalog(tmp_path / "state.sqlite3")
    record = FileRecord(
        rel="a.mp4",
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        inode=st.st_ino,
        fingerprint=fp,
        info=None,
        probe_error=None,
    )
    state.put_file(record)
    for p in POOLS:
        state.put_decision("a.mp4", p, PoolRecord("h", plan(p)))
    state.record_upload("a.mp4", "TODO/a.mp4", fp)
    objects = FakeStore()
    put(objects, "TODO/a.mp4", original, {META_HASH: fp, META_LIBRARY: LIB})
    return Lib(root, tmp_path / "out", state, objects, FakeLedger())


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Lib]:
    made = make_lib(tmp_path)
    yield made
    made.state.close()


# --- ownership ------------------------------------------------------------------------------


def test_owns_results_of_wanted_pools_for_sources_this_library_uploaded(lib: Lib) -> None:
    f = lib.fetcher(pools=frozenset({"hevc"}))
    assert f.owns(lib.result("hevc"))
    assert not f.owns(lib.result("720p"))


def test_a_result_for_another_librarys_source_is_not_ours(lib: Lib) -> None:
    put(lib.objects, "TODO/other.mp4", b"x", {META_LIBRARY: "someone-else"})
    assert not lib.fetcher().owns(lib.result("hevc", source_key="TODO/other.mp4"))


def test_without_a_store_record_the_objects_library_metadata_decides(lib: Lib) -> None:
    put(lib.objects, "TODO/mine.mp4", b"x", {META_LIBRARY: LIB})
    assert lib.fetcher().owns(lib.result("hevc", source_key="TODO/mine.mp4"))


# --- placement ------------------------------------------------------------------------------


def test_done_result_is_verified_and_placed_under_out_pool(lib: Lib) -> None:
    lib.output("720p")
    shot = 1_500_000_000_123_456_789  # the original's date, as a phone wrote it (2017)
    os.utime(lib.src, ns=(shot, shot))
    got = lib.fetcher(cleanup=False).process(lib.result("720p"))
    assert got.action == "placed"
    assert (lib.out / "720p" / "a.720p.mp4").read_bytes() == OUTPUT
    # Dated like its original: a folder sorted by date keeps it where the video was shot.
    assert (lib.out / "720p" / "a.720p.mp4").stat().st_mtime_ns == shot
    assert lib.src.read_bytes() == ORIGINAL
    assert lib.state.decisions("a.mp4")["720p"].outcome == "done"
    assert not [p for p in lib.out.rglob("*.part")]


def test_failed_verification_never_touches_the_original_and_is_recorded(lib: Lib) -> None:
    lib.output("hevc", b"BAD" + OUTPUT)
    for pool in POOLS:
        lib.ledger.set("TODO/a.mp4", pool, "done")
    got = lib.fetcher(replace=frozenset({"hevc"})).process(lib.result("hevc"))
    assert got.action == "refused"
    assert "truncated" in got.reason
    assert lib.src.read_bytes() == ORIGINAL
    rec = lib.state.decisions("a.mp4")["hevc"]
    assert (rec.outcome, "truncated" in (rec.reason or "")) == ("failed", True)
    assert lib.objects.deleted == []  # output kept for inspection, source kept
    assert list_quarantine(lib.root / DEFAULT_QUARANTINE) == []


def test_replace_swaps_in_keeps_mtime_and_quarantines_the_original(lib: Lib) -> None:
    lib.output("hevc")
    mtime = lib.src.stat().st_mtime_ns
    got = lib.fetcher(replace=frozenset({"hevc"}), keep_days=7).process(lib.result("hevc"))
    assert got.action == "replaced"
    assert lib.src.read_bytes() == OUTPUT
    assert lib.src.stat().st_mtime_ns == mtime
    [entry] = list_quarantine(lib.root / DEFAULT_QUARANTINE)
    assert entry.quarantined.read_bytes() == ORIGINAL
    assert (entry.keep_until - NOW).days == 7


def test_a_swapped_in_file_is_remembered_as_a_replacement(lib: Lib) -> None:
    lib.output("hevc")
    lib.fetcher(replace=frozenset({"hevc"})).process(lib.result("hevc"))
    made = lib.state.load_replacements()["a.mp4"]
    st = lib.src.stat()
    assert made.original == "a.mp4"
    assert made.holds(st.st_size, st.st_mtime_ns, st.st_ino)


def test_a_rendition_after_the_swap_is_checked_against_the_quarantined_original(lib: Lib) -> None:
    lib.output("hevc")
    lib.output("720p")
    f = lib.fetcher(replace=frozenset({"hevc"}))
    assert f.process(lib.result("hevc")).action == "replaced"
    got = f.process(lib.result("720p"))
    assert got.action == "placed", got.reason


def test_a_replace_result_seen_twice_is_not_swapped_twice(lib: Lib) -> None:
    lib.output("hevc")
    f = lib.fetcher(replace=frozenset({"hevc"}), cleanup=False)
    f.process(lib.result("hevc"))
    assert f.process(lib.result("hevc")).action == "already"
    assert len(list_quarantine(lib.root / DEFAULT_QUARANTINE)) == 1


def test_replace_after_a_run_into_out_swaps_the_original_in(lib: Lib) -> None:
    # `ingest lib --out X`, then `ingest lib --replace`: the first run's "done" was a copy
    # placed in X. The second encoded again, then answered "replaced earlier", left the
    # original as it was and called the job done.
    lib.output("hevc")
    assert lib.fetcher().process(lib.result("hevc")).action == "placed"
    original = lib.src.read_bytes()
    lib.output("hevc")  # encoded again by the second run
    again = lib.fetcher(replace=frozenset({"hevc"}), cleanup=False)
    got = again.process(lib.result("hevc"))
    assert got.action == "replaced", got.reason
    assert lib.src.read_bytes() != original
    [entry] = list_quarantine(lib.root / DEFAULT_QUARANTINE)
    assert entry.quarantined.read_bytes() == original
    # And the same result once more is the one already swapped in, not a second swap.
    assert again.process(lib.result("hevc")).action == "already"
    assert len(list_quarantine(lib.root / DEFAULT_QUARANTINE)) == 1


def test_a_replace_result_for_an_original_a_rollback_put_back_leaves_it(lib: Lib) -> None:
    """`hevcq fetch --replace` after `hevcq rollback`: the original a person chose stays,
    and the result counts as skipped with the reason, not as done."""
    lib.output("hevc")
    lib.state.record_rollback("a.mp4", lib.src.stat())
    got = lib.fetcher(replace=frozenset({"hevc"})).process(lib.result("hevc"))
    assert got.action == "skipped"
    assert got.reason.startswith("rolled back on ")
    assert lib.src.read_bytes() == ORIGINAL
    assert list_quarantine(lib.root / DEFAULT_QUARANTINE) == []
    assert lib.state.decisions("a.mp4")["hevc"].outcome == "skipped"


def test_a_rollback_mark_no_longer_holds_once_the_original_changes(lib: Lib) -> None:
    lib.output("hevc")
    lib.state.record_rollback("a.mp4", lib.src.stat())
    lib.src.write_bytes(ORIGINAL + b" edited")
    got = lib.fetcher(replace=frozenset({"hevc"})).process(lib.result("hevc"))
    assert got.action != "skipped" or not got.reason.startswith("rolled back")


@pytest.mark.parametrize(
    ("change", "reason"),
    [("delete", "no longer in the library"), ("edit", "changed since it was uploaded")],
)
def test_results_for_missing_or_changed_sources_are_reported(lib: Lib, change, reason) -> None:
    lib.output("720p")
    if change == "delete":
        lib.src.unlink()
    else:
        lib.src.write_bytes(b"edited " * 10)
    got = lib.fetcher().process(lib.result("720p"))
    assert (got.action, reason in got.reason) == ("orphaned", True)
    assert not (lib.out / "720p").exists() or not any((lib.out / "720p").iterdir())


def test_a_source_renamed_during_the_run_gets_its_output_under_the_name_it_was_made_for(
    lib: Lib,
) -> None:
    """Renamed (or moved into a folder) after its upload: the output is the renamed file's,
    placed under the old name and "done" there, from where the next scan moves both
    (``follow``). Before, it was dropped as orphaned and the file encoded again."""
    lib.output("720p")
    (lib.root / "2024").mkdir()
    lib.src.rename(lib.root / "2024" / "holiday.mp4")
    got = lib.fetcher(cleanup=False).process(lib.result("720p"))
    assert got.action == "placed"
    assert "renamed to 2024/holiday.mp4 during the run" in got.reason
    assert (lib.out / "720p" / "a.720p.mp4").read_bytes() == OUTPUT
    assert lib.state.decisions("a.mp4")["720p"].outcome == "done"


def test_a_file_renamed_to_the_sources_place_or_a_copy_elsewhere_is_not_taken_for_it(
    lib: Lib,
) -> None:
    """Only the file with the source's identity (inode, size, mtime) that still holds the
    uploaded content: a copy (another inode) or the same inode edited is no rename."""
    lib.output("720p")
    lib.output("hevc")
    copy = lib.root / "copy.mp4"
    copy.write_bytes(ORIGINAL)
    st = lib.src.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    lib.src.unlink()
    got = lib.fetcher(cleanup=False).process(lib.result("720p"))
    assert (got.action, got.reason) == ("orphaned", "source no longer in the library")

    moved = lib.root / "moved.mp4"
    copy.unlink()
    moved.write_bytes(b"edited " * 200)  # a new file: another inode, other content
    got = lib.fetcher(cleanup=False).process(lib.result("hevc"))
    assert got.action == "orphaned"


def test_a_replacing_pool_leaves_a_source_renamed_during_the_run_for_the_next_run(
    lib: Lib,
) -> None:
    lib.output("hevc")
    lib.src.rename(lib.root / "b.mp4")
    got = lib.fetcher(replace=frozenset({"hevc"})).process(lib.result("hevc"))
    assert got.action == "orphaned"
    assert "renamed to b.mp4 during the run; the next run replaces it there" in got.reason
    assert (lib.root / "b.mp4").read_bytes() == ORIGINAL
    assert list_quarantine(lib.root / DEFAULT_QUARANTINE) == []


def test_farm_failures_are_recorded_with_their_reason(lib: Lib) -> None:
    got = lib.fetcher().process(lib.result("1080p", "failed", reason="ffmpeg exited 1"))
    assert (got.action, got.ok) == ("failed", False)
    assert lib.state.decisions("a.mp4")["1080p"].reason == "ffmpeg exited 1"


def test_a_source_deleted_under_its_job_is_settled_as_failed_though_the_source_is_gone(
    lib: Lib,
) -> None:
    lib.objects.delete("TODO/a.mp4")  # what the worker found: no object to HEAD any more
    r = lib.result("hevc", "failed", reason="source deleted", failure_class="permanent")
    f = lib.fetcher()
    assert f.owns(r)  # the catalog remembers the upload; the object is not needed
    got = f.process(r)
    assert (got.action, got.reason) == ("failed", "source deleted")
    assert lib.state.decisions("a.mp4")["hevc"].reason == "source deleted"


# --- S3 clean-up ----------------------------------------------------------------------------


def _all_finished(lib: Lib, states: dict[str, str]) -> None:
    for pool in POOLS:
        lib.ledger.set("TODO/a.mp4", pool, states.get(pool, "done"))


def test_source_deleted_once_every_pool_is_finished_and_fetched(lib: Lib) -> None:
    _all_finished(lib, {"1080p": "skipped"})
    f = lib.fetcher()
    lib.state.record_outcome("a.mp4", "1080p", "skipped")
    lib.output("720p")
    lib.output("hevc")
    first = f.process(lib.result("720p"))
    assert lib.objects.deleted == ["DONE/720p/a.720p.mp4"]  # hevc not fetched yet
    assert not first.source_deleted
    second = f.process(lib.result("hevc"))
    assert second.source_deleted
    assert lib.objects.deleted[-2:] == ["DONE/hevc/a.mp4", "TODO/a.mp4"]


@pytest.mark.parametrize("other", ["failed", "running", "queued"])
def test_source_kept_while_another_pool_failed_or_is_unfinished(lib: Lib, other: str) -> None:
    _all_finished(lib, {"1080p": other, "720p": "skipped"})
    lib.state.record_outcome("a.mp4", "720p", "skipped")
    lib.output("hevc")
    got = lib.fetcher().process(lib.result("hevc"))
    assert got.action == "placed"
    assert lib.objects.deleted == ["DONE/hevc/a.mp4"]
    assert "TODO/a.mp4" in lib.objects.objects


def test_source_kept_when_a_job_failed_here_even_if_the_farm_says_done(lib: Lib) -> None:
    _all_finished(lib, {"1080p": "skipped", "720p": "skipped"})
    lib.state.record_outcome("a.mp4", "720p", "failed", "refused: larger than the original")
    lib.output("hevc")
    lib.fetcher().process(lib.result("hevc"))
    assert "TODO/a.mp4" in lib.objects.objects


def test_source_of_an_older_upload_is_not_judged_by_newer_ledger_items(lib: Lib) -> None:
    for pool in POOLS:
        lib.ledger.set("TODO/a.mp4", pool, "skipped", etag="a-newer-upload")
    lib.output("hevc")
    lib.fetcher().process(lib.result("hevc"))
    assert "TODO/a.mp4" in lib.objects.objects


@pytest.mark.parametrize("waiting", ["queued", "running", "interrupted"])
def test_the_primary_output_stays_while_a_rendition_may_copy_it_and_goes_with_the_source(
    lib: Lib, waiting: str
) -> None:
    _all_finished(lib, {"1080p": waiting, "720p": "skipped"})
    lib.ledger.set("TODO/a.mp4", "hevc", "done", output_etag="etag-DONE/hevc/a.mp4")
    lib.state.record_outcome("a.mp4", "720p", "skipped")
    lib.output("hevc")
    f = lib.fetcher(primary="hevc")
    assert f.process(lib.result("hevc")).action == "placed"
    assert lib.objects.deleted == []  # the 1080p worker may still copy it
    assert "DONE/hevc/a.mp4" in lib.objects.objects
    # The rendition copied it and is done: its output comes home, then everything goes.
    lib.ledger.set("TODO/a.mp4", "1080p", "done", output_etag="etag-DONE/1080p/a.1080p.mp4")
    lib.output("1080p")
    got = f.process(lib.result("1080p", copied_from="DONE/hevc/a.mp4"))
    assert (got.action, got.source_deleted) == ("placed", True)
    assert lib.objects.deleted == ["DONE/1080p/a.1080p.mp4", "TODO/a.mp4"]
    assert "DONE/hevc/a.mp4" not in lib.objects.objects  # deleted as the ledger's output


def _embedded_farm(lib: Lib) -> None:
    """The embedded farm's run: its upload is not in the catalog (it dies with the farm),
    so outcomes the catalog holds are an earlier run's, never reset by ``record_upload``."""
    lib.state._db.execute("UPDATE files SET upload_key=NULL, upload_fingerprint=NULL")


def test_a_pools_done_job_keeps_the_source_until_its_result_is_home_whatever_earlier_runs_said(
    lib: Lib,
) -> None:
    # ingest lib --out lib/out: 1080p was "done" in an earlier run whose output left --out,
    # so this run sent it again. The hevc worker copied its output for 1080p at its commit
    # (1080p: done in the ledger, its output in the bucket) just before the hevc result
    # came home; the earlier run's "done" let the source go 8 ms before the 1080p result,
    # which was then orphaned ("cannot tell which version of the source was uploaded").
    _embedded_farm(lib)
    lib.state.record_outcome("a.mp4", "1080p", "done")  # the earlier run's
    lib.ledger.set("TODO/a.mp4", "720p", "skipped")
    lib.state.record_outcome("a.mp4", "720p", "skipped")
    lib.output("hevc")
    lib.output("1080p")  # copied at hevc's commit; its result is still on its way
    f = lib.fetcher(primary="hevc")
    got = f.process(lib.result("hevc"))
    assert (got.action, got.source_deleted) == ("placed", False)
    assert "TODO/a.mp4" in lib.objects.objects
    late = f.process(lib.result("1080p", copied_from="DONE/hevc/a.mp4"))
    assert (late.action, late.source_deleted) == ("placed", True)
    assert (lib.out / "1080p" / "a.1080p.mp4").read_bytes() == OUTPUT
    assert "TODO/a.mp4" not in lib.objects.objects


def test_a_done_outcome_recorded_for_this_upload_counts_as_home(lib: Lib) -> None:
    # A fetch in an earlier session brought the primary's output home and kept it for the
    # rendition's copy: the catalog's "done" for this very upload is home.
    lib.ledger.set("TODO/a.mp4", "720p", "skipped")
    lib.state.record_outcome("a.mp4", "720p", "skipped")
    lib.output("hevc")
    lib.state.record_outcome("a.mp4", "hevc", "done")
    lib.output("1080p")
    got = lib.fetcher(primary="hevc").process(lib.result("1080p"))
    assert (got.action, got.source_deleted) == ("placed", True)
    assert "DONE/hevc/a.mp4" not in lib.objects.objects  # went with the source


def test_a_result_after_its_source_went_is_matched_by_this_runs_upload_record(
    lib: Lib,
) -> None:
    # Without the run's own record of what it uploaded, a result that came after the
    # source left the bucket was orphaned: the embedded farm's catalog holds no upload.
    _embedded_farm(lib)
    f = lib.fetcher()
    f.remember_upload("TODO/a.mp4", fingerprint(lib.src))
    lib.objects.delete("TODO/a.mp4")
    lib.output("1080p")
    got = f.process(lib.result("1080p"))
    assert got.action == "placed", got.reason


def test_a_changed_source_is_not_matched_by_this_runs_upload_record(lib: Lib) -> None:
    _embedded_farm(lib)
    f = lib.fetcher()
    f.remember_upload("TODO/a.mp4", fingerprint(lib.src))
    lib.objects.delete("TODO/a.mp4")
    lib.src.write_bytes(b"edited since " + ORIGINAL)
    lib.output("1080p")
    got = f.process(lib.result("1080p"))
    assert (got.action, got.reason) == ("orphaned", "source changed since it was uploaded")


@pytest.mark.parametrize("rendition", ["no item", "an older version's item"])
def test_the_primary_output_stays_for_a_rendition_no_worker_has_claimed_yet(
    lib: Lib, rendition: str
) -> None:
    """The fetch ran between the hevc commit and the 1080p claim: deleted, the output was
    encoded again by the 1080p worker (seen on 10-bit 1080p sources)."""
    for pool, state in {"hevc": "done", "720p": "skipped"}.items():
        lib.ledger.set("TODO/a.mp4", pool, state)
    if rendition != "no item":  # says nothing of this version's job
        lib.ledger.set("TODO/a.mp4", "1080p", "done", etag="an-older-version")
    lib.state.record_outcome("a.mp4", "720p", "skipped")
    lib.output("hevc")
    assert lib.fetcher(primary="hevc").process(lib.result("hevc")).action == "placed"
    assert lib.objects.deleted == []  # the 1080p worker may still copy it
    assert "DONE/hevc/a.mp4" in lib.objects.objects


@pytest.mark.parametrize("source", ["deleted", "overwritten"])
def test_the_primary_output_is_not_kept_once_its_source_version_is_gone(
    lib: Lib, source: str
) -> None:
    """No rendition of that version can begin then: waiting for one would keep the output
    in the bucket for ever."""
    lib.ledger.set("TODO/a.mp4", "hevc", "done")
    lib.output("hevc")
    if source == "deleted":
        lib.objects.delete("TODO/a.mp4")
    else:
        lib.objects.add("TODO/a.mp4", etag="a-newer-version", data=b"a newer version")
    lib.fetcher(primary="hevc").process(lib.result("hevc"))
    assert "DONE/hevc/a.mp4" in lib.objects.deleted


def test_the_primary_output_is_not_kept_for_a_pool_that_never_copies_it(lib: Lib) -> None:
    """A ladder pool (or another codec's) makes its own output: no job of it waits."""
    lib.ledger.set("TODO/a.mp4", "hevc", "done")
    lib.ledger.set("TODO/a.mp4", "720p", "skipped")
    lib.state.record_outcome("a.mp4", "720p", "skipped")
    lib.output("hevc")
    # 1080p stands for such a pool here: neither copier below, and without an item.
    f = lib.fetcher(primary="hevc", copiers=frozenset({"720p"}))
    assert f.process(lib.result("hevc")).action == "placed"
    assert "DONE/hevc/a.mp4" in lib.objects.deleted


def test_the_primary_output_goes_when_the_uploader_settled_every_other_pool(lib: Lib) -> None:
    """A pool the client settled itself never gets a job: nothing is waited for."""
    lib.ledger.set("TODO/a.mp4", "hevc", "done")
    lib.output("hevc")
    head = lib.objects.objects["TODO/a.mp4"]
    lib.objects.objects["TODO/a.mp4"] = dataclasses.replace(
        head, metadata={**head.metadata, **client_skips_metadata(("720p", "1080p"))}
    )
    lib.fetcher(primary="hevc").process(lib.result("hevc"))
    assert "DONE/hevc/a.mp4" in lib.objects.deleted


def test_the_primary_output_goes_at_once_when_no_other_job_is_open(lib: Lib) -> None:
    _all_finished(lib, {"1080p": "failed", "720p": "skipped"})
    lib.output("hevc")
    lib.fetcher(primary="hevc").process(lib.result("hevc"))
    assert lib.objects.deleted == ["DONE/hevc/a.mp4"]


def test_a_file_output_brought_home_takes_its_poster_out_of_the_bucket_too(lib: Lib) -> None:
    _all_finished(lib, {"1080p": "failed", "720p": "skipped"})
    lib.output("hevc")
    key, token = "DONE/hevc/a.mp4", "0123456789abcdef"
    lib.objects.objects[key] = dataclasses.replace(
        lib.objects.objects[key], metadata={META_PARTS: token}
    )
    poster = f"{key}.parts/{token}/poster.jpg"
    other = f"{key}.parts/{'f' * 16}/poster.jpg"  # a newer commit's, say: not ours to take
    put(lib.objects, poster, b"jpeg")
    put(lib.objects, other, b"jpeg")
    got = lib.fetcher(primary="hevc").process(lib.result("hevc"))
    assert got.action == "placed"
    placed = sorted(p.name for p in (lib.out / "hevc").iterdir())
    assert placed == [OUTPUTS_MARKER, "a.mp4"]  # the file alone, in a marked pool folder
    assert lib.objects.head(key) is None
    assert lib.objects.head(poster) is None
    assert lib.objects.head(other) is not None


def test_no_cleanup_keeps_every_object(lib: Lib) -> None:
    _all_finished(lib, {})
    lib.output("hevc")
    lib.fetcher(cleanup=False).process(lib.result("hevc"))
    assert lib.objects.deleted == []


# --- the queue loop -------------------------------------------------------------------------


@dataclass
class FakeInbox:
    """A queue: messages stay until deleted; hidden ones come back when asked."""

    messages: list[Received] = field(default_factory=list)
    hidden: dict[str, int] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    receives: int = 0
    on_receive: Any = None

    def put(self, body: str) -> None:
        n = len(self.messages)
        self.messages.append(Received(f"m{n}", body, f"h{n}", receive_count=1, received_at=0.0))

    def receive(self, wait_s: int) -> list[Received]:
        self.receives += 1
        if self.on_receive:
            self.on_receive(self)
        out = [m for m in self.messages if self.hidden.get(m.message_id, 0) == 0]
        for m in out:
            self.hidden[m.message_id] = 900
        return out

    def delete(self, d: Received) -> None:
        self.deleted.append(d.message_id)
        self.hidden.pop(d.message_id, None)
        self.messages = [m for m in self.messages if m.message_id != d.message_id]

    def release(self, d: Received, delay_s: int) -> None:
        self.hidden[d.message_id] = delay_s


def test_drain_takes_ours_and_leaves_other_pools_and_garbage_visible(lib: Lib) -> None:
    inbox = FakeInbox()
    lib.output("hevc")
    inbox.put(lib.result("hevc").model_dump_json())
    inbox.put(lib.result("720p").model_dump_json())
    inbox.put("not a result")
    got = drain(inbox, lib.fetcher(pools=frozenset({"hevc"})), follow=False, stop=threading.Event())
    assert [(f.pool, f.action) for f in got] == [("hevc", "placed")]
    assert inbox.deleted == ["m0"]
    assert inbox.hidden == {"m1": 0, "m2": 0}  # visible again for their owners


def test_follow_keeps_polling_until_stopped(lib: Lib) -> None:
    stop = threading.Event()
    lib.output("hevc")

    def arrive(inbox: FakeInbox) -> None:
        if inbox.receives == 3:
            inbox.put(lib.result("hevc").model_dump_json())
        if inbox.receives == 5:
            stop.set()

    inbox = FakeInbox(on_receive=arrive)
    got = drain(inbox, lib.fetcher(), follow=True, stop=stop)
    assert [f.action for f in got] == ["placed"]
    assert inbox.receives == 5


def test_a_transient_download_error_leaves_the_result_for_later(lib: Lib) -> None:
    inbox = FakeInbox()
    inbox.put(lib.result("hevc").model_dump_json())  # no output object: download fails

    result = lib.result("hevc")
    assert result.output_key
    lib.objects.fail[result.output_key] = RetryableError("SlowDown")
    got = drain(inbox, lib.fetcher(), follow=False, stop=threading.Event())
    assert [f.action for f in got] == ["retry"]
    assert inbox.deleted == []
    assert inbox.hidden == {"m0": 0}
    assert lib.src.read_bytes() == ORIGINAL


def test_fetch_library_finishes_an_interrupted_swap_first(lib: Lib) -> None:
    lib.output("hevc")
    f = lib.fetcher(replace=frozenset({"hevc"}))
    f.process(lib.result("hevc"))
    [entry] = list_quarantine(f.quarantine)
    # A crash after step 4 of the swap: the manifest still says "staged".
    manifest = entry.folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"complete"', '"staged"'))
    fetch_library(FakeInbox(), f, follow=False, stop=threading.Event())
    assert list_quarantine(f.quarantine)[0].state == "complete"


def test_find_library_walks_up_to_the_quarantine(lib: Lib) -> None:
    (lib.root / DEFAULT_QUARANTINE).mkdir(parents=True)
    (lib.root / "deep" / "er").mkdir(parents=True)
    assert find_library(lib.root / "deep" / "er" / "x.mp4") == lib.root
    assert find_library(lib.root.parent / "elsewhere.mp4") is None


# --- agreement of result, ledger and output ----------------------------------------------


def test_a_result_for_an_older_version_is_dropped_without_placing_anything(lib: Lib) -> None:
    lib.output("720p")
    lib.ledger.set("TODO/a.mp4", "720p", "running", etag="etag-v2")
    got = lib.fetcher(cleanup=False).process(lib.result("720p"))
    assert (got.action, got.ok) == ("superseded", True)
    assert not lib.out.exists()


def test_a_result_the_ledger_does_not_confirm_yet_is_kept_for_later(lib: Lib) -> None:
    lib.output("720p")
    lib.ledger.set("TODO/a.mp4", "720p", "running")
    got = lib.fetcher(cleanup=False).process(lib.result("720p"))
    assert got.action == "retry"
    assert not lib.out.exists()


def test_an_output_replaced_since_its_commit_is_not_placed(lib: Lib) -> None:
    lib.output("720p")
    got = lib.fetcher(cleanup=False).process(lib.result("720p", output_etag="etag-of-a-zombie"))
    assert got.action in ("retry", "superseded")
    assert not lib.out.exists()
    assert "DONE/720p/a.720p.mp4" not in lib.objects.deleted


def _larger(candidate: Path, original: Path, allow_larger: bool) -> None:
    raise LargerThanOriginal("larger than the original (9 > 8 bytes)")


@pytest.mark.parametrize("replace", [frozenset(), frozenset({"hevc"})])
def test_a_larger_output_keeps_the_original_and_is_not_a_failure(
    lib: Lib, replace: frozenset[str]
) -> None:
    lib.output("hevc")
    f = dataclasses.replace(lib.fetcher(replace=replace), verify=_larger)
    got = f.process(lib.result("hevc"))
    assert (got.action, got.reason, got.ok) == ("skipped", KEPT_ORIGINAL, True)
    assert lib.src.read_bytes() == ORIGINAL
    assert not lib.out.exists() or not any(lib.out.rglob("*.mp4"))
    assert lib.state.decisions("a.mp4")["hevc"].outcome == "skipped"


@pytest.mark.parametrize(
    ("output_key", "final"),
    [
        ("DONE/hevc/trip/IMG_0001.MOV.mp4", "IMG_0001.MOV.mp4"),  # its name is shared
        ("DONE/hevc/trip/IMG_0001.mp4", "IMG_0001.mp4"),
        ("DONE/hevc/trip/other.mp4", "IMG_0001.mp4"),  # not a name the rule makes
        (None, "IMG_0001.mp4"),
    ],
)
def test_a_replacing_output_takes_the_name_the_worker_gave_it(
    tmp_path: Path, output_key: str | None, final: str
) -> None:
    src = tmp_path / "trip" / "IMG_0001.MOV"
    r = JobResult(
        job_id="j",
        pool="hevc",
        bucket="b",
        source_key="TODO/trip/IMG_0001.MOV",
        outcome="done",
        output_key=output_key,
    )
    assert _final_path(r, src) == src.with_name(final)


def _client_settles(lib: Lib, **meta: str) -> None:
    """Upload metadata naming the pools the client settled itself."""
    head = lib.objects.objects["TODO/a.mp4"]
    put(lib.objects, "TODO/a.mp4", lib.objects.data["TODO/a.mp4"], {**head.metadata, **meta})


def test_pools_the_client_settled_need_no_job_before_the_source_goes(lib: Lib) -> None:
    # The embedded farm starts no worker for a pool with nothing to encode: no ledger item
    # ever appears for 720p (client skip) or 1080p (settled in an earlier run).
    _client_settles(lib, **{META_CLIENT_SKIPS: "720p", META_CLIENT_SETTLED: "1080p"})
    lib.output("hevc")
    got = lib.fetcher().process(lib.result("hevc"))
    assert (got.action, got.source_deleted) == ("placed", True)
    assert "TODO/a.mp4" not in lib.objects.objects


def test_without_the_clients_word_a_pool_with_no_job_keeps_the_source(lib: Lib) -> None:
    lib.output("hevc")
    got = lib.fetcher().process(lib.result("hevc"))
    assert (got.action, got.source_deleted) == ("placed", False)
    assert "TODO/a.mp4" in lib.objects.objects


@pytest.mark.parametrize("state", ["queued", "running", "failed"])
def test_a_client_skipped_pool_whose_worker_opened_a_job_is_waited_for(
    lib: Lib, state: str
) -> None:
    # The worker re-decides with its own settings; once it holds a job, the ledger rules.
    _client_settles(lib, **{META_CLIENT_SKIPS: "720p,1080p"})
    lib.ledger.set("TODO/a.mp4", "720p", state)
    lib.output("hevc")
    got = lib.fetcher().process(lib.result("hevc"))
    assert (got.action, got.source_deleted) == ("placed", False)
    assert "TODO/a.mp4" in lib.objects.objects


# --- what the client checks again -----------------------------------------------------------


def _md5_output(lib: Lib, pool: str, data: bytes) -> str:
    """A committed output whose ETag is the MD5 of its bytes, as a single-part PUT gets."""
    import hashlib  # noqa: PLC0415

    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
    key = f"DONE/{pool}/{out_name(pool)}"
    lib.objects.add(key, etag=etag, data=data)
    lib.ledger.set("TODO/a.mp4", pool, "done", output_etag=etag, output_bytes=len(data))
    return etag


def _counting(calls: list[Path]):
    def verify(candidate: Path, original: Path, allow_larger: bool) -> None:
        calls.append(candidate)
        fake_verify(candidate, original, allow_larger)

    return verify


def test_an_output_whose_bytes_match_the_committed_checksum_is_placed_without_a_decode(
    lib: Lib,
) -> None:
    calls: list[Path] = []
    etag = _md5_output(lib, "720p", b"BAD but proven by the worker " * 4)
    f = dataclasses.replace(lib.fetcher(), verify=_counting(calls))
    got = f.process(lib.result("720p", output_etag=etag))
    assert (got.action, got.ok) == ("placed", True)
    assert calls == []  # no second decode: the MD5 says these are the bytes the worker proved
    assert (lib.out / "720p" / "a.720p.mp4").read_bytes().startswith(b"BAD")


def test_bytes_other_than_the_committed_checksum_are_refused_not_placed(lib: Lib) -> None:
    etag = _md5_output(lib, "720p", b"what the worker committed " * 4)
    lib.objects.add(
        f"DONE/720p/{out_name('720p')}", etag=etag, data=b"changed in flight!!!!!!!! " * 4
    )
    got = lib.fetcher().process(lib.result("720p", output_etag=etag))
    assert got.action == "refused"
    assert "checksum" in got.reason
    assert not lib.out.exists() or not any(lib.out.rglob("*.mp4"))


def test_replacing_an_original_still_decodes_every_frame(lib: Lib) -> None:
    calls: list[Path] = []
    etag = _md5_output(lib, "hevc", OUTPUT)
    f = dataclasses.replace(lib.fetcher(replace=frozenset({"hevc"})), verify=_counting(calls))
    got = f.process(lib.result("hevc", output_etag=etag))
    assert (got.action, got.ok) == ("replaced", True)
    assert len(calls) == 1


def test_an_output_whose_etag_is_no_checksum_is_decoded_before_it_is_placed(lib: Lib) -> None:
    calls: list[Path] = []
    lib.output("720p", b"BAD multipart output " * 4)  # its ETag is not an MD5
    f = dataclasses.replace(lib.fetcher(), verify=_counting(calls))
    got = f.process(lib.result("720p"))
    assert got.action == "refused"
    assert len(calls) == 1


def test_a_larger_checksummed_output_keeps_the_original_without_a_decode(lib: Lib) -> None:
    calls: list[Path] = []
    etag = _md5_output(lib, "720p", ORIGINAL + b"more")
    f = dataclasses.replace(lib.fetcher(), verify=_counting(calls))
    got = f.process(lib.result("720p", output_etag=etag))
    assert (got.action, got.reason) == ("skipped", KEPT_ORIGINAL)
    assert calls == []


def test_a_read_only_library_stops_a_replace_saying_to_run_without_it(
    lib: Lib, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "or choose another output folder", which does not help a replacement: the
    output goes where the original is."""
    from hevcq.library import fetch  # noqa: PLC0415
    from hevcq.library.quarantine import OutputFolderUnusable  # noqa: PLC0415

    def read_only(*_: object, **__: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fetch, "swap_in", read_only)
    lib.output("hevc")
    with pytest.raises(OutputFolderUnusable) as stopped:
        lib.fetcher(replace=frozenset({"hevc"})).process(lib.result("hevc"))
    assert "is read-only: " in str(stopped.value)
    assert "make it writable or run without --replace, then run" in str(stopped.value)
    assert lib.src.read_bytes() == ORIGINAL


def test_an_output_name_too_long_for_out_is_refused_in_words_not_errno(
    lib: Lib, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cloud farm's results fetched into a folder whose file system takes shorter names
    # than the library's (or a name near the limit with the pool's suffix).
    import hevcq.library.fetch as fetch_module  # noqa: PLC0415 - the placement forced to fail

    def too_long(tmp: Path, dest: Path, *, move: bool) -> Path:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(tmp), str(dest))

    monkeypatch.setattr(fetch_module, "place_output", too_long)
    etag = _md5_output(lib, "720p", OUTPUT)
    got = lib.fetcher().process(lib.result("720p", output_etag=etag))
    assert got.action == "refused"
    assert got.reason.startswith("the output's name is too long for ")
    assert got.reason.endswith("with the pool's suffix): rename the source shorter")
    assert "Errno" not in got.reason
    assert lib.src.exists()
    assert not any(lib.out.rglob("*.mp4")) if lib.out.exists() else True
