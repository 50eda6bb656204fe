"""Two sources with one output name both arrive, and a re-run accepts the outputs it finds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hevcq.library.walk import OUTPUTS_MARKER
from hevcq.media.equality import same_bytes, same_media
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from tests.conftest import WORKERS_DIR
from tests.e2e.farmkit import pool_dir

pytestmark = pytest.mark.e2e

TINY = {"width": 128, "height": 72, "seconds": 0.5, "fps": 10}


def ingest(tmp: Path, lib: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(tmp / "workers"),
        "HOME": str(tmp / "home"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "hevcq", "ingest", str(lib), "--out", str(out), *args]
    return subprocess.run(
        cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=120, check=False
    )


def remux(path: Path) -> None:
    """The same streams in other container bytes (no bitexact: ffmpeg's version tags)."""
    tmp = path.with_name("remuxed.part")
    subprocess.run(
        [
            find_ffmpeg(),
            "-v",
            "error",
            "-i",
            f"file:{path}",
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "mp4",
            f"file:{tmp}",
        ],
        check=True,
    )
    tmp.replace(path)


def test_sources_sharing_a_name_get_two_outputs_and_a_rerun_accepts_them(tmp_path: Path) -> None:
    pool_dir(tmp_path)
    lib, out = tmp_path / "lib", tmp_path / "out"
    make_clip(lib / "IMG_0001.MOV", **TINY, container="mov")  # type: ignore[arg-type]
    make_clip(lib / "IMG_0001.mp4", **TINY, audio_streams=0)  # type: ignore[arg-type]
    first = ingest(tmp_path, lib, out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    plain, long = out / "hevc" / "IMG_0001.mp4", out / "hevc" / "IMG_0001.MOV.mp4"
    assert sorted(p.name for p in (out / "hevc").iterdir() if p.name != OUTPUTS_MARKER) == [
        long.name,
        plain.name,
    ]
    assert len(probe(long).audio) == 1  # the MOV's output, with its sound
    assert len(probe(plain).audio) == 0  # the mp4's output
    remux(long)  # an output that differs in bytes only: accepted by its streams
    long_bytes, plain_bytes = long.read_bytes(), plain.read_bytes()

    shutil.rmtree(tmp_path / "state")  # forget everything: upload, encode and fetch again
    again = ingest(tmp_path, lib, out)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for word in ("conflict", "refused", "differs", "failed"):
        assert word not in again.stdout.split("hevcq summary", 1)[-1]
    assert sorted(p.name for p in (out / "hevc").iterdir() if p.name != OUTPUTS_MARKER) == [
        long.name,
        plain.name,
    ]
    assert long.read_bytes() == long_bytes
    assert plain.read_bytes() == plain_bytes
    assert not same_bytes(long, plain)
    assert not same_media(long, plain)


def test_sources_sharing_a_stem_get_two_outputs_in_pools_of_one_extension(tmp_path: Path) -> None:
    """``clip.mkv`` and ``clip.mp4`` keep their names in the automatic container, and
    shared one in a WebM pool and in a ladder, where one of them was refused."""
    workers = pool_dir(tmp_path, ("hevc", "hls"))
    av1 = yaml.safe_load((WORKERS_DIR / "optional" / "av1.yaml").read_text())
    av1["encode"]["preset"] = "12"
    (workers / "av1.yaml").write_text(yaml.safe_dump(av1))
    lib, out = tmp_path / "lib", tmp_path / "out"
    # Silent (Opus would outweigh a clip this small), and told apart by their sizes.
    make_clip(lib / "clip.mkv", width=160, height=90, seconds=0.5, fps=10, audio_streams=0)
    make_clip(lib / "clip.mp4", **TINY, audio_streams=0)  # type: ignore[arg-type]
    done = ingest(tmp_path, lib, out, "--pools", "hevc,hls,av1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def names(pool: str) -> list[str]:
        return sorted(p.name for p in (out / pool).iterdir() if p.name != OUTPUTS_MARKER)

    assert names("hevc") == ["clip.mkv", "clip.mp4"]  # as before: their names differ
    assert names("av1") == ["clip.mkv.av1.webm", "clip.mp4.av1.webm"]
    assert names("hls") == ["clip.mkv.hls", "clip.mp4.hls"]
    for name, width in (("clip.mkv", 160), ("clip.mp4", 128)):  # each of its own source
        video = probe(out / "av1" / f"{name}.av1.webm").main_video
        assert video is not None
        assert video.width == width
