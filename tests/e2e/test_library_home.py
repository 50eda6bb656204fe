"""A library's outputs on the embedded farm, as a user runs ``hevcq ingest``: every name
comes home under its own spelling, a re-run restores outputs that are missing from its
``--out``, and identical copies stay alone across ``--replace`` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hevcq.library.quarantine import DEFAULT_QUARANTINE
from hevcq.library.walk import OUTPUTS_MARKER
from hevcq.media.samples import make_clip
from tests.e2e.farmkit import pool_dir

pytestmark = pytest.mark.e2e

NFD = "cafe\u0301"  # what macOS writes for "café"
NFC = "caf\u00e9"


def _env(tmp: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(pool_dir(tmp)),
        "HOME": str(tmp / "home"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "COLUMNS": "200",
    }


def _hevcq(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hevcq", *args],
        env=_env(tmp),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _ingest(tmp: Path, lib: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _hevcq(tmp, "ingest", str(lib), "--out", str(out), "--no-dashboard", *extra)


def _outputs(out: Path) -> set[str]:
    return {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name != OUTPUTS_MARKER
    }


def test_every_name_the_file_system_allows_comes_home_under_its_own_name(
    tmp_path: Path,
) -> None:
    """A backslash is part of a POSIX name, not a folder; macOS writes NFD. Each source
    gets its own output, and a name beside a folder of the same spelling is not merged."""
    lib = tmp_path / "lib"
    names = ["a\\b.mp4", "a/b.mp4", f"{NFD}.mp4", f"{NFC}.mov"]
    for i, name in enumerate(names):  # distinct durations: distinct content
        make_clip(lib / name, width=320, height=240, seconds=0.5 + 0.1 * i)
    out = tmp_path / "out"
    run = _ingest(tmp_path, lib, out)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "orphaned" not in run.stdout
    # The NFC .mov shares its output name with the NFD .mp4 on a Mac disk: it keeps its
    # extension, and the NFD name keeps its own spelling.
    assert _outputs(out) == {
        "hevc/a\\b.mp4",
        "hevc/a/b.mp4",
        f"hevc/{NFD}.mp4",
        f"hevc/{NFC}.mov.mp4",
    }


def test_a_rerun_brings_back_a_deleted_out_and_plans_a_new_one_in_full(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    for i in range(2):
        make_clip(lib / f"clip{i}.mp4", width=320, height=240, seconds=0.5 + 0.1 * i)
    out = tmp_path / "out"
    run = _ingest(tmp_path, lib, out)
    assert run.returncode == 0, run.stdout[-3000:]
    assert _outputs(out) == {"hevc/clip0.mp4", "hevc/clip1.mp4"}
    again = _ingest(tmp_path, lib, out)
    assert "Nothing to encode: 2 files finished in earlier runs." in again.stdout
    shutil.rmtree(out)
    back = _ingest(tmp_path, lib, out)
    assert back.returncode == 0, back.stdout[-3000:]
    assert _outputs(out) == {"hevc/clip0.mp4", "hevc/clip1.mp4"}
    assert "uploading 2 files" in back.stdout  # encoded again: the embedded farm kept nothing
    assert f"Outputs are in {out}" in back.stdout
    (out / "hevc/clip1.mp4").unlink()
    for where, missing in ((out, ["clip1.mp4"]), (tmp_path / "new", ["clip0.mp4", "clip1.mp4"])):
        dry = _ingest(tmp_path, lib, where, "--dry-run")
        would = dry.stdout.split("not uploaded")[0]  # what the run would send
        assert [c for c in ("clip0.mp4", "clip1.mp4") if c in would] == missing, dry.stdout


def test_identical_copies_stay_duplicates_across_replace_runs(tmp_path: Path) -> None:
    """The first copy in path order is encoded and swapped in; the others are reported as
    its duplicates and left alone, on the first run and on every later one."""
    lib = tmp_path / "lib"
    make_clip(lib / "a.mp4", width=320, height=240, seconds=0.6)
    for copy in ("b.mp4", "c.mp4"):
        shutil.copy2(lib / "a.mp4", lib / copy)
    original = (lib / "b.mp4").read_bytes()
    for i in range(3):
        run = _ingest(tmp_path, lib, tmp_path / "out", "--replace")
        # Swapped in counts as finished, with no output under --out.
        assert ("Nothing to encode" in run.stdout) == (i > 0), run.stdout[-3000:]
        assert run.returncode == 0, run.stdout[-3000:]
        assert (lib / "b.mp4").read_bytes() == original
        assert (lib / "c.mp4").read_bytes() == original
        assert (lib / "a.mp4").read_bytes() != original
        assert run.stdout.count("duplicate of a.mp4") == 2, run.stdout[-3000:]


def test_a_swapped_in_file_touched_since_is_no_source_for_a_rendition(tmp_path: Path) -> None:
    """A sync client gave hevcq's HEVC copy a new mtime: the next run took it for a new
    source, sent it to the 720p pool to make a rendition of the copy, and refused to place
    that over the rendition made from the original, failing the run."""
    pool_dir(tmp_path, ("hevc", "720p"))  # the folder every run here uses, with 720p too
    lib = tmp_path / "lib"
    make_clip(lib / "clip.mp4", width=1920, height=1080, seconds=0.5)
    pools = ("--pools", "hevc,720p", "--replace")
    first = _ingest(tmp_path, lib, tmp_path / "out", *pools)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    placed = lib / "clip.mp4"
    made = placed.read_bytes()
    later = 1_900_000_000_000_000_000
    os.utime(placed, ns=(later, later))
    second = _ingest(tmp_path, lib, tmp_path / "out", *pools)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert "Nothing to encode" in second.stdout, second.stdout[-3000:]
    assert placed.read_bytes() == made


def test_outputs_inside_the_library_are_never_sources_of_a_run_into_another_out(
    tmp_path: Path,
) -> None:
    """`--out lib/out` is allowed, and the next run into lib/out skips it; a run into any
    other --out scanned lib/out's outputs as sources and made renditions of renditions."""
    lib = tmp_path / "lib"
    make_clip(lib / "clip.mp4", width=320, height=240, seconds=0.5)
    first = _ingest(tmp_path, lib, lib / "out")
    assert first.returncode == 0, first.stdout[-3000:]
    assert (lib / "out" / "hevc" / OUTPUTS_MARKER).is_file()
    elsewhere = _ingest(tmp_path, lib, tmp_path / "elsewhere", "--dry-run")
    assert elsewhere.returncode == 0, elsewhere.stdout[-3000:] + elsewhere.stderr[-3000:]
    said = " ".join(elsewhere.stdout.split())
    assert "out/hevc" not in said
    assert "clip.mp4" in said


def test_replace_after_a_run_into_out_swaps_the_originals_in(tmp_path: Path) -> None:
    """Try it into --out first, then --replace: the second run encoded again, then said
    "replaced earlier" (the first run's "done" was a copy in --out), left every original
    as it was and called the jobs done."""
    lib = tmp_path / "lib"
    clip = make_clip(lib / "trip" / "clip.mov", width=320, height=240, seconds=0.5)
    original = clip.read_bytes()
    first = _ingest(tmp_path, lib, tmp_path / "out", "--pools", "hevc")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert _outputs(tmp_path / "out") == {"hevc/trip/clip.mp4"}
    second = _ingest(tmp_path, lib, tmp_path / "out2", "--pools", "hevc", "--replace")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert "replaced earlier" not in second.stdout
    assert not clip.exists()
    swapped = lib / "trip" / "clip.mp4"
    assert swapped.is_file()
    assert swapped.read_bytes() != original
    quarantined = [p for p in (lib / DEFAULT_QUARANTINE).rglob("clip.mov") if p.is_file()]
    assert [p.read_bytes() == original for p in quarantined] == [True]


def test_a_rollback_after_a_sync_touched_the_swapped_in_files_puts_the_originals_back(
    tmp_path: Path,
) -> None:
    """It refused each one as changed, though only its mtime was (a Nextcloud or Syncthing
    client touching the library), exited 1 and left every original in the quarantine."""
    lib = tmp_path / "lib"
    clip = make_clip(lib / "a.mp4", width=320, height=240, seconds=0.5)
    original = clip.read_bytes()
    swap = _ingest(tmp_path, lib, tmp_path / "out", "--pools", "hevc", "--replace")
    assert swap.returncode == 0, swap.stdout[-3000:] + swap.stderr[-2000:]
    assert clip.read_bytes() != original
    later = 1_900_000_000_000_000_000
    os.utime(clip, ns=(later, later))
    back = _hevcq(tmp_path, "rollback", "--all", "--library", str(lib))
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"restored {clip}" in back.stdout
    assert clip.read_bytes() == original


def test_an_original_put_back_and_touched_by_a_sync_is_not_replaced_again(
    tmp_path: Path,
) -> None:
    """The rollback's mark held by size, mtime and inode: once a sync touched the original
    put back, the next --replace run swapped it out again, against the choice made."""
    lib = tmp_path / "lib"
    clip = make_clip(lib / "a.mp4", width=320, height=240, seconds=0.5)
    original = clip.read_bytes()
    replace = ("--pools", "hevc", "--replace")
    swap = _ingest(tmp_path, lib, tmp_path / "out", *replace)
    assert swap.returncode == 0, swap.stdout[-3000:] + swap.stderr[-2000:]
    back = _hevcq(tmp_path, "rollback", "--all", "--library", str(lib))
    assert back.returncode == 0, back.stdout + back.stderr
    assert clip.read_bytes() == original
    later = 1_900_000_000_000_000_000
    os.utime(clip, ns=(later, later))
    again = _ingest(tmp_path, lib, tmp_path / "out", *replace)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "rolled back on" in " ".join(again.stdout.split()), again.stdout[-3000:]
    assert clip.read_bytes() == original


def test_a_rollback_that_meets_an_edited_file_says_so_and_exits_1(tmp_path: Path) -> None:
    """It logged a JSON warning line, restored the rest and exited 0: a script could not
    tell, and a person had to read a log line to learn where the original still was."""
    lib = tmp_path / "lib"
    edited = make_clip(lib / "a.mp4", width=320, height=240, seconds=0.5)
    other = make_clip(lib / "b.mov", width=320, height=240, seconds=0.5)
    swap = _ingest(tmp_path, lib, tmp_path / "out", "--pools", "hevc", "--replace")
    assert swap.returncode == 0, swap.stdout[-3000:] + swap.stderr[-2000:]
    assert not other.exists()
    with edited.open("ab") as f:  # the user touches the swapped-in file
        f.write(b"edited")
    back = _hevcq(tmp_path, "rollback", "--all", "--library", str(lib))
    assert back.returncode == 1, back.stdout + back.stderr
    assert other.is_file()
    assert f"restored {other}" in back.stdout
    said = " ".join(back.stderr.split())  # one message, however the terminal wraps it
    assert said.startswith(f"not restored: {edited}: the file there changed since hevcq")
    assert said.count("not restored:") == 1
    assert "the original stays at " in said
    assert '"event"' not in said  # no log line
    assert edited.read_bytes().endswith(b"edited")


def test_a_pool_added_in_a_later_run_copies_the_identical_encode_already_home(
    tmp_path: Path,
) -> None:
    """``--pools hevc`` first, every pool later. For a 1920x1080 H.264 file the 1080p
    encode is the hevc one, argument for argument: the later run copies the hevc output
    already in --out instead of encoding the file a second time."""
    pool_dir(tmp_path, ("hevc", "720p", "1080p"))  # the farm's three pools (see _env)
    lib = tmp_path / "lib"
    make_clip(lib / "full-hd.mp4", width=1920, height=1080, seconds=0.5)
    out = tmp_path / "out"
    first = _ingest(tmp_path, lib, out, "--pools", "hevc")
    assert first.returncode == 0, first.stdout[-3000:]
    assert _outputs(out) == {"hevc/full-hd.mp4"}

    second = _ingest(tmp_path, lib, out)
    assert second.returncode == 0, second.stdout[-3000:]
    assert _outputs(out) == {
        "hevc/full-hd.mp4",
        "720p/full-hd.720p.mp4",
        "1080p/full-hd.1080p.mp4",
    }
    copied = (out / "1080p" / "full-hd.1080p.mp4").read_bytes()
    assert copied == (out / "hevc" / "full-hd.mp4").read_bytes()
    text = " ".join(second.stdout.split())
    assert "earlier: the identical encode of pool hevc in an earlier run, copied" in text


def test_a_file_renamed_between_runs_takes_its_outputs_along_without_an_encode(
    tmp_path: Path,
) -> None:
    """People reorganise libraries. The second run finds the content under its new path:
    its outputs are renamed to match, nothing is uploaded or encoded, and nothing is left
    under the old name."""
    lib = tmp_path / "lib"
    make_clip(lib / "clip.mp4", width=320, height=240, seconds=0.5)
    make_clip(lib / "other.mp4", width=320, height=240, seconds=0.6)
    shot = 1_500_000_000_000_000_000  # the day the clip was shot (2017)
    os.utime(lib / "clip.mp4", ns=(shot, shot))
    out = tmp_path / "out"
    first = _ingest(tmp_path, lib, out)
    assert first.returncode == 0, first.stdout[-3000:]
    before = _outputs(out)
    assert before == {"hevc/clip.mp4", "hevc/other.mp4"}
    # Dated like its original (decision 0030), not on the day it was converted.
    assert (out / "hevc" / "clip.mp4").stat().st_mtime_ns == shot
    made = (out / "hevc" / "clip.mp4").read_bytes()

    (lib / "2024").mkdir()
    (lib / "clip.mp4").rename(lib / "2024" / "holiday.mp4")
    second = _ingest(tmp_path, lib, out)
    assert second.returncode == 0, second.stdout[-3000:]
    assert _outputs(out) == {"hevc/2024/holiday.mp4", "hevc/other.mp4"}
    assert (out / "hevc" / "2024" / "holiday.mp4").read_bytes() == made
    assert (out / "hevc" / "2024" / "holiday.mp4").stat().st_mtime_ns == shot
    text = " ".join(second.stdout.split())
    assert "done in an earlier run as clip.mp4; output moved to this name" in text
    assert "0 to upload" in text  # nothing went to the farm


def test_files_touched_or_copied_back_since_keep_their_outputs_without_an_encode(
    tmp_path: Path,
) -> None:
    """A sync that touched a file, a restore that wrote one anew: the content is what was
    converted, so the second run probes, sends and encodes nothing (an edited file is
    encoded again: ``tests/unit/test_touched.py``)."""
    lib = tmp_path / "lib"
    for name, seconds in (("touched.mp4", 0.5), ("restored.mp4", 0.6)):
        make_clip(lib / name, width=320, height=240, seconds=seconds)
    out = tmp_path / "out"
    first = _ingest(tmp_path, lib, out)
    assert first.returncode == 0, first.stdout[-3000:]
    made = {name: (out / name).read_bytes() for name in _outputs(out)}
    assert set(made) == {"hevc/touched.mp4", "hevc/restored.mp4"}

    later = 1_900_000_000_000_000_000
    os.utime(lib / "touched.mp4", ns=(later, later))
    shutil.copyfile(lib / "restored.mp4", tmp_path / "restored.mp4")
    (tmp_path / "restored.mp4").replace(lib / "restored.mp4")  # another inode, a new mtime
    second = _ingest(tmp_path, lib, out)
    assert second.returncode == 0, second.stdout[-3000:]
    text = " ".join(second.stdout.split())
    assert "Scanned 2 files (2 known, 2 of them touched since but unchanged, 0 probed)" in text, (
        text[-3000:]
    )
    assert "0 to upload" in text
    assert {name: (out / name).read_bytes() for name in _outputs(out)} == made


_HEVC_ONLY = ("--no-dashboard", "--pools", "hevc")


def test_a_file_renamed_while_its_job_runs_gets_its_output_and_no_second_encode(
    tmp_path: Path,
) -> None:
    """Renamed after its upload, while the farm encodes it (a phone sync sorting a folder
    during a long run): the output comes home under the old name, and the next run moves
    it to the new one without an encode. Before, the output was dropped as orphaned, the
    run failed, and the next run encoded the file again."""
    lib = tmp_path / "lib"
    make_clip(lib / "clip.mp4", width=1280, height=720, seconds=6)
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(out), *_HEVC_ONLY],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    lines = []
    for line in run.stdout:
        lines.append(line)
        if "clip.mp4: sent" in line:  # uploaded; the encode takes seconds more
            (lib / "2024").mkdir()
            (lib / "clip.mp4").rename(lib / "2024" / "holiday.mp4")
    assert run.wait(timeout=240) == 0, "".join(lines)[-3000:]
    text = " ".join("".join(lines).split())
    assert "renamed to 2024/holiday.mp4 during the run" in text, text[-3000:]
    made = (out / "hevc" / "clip.mp4").read_bytes()

    second = _ingest(tmp_path, lib, out, "--pools", "hevc")
    assert second.returncode == 0, second.stdout[-3000:]
    text = " ".join(second.stdout.split())
    assert "0 to upload" in text
    assert "done in an earlier run as clip.mp4; output moved to this name" in text
    assert _outputs(out) == {"hevc/2024/holiday.mp4"}
    assert (out / "hevc" / "2024" / "holiday.mp4").read_bytes() == made
