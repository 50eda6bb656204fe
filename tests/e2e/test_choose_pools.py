"""Choosing pools: a pool that is off by default encodes only for a run that names it, the
default run leaves it alone, and a name the farm does not know is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hevcq.library.walk import OUTPUTS_MARKER
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from tests.e2e.farmkit import pool_dir

pytestmark = pytest.mark.e2e
AV1 = Path(__file__).resolve().parents[2] / "workers" / "optional" / "av1.yaml"


def ingest(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(tmp / "workers"),
        "HOME": str(tmp / "home"),
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "hevcq", "ingest", str(tmp / "lib"), "--out", str(tmp / "out")]
    return subprocess.run(
        [*cmd, "--no-dashboard", "--timeout", "240", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp,
        check=False,
    )


def test_a_pool_off_by_default_encodes_only_when_a_run_names_it(tmp_path: Path) -> None:
    workers = pool_dir(tmp_path, ("hevc",))
    doc = yaml.safe_load(AV1.read_text())
    doc["default"] = False
    doc["encode"]["preset"] = "12"  # SVT-AV1's fast end: a test, not a library
    (workers / "av1.yaml").write_text(yaml.safe_dump(doc))
    make_clip(tmp_path / "lib" / "clip.mp4", width=320, height=240, seconds=1)
    out = tmp_path / "out"

    first = ingest(tmp_path)
    assert first.returncode == 0, first.stderr
    assert (out / "hevc" / "clip.mp4").is_file()
    assert not (out / "av1").exists()
    assert _pools_in_summary(first.stdout) == ["hevc"]  # no row for a pool not chosen
    hevc_placed = (out / "hevc" / "clip.mp4").stat().st_mtime_ns

    second = ingest(tmp_path, "--pools", "av1")
    assert second.returncode == 0, second.stderr
    webm = out / "av1" / "clip.av1.webm"
    # The av1 pool stores a poster with each output for apps; a library gets the file alone.
    assert sorted(p.name for p in (out / "av1").iterdir() if p.name != OUTPUTS_MARKER) == [
        "clip.av1.webm"
    ]
    info = probe(webm)
    assert info.main_video is not None
    assert info.main_video.codec == "av1"
    assert [a.codec for a in info.audio] == ["opus"]
    # hevc was not chosen: its output stays as the first run left it, not encoded again.
    assert _pools_in_summary(second.stdout) == ["av1"]
    assert (out / "hevc" / "clip.mp4").stat().st_mtime_ns == hevc_placed

    unknown = ingest(tmp_path, "--pools", "hevc,nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: --pools: unknown pool(s) nope; known: av1, hevc"
    ]


def _pools_in_summary(stdout: str) -> list[str]:
    """The pool column of the summary's rows for clip.mp4."""
    rows = [line.split("│") for line in stdout.splitlines() if line.startswith("│ clip.mp4")]
    return [cells[2].strip() for cells in rows]
