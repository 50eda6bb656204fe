"""Sources whose timestamps jump (``hevcq.media.splice``): two recordings concatenated into
one MPEG-TS file, the second larger and in another pixel format, as a broadcast that goes
from an SD programme to an HD one. Every check of length, every sample and every score
must see the file as ffmpeg plays it: both parts, one after the other."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest

from hevcq.errors import VerificationError
from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg, run_ffmpeg
from hevcq.media.probe import probe
from hevcq.media.quality import score
from hevcq.media.splice import spliced_video_span, straighten
from hevcq.media.verify import verify_output
from tests.e2e.test_crfsearch import pool, run_job
from tests.e2e.test_media import plan_for

pytestmark = pytest.mark.e2e

PART_S = 3.0


def _ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _part(path: Path, size: str, pix_fmt: str) -> None:
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={PART_S}"),
        *("-f", "lavfi", "-i", f"sine=duration={PART_S}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt, "-g", "25"),
        *("-c:a", "aac", "-f", "mpegts", str(path)),
    )


@pytest.fixture(scope="module")
def spliced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 3 s recordings, each with its clock from the start, in one file."""
    folder = tmp_path_factory.mktemp("spliced")
    first, second = folder / "sd.ts", folder / "hd.ts"
    _part(first, "320x180", "yuv420p")
    _part(second, "480x270", "yuv444p")
    joined = folder / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    return joined


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _straightened(spliced: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "source"
    copy.write_bytes(spliced.read_bytes())
    assert straighten(find_ffmpeg(), copy, stop=threading.Event(), stall_timeout_s=60)
    return copy


def test_a_spliced_recording_plays_for_both_parts_though_its_header_says_one(
    spliced: Path,
) -> None:
    duration = probe(spliced).duration_s
    assert duration is not None
    assert abs(duration - PART_S) < 0.2  # the span of its timestamps: the parts overlap
    span = spliced_video_span(spliced, 0)
    assert span is not None
    assert abs(span - 2 * PART_S) < 0.1


def test_straightening_puts_every_frame_on_one_clock(spliced: Path, tmp_path: Path) -> None:
    straight = _straightened(spliced, tmp_path)
    info = probe(straight)
    assert info.duration_s is not None
    assert abs(info.duration_s - 2 * PART_S) < 0.1
    assert spliced_video_span(straight, 0) is None  # no jump left
    assert _frames(straight) == _frames(spliced) == 2 * PART_S * 25
    assert [s.type for s in av.open(str(straight)).streams] == ["video", "audio"]


@pytest.mark.parametrize("container", ["mpegts", "mp4"])
def test_a_source_whose_clock_runs_on_is_left_as_it_is(tmp_path: Path, container: str) -> None:
    src = tmp_path / "source"
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=2"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-f", container, str(src)),
    )
    before = src.read_bytes()
    assert spliced_video_span(src, 0) is None
    assert not straighten(find_ffmpeg(), src, stop=threading.Event(), stall_timeout_s=60)
    assert src.read_bytes() == before


def test_both_parts_are_scored_though_the_picture_changes_size_and_format(
    spliced: Path, tmp_path: Path
) -> None:
    # ffmpeg builds a graph again where its input's picture changes: STARTPTS restarts
    # and a new libvmaf logs only the frames after it. Built once, every frame is scored.
    straight = _straightened(spliced, tmp_path)
    out = tmp_path / "out.mp4"
    _ffmpeg("-i", str(straight), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16", str(out))
    got = score(find_ffmpeg(), straight, out, neg=False)
    assert got.frames == 2 * PART_S * 25
    assert got.mean > 90, got


def test_an_encode_of_a_spliced_original_may_replace_it_and_a_part_may_not(
    spliced: Path, tmp_path: Path
) -> None:
    whole, part = tmp_path / "whole.mp4", tmp_path / "part.mp4"
    encode = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-c:a", "aac")
    _ffmpeg("-i", str(spliced), *encode, str(whole))
    _ffmpeg("-i", str(spliced), "-t", str(PART_S), *encode, str(part))
    verify_replacement(whole, spliced, allow_larger=True)
    with pytest.raises(ReplaceRefused, match=r"differs from the original's 6\.0"):
        verify_replacement(part, spliced, allow_larger=True)


def test_an_output_is_held_to_the_length_its_spliced_source_plays(
    spliced: Path, tmp_path: Path
) -> None:
    # A source left as it is (one whose remux failed): its header's 3 s would reject the
    # whole encode, and pass one of its first part only.
    plan = plan_for(spliced, "hevc")
    whole, part = tmp_path / "whole.mp4", tmp_path / "part.mp4"
    run_ffmpeg(
        build_args(find_ffmpeg(), spliced, whole, plan, threads=2),
        on_progress=None,
        stop=threading.Event(),
        stall_timeout_s=60,
    )
    verify_output(whole, plan, probe(spliced), source_path=spliced)
    _ffmpeg("-i", str(whole), "-t", str(PART_S), "-map", "0", "-c", "copy", str(part))
    with pytest.raises(VerificationError, match=r"output lasts 3\.\d+ s, source 6\.0"):
        verify_output(part, plan, probe(spliced), source_path=spliced)


def test_a_spliced_source_is_searched_encoded_and_scored_whole(
    tmp_path: Path, spliced: Path
) -> None:
    # Before: the output (6 s) was rejected against the header's 3 s; then, put on one
    # clock, its score stopped where the picture changed size.
    checked = pool(vmaf=90, max_size_percent=150)
    checked = checked.model_copy(update={"verify": "quality"})
    result, _, store = run_job(tmp_path, spliced, checked)
    assert result.outcome == "done", result.reason
    assert result.vmaf is not None
    assert result.vmaf >= 89.0
    assert result.duration_s is not None
    assert abs(result.duration_s - 2 * PART_S) < 0.1
    assert "DONE/q/a.mp4" in store.data


def test_the_quality_command_scores_a_spliced_original_whole(spliced: Path, tmp_path: Path) -> None:
    whole, part = tmp_path / "whole.mp4", tmp_path / "part.mp4"
    encode = ("-c:v", "libx264", "-preset", "ultrafast", "-crf", "16", "-an")
    _ffmpeg("-i", str(spliced), *encode, str(whole))
    _ffmpeg("-i", str(spliced), "-t", str(PART_S), *encode, str(part))
    env = {**os.environ, "COLUMNS": "400"}
    cmd = [sys.executable, "-m", "hevcq", "quality", str(spliced)]
    ok = subprocess.run([*cmd, str(whole)], capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0, ok.stderr
    line = r"VMAF 9\d\.\d\d \(1% low [^)]+\) with vmaf_v0\.6\.1, 150 frames\n"
    assert re.fullmatch(line, ok.stdout), ok.stdout
    cut = subprocess.run([*cmd, str(part)], capture_output=True, text=True, env=env, check=False)
    assert cut.returncode != 0
    assert "part.mp4 lasts 3.00 s and joined.ts 6.00 s: not an encode of the whole" in cut.stderr
