"""A library file renamed or moved since its outputs came home takes them along
(``hevcq.library.follow``): no second encode, no output left under the old name, and
nothing moved that is not that file's output or over anything already there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hevcq.library import follow
from hevcq.library.catalog import Catalog
from hevcq.library.quarantine import OutputExists
from hevcq.library.scan import ScanOptions, ScanReport, scan
from hevcq.pools import Applies, Encode, Ladder, Pool
from tests.unit.test_ingest import P720, fake_probe

HEVC = Pool(name="hevc", applies=Applies(source_codecs=("h264",)))
HLS = Pool(name="hls", applies=Applies(source_codecs=("h264",)), ladder=Ladder())
POOLS = (HEVC, P720)


@dataclass
class Library:
    """A library of two files, its catalog, and the ``--out`` its runs bring outputs to."""

    root: Path
    out: Path
    store: Catalog

    def scan(self, *, move: bool = True, pools=POOLS, **opts) -> ScanReport:
        """The scan of a run (``move``) or of a dry run."""
        return scan(
            self.root,
            pools,
            self.store,
            ScanOptions(**opts),
            probe_fn=fake_probe,
            out_dir=self.out,
            move=move,
        )

    def run(self, pools=POOLS) -> None:
        """A run that encodes what its scan sends: each output placed, "done" recorded."""
        for e in self.scan(pools=pools).to_send:
            stem = e.rel.rsplit(".", 1)[0]
            for pool in e.pools_to_encode:
                if pool == "hls":
                    path = self.out / pool / f"{stem}.hls" / "master.m3u8"
                else:
                    name = f"{stem}.{pool}.mp4" if pool in ("720p", "1080p") else e.rel
                    path = self.out / pool / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"{pool} of {e.rel}".encode())
                self.store.record_outcome(e.rel, pool, "done")

    def outputs(self) -> dict[str, bytes]:
        return {
            p.relative_to(self.out).as_posix(): p.read_bytes()
            for p in self.out.rglob("*")
            if p.is_file()
        }

    def move(self, old: str, new: str) -> None:
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        (self.root / old).rename(self.root / new)


@contextmanager
def library(tmp_path: Path) -> Iterator[Library]:
    """Two files, one.mp4 and two.mp4, their catalog, and an --out not made yet."""
    root = tmp_path / "lib"
    root.mkdir()
    for name, body in (("one.mp4", b"h264\nfirst"), ("two.mp4", b"h264\nsecond")):
        (root / name).write_bytes(body)
    with Catalog(tmp_path / "state.sqlite3") as store:
        yield Library(root, tmp_path / "out", store)


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    with library(tmp_path) as made:
        yield made


def entry(report: ScanReport, rel: str):
    [found] = [e for e in report.entries if e.rel == rel]
    return found


def test_a_renamed_file_takes_its_outputs_along_and_is_not_sent_again(lib: Library) -> None:
    lib.run()
    lib.move("one.mp4", "2024/first.mp4")

    # A dry run says what a run would do, and moves nothing.
    plan = entry(lib.scan(move=False), "2024/first.mp4")
    assert (plan.status, dict(plan.followed)) == (
        "finished",
        {"hevc": "one.mp4", "720p": "one.mp4"},
    )
    assert "hevc/one.mp4" in lib.outputs()

    report = lib.scan()
    assert report.to_send == ()
    moved = entry(report, "2024/first.mp4")
    assert (moved.status, dict(moved.followed)) == (
        "finished",
        {"hevc": "one.mp4", "720p": "one.mp4"},
    )
    assert lib.outputs() == {
        "hevc/2024/first.mp4": b"hevc of one.mp4",
        "720p/2024/first.720p.mp4": b"720p of one.mp4",
        "hevc/two.mp4": b"hevc of two.mp4",
        "720p/two.720p.mp4": b"720p of two.mp4",
    }
    # The catalog moved with it: the next run finds the file done, under its new name.
    again = entry(lib.scan(), "2024/first.mp4")
    assert (again.status, dict(again.followed)) == ("finished", {})
    assert dict(again.outcomes) == {"hevc": "done", "720p": "done"}


def test_a_moved_folder_goes_along_leaving_no_empty_folder(lib: Library) -> None:
    lib.move("one.mp4", "old/one.mp4")
    lib.run()
    lib.move("old", "new")
    lib.scan()
    assert sorted(lib.outputs()) == [
        "720p/new/one.720p.mp4",
        "720p/two.720p.mp4",
        "hevc/new/one.mp4",
        "hevc/two.mp4",
    ]
    assert not (lib.out / "hevc" / "old").exists()


def test_a_ladder_moves_as_its_folder(lib: Library) -> None:
    lib.run(pools=(HLS,))
    lib.move("one.mp4", "uno.mp4")
    assert lib.scan(pools=(HLS,)).to_send == ()
    assert sorted(lib.outputs()) == ["hls/two.hls/master.m3u8", "hls/uno.hls/master.m3u8"]


def test_a_copy_whose_original_is_still_there_moves_nothing(lib: Library) -> None:
    lib.run()
    (lib.root / "uno.mp4").write_bytes((lib.root / "one.mp4").read_bytes())
    copy = entry(lib.scan(), "uno.mp4")
    assert (copy.status, copy.duplicate_of, dict(copy.followed)) == ("duplicate", "one.mp4", {})
    assert "hevc/one.mp4" in lib.outputs()


def test_a_file_left_out_of_this_run_keeps_its_outputs(lib: Library) -> None:
    """``--include`` leaves one.mp4 out of the walk; it is still on the disk, so a copy
    of it found under another name is a new file, not a rename."""
    lib.run()
    (lib.root / "sub").mkdir()
    (lib.root / "sub" / "copy.mp4").write_bytes((lib.root / "one.mp4").read_bytes())
    report = lib.scan(include=("sub/*",))
    assert [e.rel for e in report.to_send] == ["sub/copy.mp4"]
    assert "hevc/one.mp4" in lib.outputs()


def test_nothing_is_moved_over_an_output_already_there(lib: Library) -> None:
    lib.run()
    (lib.root / "one.mp4").unlink()
    lib.move("two.mp4", "one.mp4")  # two's content now under one's name
    report = lib.scan()
    # one.mp4's outputs are in the way: its new content is encoded, nothing is replaced.
    assert [e.rel for e in report.to_send] == ["one.mp4"]
    assert lib.outputs()["hevc/one.mp4"] == b"hevc of one.mp4"
    assert lib.outputs()["hevc/two.mp4"] == b"hevc of two.mp4"


def test_an_output_that_is_not_there_or_was_made_otherwise_is_encoded_again(
    lib: Library,
) -> None:
    lib.run()
    (lib.out / "hevc" / "one.mp4").unlink()  # the user deleted it
    lib.move("one.mp4", "uno.mp4")
    lib.move("two.mp4", "dos.mp4")
    changed = (Pool(name="hevc", encode=Encode(crf=20), applies=HEVC.applies), P720)
    report = lib.scan(pools=changed)  # hevc's settings changed since two.mp4's encode
    uno, dos = entry(report, "uno.mp4"), entry(report, "dos.mp4")
    assert (dict(uno.followed), uno.pools_pending) == ({"720p": "one.mp4"}, ("hevc",))
    assert (dict(dos.followed), dos.pools_pending) == ({"720p": "two.mp4"}, ("hevc",))
    assert "hevc/two.mp4" in lib.outputs()  # made under other settings: left as it was


def test_a_replacing_pool_has_no_output_to_follow(lib: Library) -> None:
    lib.run()
    lib.move("one.mp4", "uno.mp4")
    uno = entry(lib.scan(replace_pools=frozenset({"hevc"})), "uno.mp4")
    assert (dict(uno.followed), uno.pools_pending) == ({"720p": "one.mp4"}, ("hevc",))


@pytest.mark.parametrize(
    "error",
    [OSError(18, "Invalid cross-device link"), OutputExists("a file came there meanwhile")],
    ids=["cross-device", "taken-meanwhile"],
)
def test_a_rename_that_fails_puts_the_outcome_back(
    lib: Library, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    lib.run()
    lib.move("one.mp4", "uno.mp4")

    def refuse(src: Path, dst: Path) -> None:
        raise error

    monkeypatch.setattr(follow, "rename_no_clobber", refuse)
    assert [e.rel for e in lib.scan().to_send] == ["uno.mp4"]
    assert "hevc/one.mp4" in lib.outputs()
    decisions = lib.store.load_decisions()
    assert {p: r.outcome for p, r in decisions["one.mp4"].items()} == {
        "hevc": "done",
        "720p": "done",
    }
    assert {p: r.outcome for p, r in decisions["uno.mp4"].items()} == {
        "hevc": "pending",
        "720p": "pending",
    }


def test_a_symlinked_folder_in_out_leads_no_output_out_of_it(lib: Library, tmp_path: Path) -> None:
    """Someone planted ``out/hevc/2024`` as a link to a folder elsewhere: the output is not
    moved there (nor one moved from there), and the file is encoded into --out instead."""
    lib.run()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (lib.out / "hevc" / "2024").symlink_to(elsewhere)
    lib.move("one.mp4", "2024/first.mp4")
    moved = entry(lib.scan(), "2024/first.mp4")
    assert dict(moved.followed) == {"720p": "one.mp4"}
    assert moved.pools_pending == ("hevc",)
    assert list(elsewhere.iterdir()) == []
    assert lib.outputs()["hevc/one.mp4"] == b"hevc of one.mp4"


def test_a_copy_added_since_is_a_duplicate_of_the_file_whose_outputs_are_home(
    lib: Library,
) -> None:
    """The embedded farm keeps no record of uploads: the path whose outputs an earlier run
    made keeps its content, and a copy that sorts before it is not encoded again."""
    lib.run()
    (lib.root / "a copy.mp4").write_bytes((lib.root / "one.mp4").read_bytes())
    report = lib.scan()
    assert report.to_send == ()
    copy = entry(report, "a copy.mp4")
    assert (copy.status, copy.duplicate_of) == ("duplicate", "one.mp4")
    assert entry(report, "one.mp4").status == "finished"


def test_on_a_configured_farm_a_file_renamed_since_its_upload_says_where_its_outputs_are(
    lib: Library,
) -> None:
    """The farm received it under its old path and makes its outputs under that name: the
    row says so, rather than calling it a duplicate of a file that is no longer there."""
    for e in lib.scan().to_send:
        lib.store.record_upload(e.rel, f"TODO/{e.rel}", e.fingerprint)
    lib.move("one.mp4", "2024/first.mp4")
    report = lib.scan()
    moved = entry(report, "2024/first.mp4")
    assert (moved.status, moved.duplicate_of, moved.duplicate_gone) == (
        "duplicate",
        "one.mp4",
        True,
    )
    assert moved.why_duplicate == (
        "the farm received this content as one.mp4, gone from the library since (renamed?):"
        " its outputs keep that name"
    )
    # A copy beside a path still there is a duplicate as before.
    (lib.root / "copy.mp4").write_bytes((lib.root / "two.mp4").read_bytes())
    copy = entry(lib.scan(), "copy.mp4")
    assert (copy.why_duplicate, copy.duplicate_gone) == ("duplicate of two.mp4", False)
