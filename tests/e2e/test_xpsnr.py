"""XPSNR on real pictures: the stats file the pinned ffmpeg's xpsnr filter writes is read
as the filter pools it, and the score is aligned as VMAF's is (the same picture stored
with a later clock scores the same) and falls as the encode gets coarser. What cannot be
scored says so instead of scoring low (``test_quality``, for both metrics)."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.quality import XPSNR_CEILING, parse_xpsnr, xpsnr_score
from hevcq.media.samples import make_clip
from tests.e2e.test_quality import encode

pytestmark = pytest.mark.e2e
PATTERN = "testsrc2=size=160x90:rate=25:duration=1"


def ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def test_the_filters_stats_file_is_read_as_the_filter_pools_it(tmp_path: Path) -> None:
    # Two tiny generated clips: the pattern, and the pattern through a coarse H.264.
    ref, coarse = tmp_path / "ref.mkv", tmp_path / "coarse.mkv"
    ffmpeg("-f", "lavfi", "-i", PATTERN, "-pix_fmt", "yuv420p", "-c:v", "ffv1", str(ref))
    ffmpeg("-i", str(ref), "-c:v", "libx264", "-crf", "38", "-preset", "ultrafast", str(coarse))
    stats = tmp_path / "xpsnr.log"
    graph = f"[0:v][1:v]xpsnr=stats_file={stats}:shortest=1"
    ffmpeg("-i", str(coarse), "-i", str(ref), "-lavfi", graph, "-f", "null", "-")
    text = stats.read_text()
    got = parse_xpsnr(text)
    frames = [float(v) for v in re.findall(r"XPSNR y:\s*(\S+)", text)]
    assert got.frames == len(frames) == 25
    assert 15 < got.mean < 45
    # The pooled value is the filter's, from the frames' distortion, not a mean of dB:
    pooled = -20 * math.log10(sum(10 ** (-y / 20) for y in frames) / len(frames))
    assert got.mean == pytest.approx(pooled, abs=0.01)
    assert got.mean < sum(frames) / len(frames)
    assert got.low == min(frames)  # 1 % of 25 frames: the worst one
    # The same picture against itself: infinite by the filter, capped here.
    ffmpeg("-i", str(ref), "-i", str(ref), "-lavfi", graph, "-f", "null", "-")
    same = parse_xpsnr(stats.read_text())
    assert (same.mean, same.low) == (XPSNR_CEILING, XPSNR_CEILING)


def test_an_xpsnr_score_is_aligned_and_falls_with_the_crf(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "s.mp4", width=320, height=180, seconds=2)
    plain = xpsnr_score(find_ffmpeg(), src, encode(src, tmp_path / "a.mp4"))
    later = encode(src, tmp_path / "b.mp4", "-output_ts_offset", "0.5")
    shifted = xpsnr_score(find_ffmpeg(), src, later)
    assert plain.metric == "xpsnr"
    assert plain.frames == shifted.frames == 48
    assert abs(plain.mean - shifted.mean) < 0.2  # compared frame for frame despite the clock
    coarse = tmp_path / "c.mp4"
    ffmpeg("-i", str(src), "-c:v", "libx265", "-preset", "ultrafast", "-crf", "40", str(coarse))
    worse = xpsnr_score(find_ffmpeg(), src, coarse)  # encode() uses CRF 30
    assert worse.mean < plain.mean - 3
    assert worse.low <= worse.mean
