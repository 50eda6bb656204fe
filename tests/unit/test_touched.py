"""A file whose content did not change, only its mtime or inode (touched, synced, restored,
copied to another disk), keeps its outputs; an edit in place that the sampled fingerprint
cannot see is encoded again."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hevcq.library.catalog import Catalog
from hevcq.library.scan import ScanReport, scan
from hevcq.library.upload import recorder, upload_all, upload_one
from hevcq.library.walk import FULL_HASH_MAX, ScanOptions, fingerprint, sample_offsets
from hevcq.media.model import MediaInfo
from tests.fakes import FakeStore
from tests.unit.test_follow import POOLS, Library, entry, library
from tests.unit.test_ingest import fake_probe

LIB = "lib-id"
BIG = 3 * FULL_HASH_MAX  # sampled by the fingerprint, not hashed whole


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    """The two-file library, one.mp4 made large enough to be fingerprinted by samples."""
    with library(tmp_path) as made:
        (made.root / "one.mp4").write_bytes(b"h264\n" + os.urandom(BIG))
        yield made


def converted(lib: Library) -> None:
    """A first run on the embedded farm: every file sent (the upload hashes it whole and
    the catalog keeps that hash, though not the upload), encoded, its outputs home."""
    sent = list(lib.scan().to_send)
    assert {e.rel for e in sent} == {"one.mp4", "two.mp4"}
    record = recorder(lib.store, farm_keeps=False)
    ups = upload_all(FakeStore(), lib.root, sent, LIB, on_done=record)
    assert all(u.ok and u.content_hash for u in ups)
    lib.run()
    assert lib.scan().to_send == ()


def probed_scan(lib: Library) -> tuple[ScanReport, list[str]]:
    """A run's scan that notes every file it probes."""
    seen: list[str] = []

    def probe(path: Path) -> MediaInfo:
        seen.append(path.name)
        return fake_probe(path)

    report = scan(
        lib.root, POOLS, lib.store, ScanOptions(), probe_fn=probe, out_dir=lib.out, move=True
    )
    return report, seen


def test_a_touched_file_keeps_its_outputs_and_is_neither_probed_nor_sent(lib: Library) -> None:
    converted(lib)
    one = lib.root / "one.mp4"
    st = one.stat()
    os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns + 86_400 * 10**9))

    report, probed = probed_scan(lib)
    assert report.to_send == ()
    assert probed == []
    assert report.touched_kept == 1
    found = entry(report, "one.mp4")
    assert (found.status, dict(found.outcomes)) == ("finished", {"hevc": "done", "720p": "done"})
    # The catalog now knows the file by its new mtime: the next scan reads nothing of it.
    assert lib.store.get("one.mp4").mtime_ns == one.stat().st_mtime_ns
    again = probed_scan(lib)[0]
    assert (again.to_send, again.touched_kept) == ((), 0)


def test_a_file_copied_to_another_disk_keeps_its_outputs(lib: Library, tmp_path: Path) -> None:
    """A copy made back over the library (new inode, new mtime): the same content."""
    converted(lib)
    for name in ("one.mp4", "two.mp4"):
        path = lib.root / name
        shutil.copyfile(path, tmp_path / name)
        (tmp_path / name).replace(path)
    report, probed = probed_scan(lib)
    assert report.to_send == ()
    assert probed == []
    assert {e.status for e in report.entries} == {"finished"}


def test_an_edit_in_place_the_sampled_fingerprint_misses_is_encoded_again(lib: Library) -> None:
    """The attack on trusting the sampled fingerprint: the same size, the same sampled
    windows, other bytes between them. Its earlier outputs are not this content's."""
    converted(lib)
    one = lib.root / "one.mp4"
    size = one.stat().st_size
    before = fingerprint(one)
    covered = sorted(sample_offsets(size))
    gap = covered[1][0] - 100  # a byte between the head and the first stripe
    assert all(not off <= gap < off + n for off, n in covered)
    with one.open("r+b") as fh:
        fh.seek(gap)
        old = fh.read(1)
        fh.seek(gap)
        fh.write(bytes([old[0] ^ 0xFF]))
    assert fingerprint(one) == before  # sampling alone would call it unchanged

    report, probed = probed_scan(lib)
    assert probed == ["one.mp4"]
    sent = entry(report, "one.mp4")
    assert sent.status == "send"
    assert set(sent.pools_pending) == {"hevc", "720p"}
    assert lib.store.get("one.mp4").content_hash is None  # unknown until it is sent again


def test_a_touched_file_never_sent_is_probed_again(lib: Library) -> None:
    """No hash was taken (hevcq never read it whole): a touched file is a new version."""
    converted(lib)
    skipped = lib.root / "old.mp4"
    skipped.write_bytes(b"hevc\nalready")  # the hevc pool skips it, the 720p pool sends it
    lib.scan()
    with lib.store.transaction():
        lib.store._db.execute("UPDATE files SET content_hash=NULL WHERE rel='old.mp4'")
    st = skipped.stat()
    os.utime(skipped, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert probed_scan(lib)[1] == ["old.mp4"]


def test_a_file_changed_while_it_is_sent_leaves_no_hash(lib: Library) -> None:
    """The hash is kept only for the version that was read: a write during the upload
    makes the file a new version, whose content nobody hashed."""
    [e] = [e for e in lib.scan().to_send if e.rel == "one.mp4"]
    one = lib.root / "one.mp4"

    class Racing(FakeStore):
        def upload(self, src, key, metadata, progress=None):
            info = super().upload(src, key, metadata, progress)
            st = one.stat()
            os.utime(one, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
            return info

    up = upload_one(Racing(), lib.root, e, LIB, lambda n: None)
    assert up.ok
    assert up.content_hash is None
    recorder(lib.store)(up)
    assert lib.store.get("one.mp4").content_hash is None


def test_a_hash_is_not_kept_for_a_version_the_catalog_no_longer_holds(lib: Library) -> None:
    """Recorded for (size, mtime, inode): a scan that saw a newer version wins."""
    lib.scan()
    rec = lib.store.get("one.mp4")
    lib.store.record_content_hash("one.mp4", (rec.size, rec.mtime_ns + 1, rec.inode), "f1:00")
    assert lib.store.get("one.mp4").content_hash is None
    lib.store.record_content_hash("one.mp4", (rec.size, rec.mtime_ns, rec.inode), "f1:00")
    assert lib.store.get("one.mp4").content_hash == "f1:00"


def test_a_catalog_from_an_older_release_gains_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE files (rel TEXT PRIMARY KEY, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, fingerprint TEXT NOT NULL,
            info TEXT, probe_error TEXT, scanned_at REAL NOT NULL, upload_key TEXT,
            upload_fingerprint TEXT, uploaded_at REAL);
        INSERT INTO files VALUES ('a.mp4', 10, 1, 2, 's1:ab', NULL, 'not a video', 0,
            NULL, NULL, NULL);
        """
    )
    db.commit()
    db.close()
    with Catalog(path) as store:
        rec = store.get("a.mp4")
        assert rec is not None
        assert (rec.fingerprint, rec.content_hash) == ("s1:ab", None)
        store.record_content_hash("a.mp4", (10, 1, 2), "f1:cd")
        assert store.get("a.mp4").content_hash == "f1:cd"
