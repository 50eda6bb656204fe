"""A pool added in a later run whose encode is the primary pool's takes a copy of the
primary's output an earlier run brought home (``hevcq.library.share``): no second encode,
and no copy where the encodes differ, the output is not home, or the copy cannot be made
safely."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from hevcq.cli.report import plan_tables
from hevcq.library import share
from hevcq.library.quarantine import OutputExists
from hevcq.pools import Applies, Encode, Pool
from tests.unit.test_follow import HEVC, Library, entry, library
from tests.unit.test_ingest import P720

P1080 = Pool(
    name="1080p",
    output_suffix=".1080p",
    applies=Applies(source_codecs=("h264", "hevc"), target_height=1080),
)
ALL = (HEVC, P720, P1080)
FIRST = (HEVC, P720)  # the first runs: 1080p is added later


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    with library(tmp_path) as made:
        for name in ("one.mp4", "two.mp4"):
            os.utime(made.root / name, (1_500_000_000, 1_500_000_000))  # shot in 2017
        yield made


def outcomes(lib: Library, rel: str) -> dict[str, str]:
    return {p: r.outcome for p, r in lib.store.load_decisions()[rel].items()}


def test_a_pool_added_later_copies_the_primarys_identical_encode_instead_of_encoding(
    lib: Library,
) -> None:
    lib.run(pools=FIRST)

    # A dry run says what a run would do, and copies nothing.
    plan = entry(lib.scan(move=False, pools=ALL), "one.mp4")
    assert (plan.status, dict(plan.shared)) == ("finished", {"1080p": "hevc"})
    assert "1080p/one.1080p.mp4" not in lib.outputs()

    report = lib.scan(pools=ALL)
    assert report.to_send == ()
    assert report.totals["1080p"].files == 0
    assert dict(entry(report, "one.mp4").shared) == {"1080p": "hevc"}
    got = lib.outputs()
    assert got["1080p/one.1080p.mp4"] == got["hevc/one.mp4"] == b"hevc of one.mp4"
    assert got["1080p/two.1080p.mp4"] == b"hevc of two.mp4"
    assert (lib.out / "1080p" / "one.1080p.mp4").stat().st_mtime == 1_500_000_000
    assert outcomes(lib, "one.mp4") == {"hevc": "done", "720p": "done", "1080p": "done"}
    assert lib.store.load_decisions()["one.mp4"]["1080p"].reason == share.copied_reason("hevc")

    # The next run finds it done, and copies nothing again.
    again = entry(lib.scan(pools=ALL), "one.mp4")
    assert (again.status, dict(again.shared)) == ("finished", {})


def test_a_pool_added_with_the_primary_pending_gets_its_copy_from_the_farm(
    lib: Library,
) -> None:
    """Nothing to copy locally when the primary has not encoded the file yet: the farm
    encodes once and copies in the same run (``hevcq.worker.shared``)."""
    report = lib.scan(pools=ALL)
    assert {e.rel: e.pools_pending for e in report.to_send} == {
        "one.mp4": ("hevc", "720p", "1080p"),
        "two.mp4": ("hevc", "720p", "1080p"),
    }
    assert all(not e.shared for e in report.entries)


def test_no_copy_where_the_encodes_differ(lib: Library) -> None:
    lib.run(pools=FIRST)
    other = P1080.model_copy(update={"encode": Encode(crf=30)})
    report = lib.scan(pools=(HEVC, P720, other))
    assert {e.rel: e.pools_pending for e in report.to_send} == {
        "one.mp4": ("1080p",),
        "two.mp4": ("1080p",),
    }
    assert not any(k.startswith("1080p/") for k in lib.outputs())


def test_no_copy_of_an_output_that_is_not_home_or_not_a_file(lib: Library) -> None:
    lib.run(pools=FIRST)
    (lib.out / "hevc" / "one.mp4").unlink()  # deleted: hevc is encoded again
    (lib.out / "hevc" / "two.mp4").unlink()
    (lib.out / "hevc" / "two.mp4").symlink_to(lib.root / "two.mp4")  # a link: not an output
    report = lib.scan(pools=ALL)
    assert {e.rel: e.pools_pending for e in report.to_send} == {
        "one.mp4": ("hevc", "1080p"),
        "two.mp4": ("1080p",),
    }
    assert not any(k.startswith("1080p/") for k in lib.outputs())


def test_no_copy_without_the_primary_in_the_run_or_for_a_replacing_pool(lib: Library) -> None:
    lib.run(pools=FIRST)
    without = lib.scan(pools=(P720, P1080), move=False)
    assert [e.pools_pending for e in without.to_send] == [("1080p",), ("1080p",)]
    swapping = lib.scan(pools=ALL, move=False, replace_pools=frozenset({"hevc"}))
    assert all(not e.shared for e in swapping.entries)


def test_a_duplicate_takes_no_copy(lib: Library) -> None:
    lib.run(pools=FIRST)
    (lib.root / "z copy.mp4").write_bytes((lib.root / "one.mp4").read_bytes())
    report = lib.scan(pools=ALL)
    dup = entry(report, "z copy.mp4")
    assert (dup.status, dict(dup.shared)) == ("duplicate", {})
    assert dict(entry(report, "one.mp4").shared) == {"1080p": "hevc"}
    assert "1080p/z copy.1080p.mp4" not in lib.outputs()


def test_nothing_is_copied_over_a_file_already_there(lib: Library) -> None:
    lib.run(pools=FIRST)
    mine = lib.out / "1080p" / "one.1080p.mp4"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"a person's own file")
    report = lib.scan(pools=ALL)
    assert [e.rel for e in report.to_send] == ["one.mp4"]
    assert mine.read_bytes() == b"a person's own file"


@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, "No space left on device"), OutputExists("a file came meanwhile")],
    ids=["disk-full", "taken-meanwhile"],
)
def test_a_copy_that_fails_puts_the_outcome_back_and_leaves_no_trace(
    lib: Library, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    lib.run(pools=FIRST)
    made: list[Path] = []

    def fail(src: Path, dst: Path) -> Path:
        dst.parent.mkdir(parents=True, exist_ok=True)  # as place_output does first
        made.append(dst.parent)
        raise error

    monkeypatch.setattr(share, "place_output", fail)
    report = lib.scan(pools=ALL)
    assert [e.pools_pending for e in report.to_send] == [("1080p",), ("1080p",)]
    assert outcomes(lib, "one.mp4")["1080p"] == "pending"
    assert made
    assert not (lib.out / "1080p").exists()  # the folder the copy made is gone again


def test_a_symlinked_pool_folder_in_out_gets_no_copy(lib: Library, tmp_path: Path) -> None:
    """Someone planted ``out/1080p`` as a link to a folder elsewhere: nothing is copied
    there, and the file is encoded instead (its fetch refuses that folder in turn)."""
    lib.run(pools=FIRST)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (lib.out / "1080p").symlink_to(elsewhere)
    report = lib.scan(pools=ALL)
    assert [e.pools_pending for e in report.to_send] == [("1080p",), ("1080p",)]
    assert list(elsewhere.iterdir()) == []


def test_a_dry_run_plans_and_prices_only_the_pools_a_run_encodes(lib: Library) -> None:
    """After ``--pools hevc``, the plan of a run with 720p too sends each file to 720p
    alone: hevc's work is neither listed nor priced again."""
    lib.run(pools=(HEVC,))
    report = lib.scan(pools=ALL, move=False)
    assert {p: t.files for p, t in report.totals.items()} == {"hevc": 0, "720p": 2, "1080p": 0}
    console = Console(record=True, width=300)
    for table in plan_tables(report):
        console.print(table)
    rows = [" ".join(line.split()) for line in console.export_text().splitlines()]
    assert (
        "│ one.mp4 │ 10 B │ 0m10s │ 720p │ 1080p: copies the identical encode of hevc;"
        " hevc: done in an earlier run │"
    ) in rows
