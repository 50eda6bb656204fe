"""The library round trip with real ffmpeg and workers: dry run, ingest --replace, rollback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hevcq.library.calibrate import save_speeds, speeds_path
from hevcq.library.catalog import Catalog, library_id
from hevcq.library.quarantine import DEFAULT_QUARANTINE, list_quarantine
from hevcq.library.walk import OUTPUTS_MARKER
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from hevcq.pools import load_farm
from tests.conftest import fast_pools
from tests.e2e.farmkit import run_hevcq as hevcq
from tests.e2e.farmkit import user_env

pytestmark = pytest.mark.e2e

OLD_MTIME_NS = 1_500_000_000_000_000_000


@pytest.fixture(scope="module")
def trip(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("trip")
    lib = tmp / "lib"
    clip = make_clip(lib / "cam/clip.MOV", width=1280, height=720, seconds=1.0, container="mov")
    os.utime(clip, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    (lib / "cam/clip.MOV.txt").write_text("a sidecar, not a video")
    env = user_env(tmp, fast_pools(tmp))
    original = probe(clip)
    workers = Path(env["HEVCQ_WORKERS_DIR"])
    save_speeds(speeds_path(tmp / "state" / "hevcq"), {"hevc": 0.42}, load_farm(workers))
    (tmp / "state" / "hevcq").chmod(0o755)  # made loose by an older release: tightened
    dry = hevcq(env, tmp, "ingest", str(lib), "--dry-run")
    excluded = hevcq(env, tmp, "estimate", str(lib), "--exclude", "cam/**", "--max-bytes", "1G")
    run = hevcq(
        env, tmp, "ingest", str(lib), "--out", str(tmp / "out"), "--replace", "--timeout", "180"
    )
    return {
        "tmp": tmp,
        "lib": lib,
        "env": env,
        "dry": dry,
        "run": run,
        "original": original,
        "excluded": excluded,
    }


def test_dry_run_shows_the_plan_and_the_estimate_without_a_farm(trip) -> None:
    dry = trip["dry"]
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "embedded local farm" not in dry.stdout
    upload = next(ln for ln in dry.stdout.splitlines() if "cam/clip.MOV " in ln)
    assert "720p, hevc" in upload
    assert "1080p: " in upload  # smaller than 1080p: skipped, with the reason
    assert "estimate (Fargate prices" in dry.stdout
    assert "Speeds: calibrated on this machine" in dry.stdout
    estimate = dry.stdout[dry.stdout.index("estimate (Fargate prices") :].splitlines()
    hevc = next(ln for ln in estimate if ln.startswith("│ hevc "))
    assert "0.42 │" in hevc  # the calibrated speed, not marked as a default
    p720 = next(ln for ln in estimate if ln.startswith("│ 720p "))
    assert "(default)" in p720


def test_globs_reach_the_scan_from_the_command_line(trip) -> None:
    """The library's one video is under cam/: excluded, nothing is left, and `estimate`
    says so as `ingest --dry-run` does (a usage mistake, exit 2), naming the glob."""
    excluded = trip["excluded"]
    assert excluded.returncode == 2, excluded.stdout + excluded.stderr[-2000:]
    assert "cam/clip.MOV" not in excluded.stdout
    [line] = excluded.stderr.strip().splitlines()
    assert line.endswith("holds videos, but none that is left after --exclude 'cam/**'"), line


def test_ingest_replace_swaps_the_hevc_output_in_and_keeps_the_original(trip) -> None:
    run, lib = trip["run"], trip["lib"]
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    new = lib / "cam/clip.mp4"
    assert not (lib / "cam/clip.MOV").exists()
    info = probe(new)
    assert info.main_video is not None
    assert info.main_video.codec == "hevc"
    assert abs((info.duration_s or 0) - (trip["original"].duration_s or 0)) <= 0.5
    assert new.stat().st_mtime_ns == OLD_MTIME_NS
    [entry] = list_quarantine(lib / DEFAULT_QUARANTINE)
    assert entry.quarantined.name == "clip.MOV"
    assert entry.state == "complete"
    # The last lines said "No outputs: ... was not created", with the original replaced.
    said = " ".join(run.stdout.split())  # a long line wraps at the terminal's width
    assert f"1 original replaced in {lib}; it stays in its quarantine" in said
    assert f"`hevcq rollback --all --library {lib}` puts it back." in said
    assert "No outputs:" not in said


def test_renditions_go_to_out_and_outcomes_are_in_the_state_store(trip) -> None:
    out = trip["tmp"] / "out"
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    # The pool's folder is marked as hevcq's outputs: no later scan takes them for sources.
    assert "720p/" + OUTPUTS_MARKER in produced
    produced.remove("720p/" + OUTPUTS_MARKER)
    assert produced == ["720p/cam/clip.720p.mp4"]
    store_dir = Path(trip["env"]["XDG_STATE_HOME"]) / "hevcq"
    with Catalog.for_library(trip["lib"], store_dir) as state:
        outcomes = {p: r.outcome for p, r in state.decisions("cam/clip.MOV").items()}
        # The embedded farm dies with the run: its uploads are not remembered as uploaded.
        assert state.get("cam/clip.MOV").upload_key is None
    assert outcomes == {"hevc": "done", "720p": "done", "1080p": "skipped"}
    assert library_id(trip["lib"])  # the same id the uploads carried


def test_the_state_dir_its_run_logs_and_the_catalog_are_private(trip) -> None:
    state = Path(trip["env"]["XDG_STATE_HOME"]) / "hevcq"
    entries = [state, *state.rglob("*")]
    modes = {p.relative_to(state).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in entries}
    folders = {k for k in modes if (state / k).is_dir()}
    assert {"runs"} <= folders
    assert any(k.endswith("/logs/ingest.log") for k in modes)
    assert any(k.endswith("/logs/endpoint.log") for k in modes)
    assert any(k.startswith("library-") and k.endswith(".sqlite3") for k in modes)
    loose = {k: oct(m) for k, m in modes.items() if m != (0o700 if k in folders else 0o600)}
    assert loose == {}


def test_quarantine_list_and_rollback_put_the_original_back(trip) -> None:
    lib, env, tmp = trip["lib"], trip["env"], trip["tmp"]
    listed = hevcq(env, tmp, "quarantine", "list", str(lib))
    assert "clip.MOV" in listed.stdout
    assert "complete" in listed.stdout
    back = hevcq(env, tmp, "rollback", str(lib / "cam/clip.mp4"))
    assert back.returncode == 0, back.stdout + back.stderr[-2000:]
    assert (lib / "cam/clip.MOV").is_file()
    assert not (lib / "cam/clip.mp4").exists()
    assert probe(lib / "cam/clip.MOV").main_video.codec == "h264"
    assert list_quarantine(lib / DEFAULT_QUARANTINE) == []
    purge = hevcq(env, tmp, "quarantine", "purge", str(lib))
    assert "0 originals purged" in purge.stdout


def test_an_original_put_back_stays_through_the_next_replace_run(trip) -> None:
    """After a rollback, the next `ingest --replace` encoded the file again, then did not
    swap it in ("replaced earlier"), and called it done. A person chose the original: the
    run now leaves it, encodes nothing, and says why; it changes, and it is replaced."""
    lib, env, tmp = trip["lib"], trip["env"], trip["tmp"]
    if not (lib / "cam/clip.MOV").is_file():  # run alone: roll back first
        hevcq(env, tmp, "rollback", str(lib / "cam/clip.mp4"))
    again = hevcq(
        env, tmp, "ingest", str(lib), "--out", str(tmp / "out"), "--replace", "--timeout", "180"
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "0 to upload" in again.stdout
    row = next(ln for ln in again.stdout.splitlines() if "cam/clip.MOV" in ln and "hevc" in ln)
    assert "skipped: rolled back on " in row
    assert (lib / "cam/clip.MOV").is_file()
    assert not (lib / "cam/clip.mp4").exists()
    assert list_quarantine(lib / DEFAULT_QUARANTINE) == []
