"""The whole farm on one machine: `hevcq ingest` on a generated library, real workers and ffmpeg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hevcq.library.walk import OUTPUTS_MARKER
from hevcq.media.probe import probe
from hevcq.media.samples import make_sample_library
from tests.conftest import fast_pools

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def farm_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    tmp = tmp_path_factory.mktemp("farm")
    library = tmp / "library"
    make_sample_library(library, seconds=1.0)
    out = tmp / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(fast_pools(tmp)),
        "HOME": str(tmp / "home"),
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "hevcq", "ingest", str(library), "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--timeout", "240"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp,
        check=False,
    )
    return proc, library, out


def test_says_it_runs_the_embedded_farm(farm_run) -> None:
    proc, _, _ = farm_run
    assert "embedded local farm" in proc.stdout


def test_exit_status_reports_the_failed_file(farm_run) -> None:
    proc, _, _ = farm_run
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]


@pytest.mark.parametrize(
    ("rel", "size", "rotation"),
    [
        ("hevc/holiday/beach.mp4", (1920, 1080), 0),
        ("720p/holiday/beach.720p.mp4", (1280, 720), 0),
        ("1080p/holiday/beach.1080p.mp4", (1920, 1080), 0),
        # The phone clip is stored landscape with a 90 degree display rotation: kept as is.
        ("hevc/phone/IMG_0042.mp4", (1920, 1080), 90),
        ("720p/phone/IMG_0042.720p.mp4", (1280, 720), 90),
        ("1080p/phone/IMG_0042.1080p.mp4", (1920, 1080), 90),
    ],
)
def test_every_expected_output_exists_and_probes_right(farm_run, rel, size, rotation) -> None:
    proc, library, out = farm_run
    path = out / rel
    assert path.is_file(), f"missing {rel}\n{proc.stdout}"
    info = probe(path)
    v = info.main_video
    assert v is not None
    assert v.codec == "hevc"
    assert (v.width, v.height) == size
    assert v.rotation == rotation
    src_rel = rel.split("/", 1)[1].replace(".720p", "").replace(".1080p", "")
    src = next(library.rglob(Path(src_rel).stem + ".*"))
    assert abs((info.duration_s or 0) - (probe(src).duration_s or 0)) <= 0.5
    assert len(info.audio) == len(probe(src).audio)


def test_nothing_unexpected_was_produced(farm_run) -> None:
    _, _, out = farm_run
    produced = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name != OUTPUTS_MARKER
    )
    assert produced == sorted(
        [
            "hevc/holiday/beach.mp4",
            "720p/holiday/beach.720p.mp4",
            "1080p/holiday/beach.1080p.mp4",
            "hevc/phone/IMG_0042.mp4",
            "720p/phone/IMG_0042.720p.mp4",
            "1080p/phone/IMG_0042.1080p.mp4",
        ]
    )


@pytest.mark.parametrize(
    ("file", "pool", "reason"),
    [
        ("already/hevc-clip.mp4", "hevc", "already HEVC"),
        ("already/hevc-clip.mp4", "1080p", "smaller than 1080p"),
        ("already/hevc-clip.mp4", "720p", "already HEVC at 1280x720, the 720p size"),
        ("docs/not-a-video.mp4", "-", "not a media file"),
    ],
)
def test_summary_gives_every_skip_and_failure_its_reason(farm_run, file, pool, reason) -> None:
    proc, _, _ = farm_run
    lines = [ln for ln in proc.stdout.splitlines() if file in ln and f" {pool} " in ln]
    assert len(lines) == 1, proc.stdout
    assert reason in lines[0]
