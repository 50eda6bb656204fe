"""A library file renamed or moved since its outputs came home takes them along
(``hevcq.library.follow``): no second encode, no output left under the old name, and
nothing moved that is not that file's output or over anything already there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hevcq.library import follow
from hevcq.library.catalog import Catalog
from hevcq.library.scan import ScanOptions, ScanReport, scan
from hevcq.pools import Applies, Encode, Ladder, Pool
from tests.unit.test_ingest import P720, fake_probe

HEVC = Pool(name="hevc", applies=Applies(source_codecs=("h264",)))
HLS = Pool(name="hls", applies=Applies(source_codecs=("h264",)), ladder=Ladder())
POOLS = (HEVC, P720)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(tmp_path / "state.sqlite3") as s:
        yield s


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name, body in (("one.mp4", b"h264\nfirst"), ("two.mp4", b"h264\nsecond")):
        (lib / name).write_bytes(body)
    return lib


def run(
    lib: Path, store: Catalog, out: Path, *, move: bool = True, pools=POOLS, **opts
) -> ScanReport:
    return scan(lib, pools, store, ScanOptions(**opts), probe_fn=fake_probe, out_dir=out, move=move)


def home(report: ScanReport, store: Catalog, out: Path) -> None:
    """What a run's fetch does for every file it sends: place the output, record "done"."""
    for e in report.to_send:
        stem = e.rel.rsplit(".", 1)[0]
        for pool in e.pools_to_encode:
            if pool == "hls":
                path = out / pool / f"{stem}.hls" / "master.m3u8"
            else:
                path = out / pool / (f"{stem}.720p.mp4" if pool == "720p" else e.rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"{pool} of {e.rel}".encode())
            store.record_outcome(e.rel, pool, "done")


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_a_renamed_file_takes_its_outputs_along_and_is_not_sent_again(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (lib / "2024").mkdir()
    (lib / "one.mp4").rename(lib / "2024" / "first.mp4")

    # A dry run says what a run would do, and moves nothing.
    plan = run(lib, store, out, move=False)
    [entry] = [e for e in plan.entries if e.rel == "2024/first.mp4"]
    assert (entry.status, dict(entry.followed)) == (
        "finished",
        {"hevc": "one.mp4", "720p": "one.mp4"},
    )
    assert "hevc/one.mp4" in files(out)

    report = run(lib, store, out)
    assert report.to_send == ()
    [entry] = [e for e in report.entries if e.rel == "2024/first.mp4"]
    assert entry.status == "finished"
    assert dict(entry.followed) == {"hevc": "one.mp4", "720p": "one.mp4"}
    assert files(out) == {
        "hevc/2024/first.mp4": b"hevc of one.mp4",
        "720p/2024/first.720p.mp4": b"720p of one.mp4",
        "hevc/two.mp4": b"hevc of two.mp4",
        "720p/two.720p.mp4": b"720p of two.mp4",
    }
    # The catalog moved with it: the next run finds the file done, under its new name.
    again = run(lib, store, out)
    [entry] = [e for e in again.entries if e.rel == "2024/first.mp4"]
    assert (entry.status, dict(entry.followed)) == ("finished", {})
    assert dict(entry.outcomes) == {"hevc": "done", "720p": "done"}


def test_a_moved_folder_goes_back_out_of_the_old_folder_leaving_none_empty(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    (lib / "old").mkdir()
    (lib / "one.mp4").rename(lib / "old" / "one.mp4")
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (lib / "old").rename(lib / "new")
    run(lib, store, out)
    assert sorted(files(out)) == [
        "720p/new/one.720p.mp4",
        "720p/two.720p.mp4",
        "hevc/new/one.mp4",
        "hevc/two.mp4",
    ]
    assert not (out / "hevc" / "old").exists()


def test_a_ladder_moves_as_its_folder(lib: Path, store: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "out"
    home(run(lib, store, out, pools=(HLS,)), store, out)
    (lib / "one.mp4").rename(lib / "uno.mp4")
    report = run(lib, store, out, pools=(HLS,))
    assert report.to_send == ()
    assert sorted(files(out)) == ["hls/two.hls/master.m3u8", "hls/uno.hls/master.m3u8"]


def test_a_copy_whose_original_is_still_there_moves_nothing(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (lib / "uno.mp4").write_bytes((lib / "one.mp4").read_bytes())
    report = run(lib, store, out)
    [copy] = [e for e in report.entries if e.rel == "uno.mp4"]
    assert (copy.status, copy.duplicate_of, dict(copy.followed)) == ("duplicate", "one.mp4", {})
    assert "hevc/one.mp4" in files(out)


def test_a_file_left_out_of_this_run_keeps_its_outputs(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    """``--include`` leaves one.mp4 out of the walk; it is still on the disk, so a copy
    of it found under another name is a new file, not a rename."""
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (lib / "sub").mkdir()
    (lib / "sub" / "copy.mp4").write_bytes((lib / "one.mp4").read_bytes())
    report = run(lib, store, out, include=("sub/*",))
    assert [e.rel for e in report.to_send] == ["sub/copy.mp4"]
    assert "hevc/one.mp4" in files(out)


def test_nothing_is_moved_over_an_output_already_there(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (lib / "one.mp4").unlink()
    (lib / "two.mp4").rename(lib / "one.mp4")  # two's content now under one's name
    report = run(lib, store, out)
    # one.mp4's outputs are in the way: its new content is encoded, nothing is replaced.
    assert [e.rel for e in report.to_send] == ["one.mp4"]
    assert files(out)["hevc/one.mp4"] == b"hevc of one.mp4"
    assert files(out)["hevc/two.mp4"] == b"hevc of two.mp4"


def test_an_output_that_is_not_there_or_was_made_otherwise_is_encoded_again(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (out / "hevc" / "one.mp4").unlink()  # the user deleted it
    (lib / "one.mp4").rename(lib / "uno.mp4")
    changed = (
        Pool(name="hevc", encode=Encode(crf=20), applies=HEVC.applies),
        P720,
    )  # hevc's settings changed
    (lib / "two.mp4").rename(lib / "dos.mp4")
    report = run(lib, store, out, pools=changed)
    by_rel = {e.rel: e for e in report.entries}
    assert dict(by_rel["uno.mp4"].followed) == {"720p": "one.mp4"}
    assert dict(by_rel["dos.mp4"].followed) == {"720p": "two.mp4"}
    assert by_rel["uno.mp4"].pools_pending == ("hevc",)
    assert by_rel["dos.mp4"].pools_pending == ("hevc",)
    assert "hevc/two.mp4" in files(out)  # made under other settings: left as it was


def test_a_replacing_pool_has_no_output_to_follow(
    lib: Path, store: Catalog, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (lib / "one.mp4").rename(lib / "uno.mp4")
    report = run(lib, store, out, replace_pools=frozenset({"hevc"}))
    [uno] = [e for e in report.entries if e.rel == "uno.mp4"]
    assert dict(uno.followed) == {"720p": "one.mp4"}
    assert uno.pools_pending == ("hevc",)


def test_a_rename_that_fails_puts_the_outcome_back(
    lib: Path, store: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    home(run(lib, store, out), store, out)
    (lib / "one.mp4").rename(lib / "uno.mp4")

    def refuse(src: Path, dst: Path) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(follow, "rename_no_clobber", refuse)
    report = run(lib, store, out)
    assert [e.rel for e in report.to_send] == ["uno.mp4"]
    assert "hevc/one.mp4" in files(out)
    decisions = store.load_decisions()
    assert {p: r.outcome for p, r in decisions["one.mp4"].items()} == {
        "hevc": "done",
        "720p": "done",
    }
    assert {p: r.outcome for p, r in decisions["uno.mp4"].items()} == {
        "hevc": "pending",
        "720p": "pending",
    }
