"""Verification and swap with real clips made by the static ffmpeg, decoded by PyAV."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import av
import imageio_ffmpeg
import pytest

from hevcq.library.quarantine import (
    ReplaceRefused,
    list_quarantine,
    rollback,
    swap_in,
    verify_replacement,
)
from hevcq.media.probe import probe
from hevcq.media.verify import decoded_seconds
from tests.e2e.bitmapsubs import write_pgs
from tests.e2e.cutclips import late

pytestmark = pytest.mark.e2e

NOW = datetime(2025, 3, 1, tzinfo=UTC)
SECONDS = 2


@pytest.fixture(scope="module")
def ffmpeg() -> str:
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no ffmpeg on this machine")


def clip(ffmpeg: str, out: Path, vcodec: str, *extra: str) -> Path:
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=160x120:rate=15:duration={SECONDS}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={SECONDS}",
            "-c:v",
            vcodec,
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-b:a",
            "48k",
            *extra,
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out


@pytest.fixture(scope="module")
def clips(ffmpeg: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    original = clip(ffmpeg, d / "orig.mov", "libx264", "-crf", "18")
    good = clip(
        ffmpeg,
        d / "good.mp4",
        "libx265",
        "-crf",
        "35",
        "-tag:v",
        "hvc1",
        "-x265-params",
        "log-level=error",
        "-movflags",
        "+faststart",
    )
    truncated = d / "truncated.mp4"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # moov kept (faststart), frames cut
    return {"original": original, "good": good, "truncated": truncated}


def test_a_good_candidate_decodes_fully(clips: dict[str, Path]) -> None:
    assert decoded_seconds(clips["good"]) == pytest.approx(SECONDS, abs=0.1)


def test_a_truncated_candidate_is_refused_and_the_original_kept(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    original = tmp_path / "a.MOV"
    original.write_bytes(clips["original"].read_bytes())
    before = original.read_bytes()
    with pytest.raises(ReplaceRefused, match=r"truncated|does not decode"):
        verify_replacement(clips["truncated"], original, allow_larger=True)
    assert original.read_bytes() == before


def test_a_good_candidate_is_swapped_in_and_can_be_rolled_back(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    original = tmp_path / "lib" / "a.MOV"
    original.parent.mkdir()
    original.write_bytes(clips["original"].read_bytes())
    os.utime(original, (1_500_000_000, 1_500_000_000))
    verify_replacement(clips["good"], original, allow_larger=True)
    qroot = tmp_path / "lib" / ".hevcq" / "quarantine"
    entry = swap_in(original, clips["good"], quarantine_root=qroot, keep_days=7, now=NOW)
    final = tmp_path / "lib" / "a.mp4"
    assert final.stat().st_mtime == 1_500_000_000
    assert probe(final).main_video.codec == "hevc"
    assert probe(entry.quarantined).main_video.codec == "h264"
    assert rollback(qroot) == [original.absolute()]
    assert probe(original).main_video.codec == "h264"
    assert not final.exists()
    assert list_quarantine(qroot) == []


def test_a_picture_that_starts_after_its_sound_is_replaced_by_its_faithful_encode(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    """The original's file lasts 3.5 s, its picture 2 s from 1.5 s on; the encode keeps
    both. It was refused: "only 2.00 s of 3.50 s decode: truncated"."""
    original = late(clips["original"], tmp_path / "late.mov", picture_s=1.5)
    run = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    candidate = tmp_path / "late.mp4"
    hevc = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]
    subprocess.run([*run, "-i", str(original), *hevc, "-c:a", "copy", str(candidate)], check=True)
    assert probe(original).duration_s == pytest.approx(3.5, abs=0.1)
    verify_replacement(candidate, original, allow_larger=True)
    # Cut short, the same encode is still refused.
    cut = tmp_path / "cut.mp4"
    trim = ["-t", "2.5", "-c", "copy"]
    subprocess.run([*run, "-i", str(candidate), *trim, str(cut)], check=True)
    with pytest.raises(ReplaceRefused, match=r"truncated|differs"):
        verify_replacement(cut, original, allow_larger=True)


def test_an_original_trimmed_by_an_edit_list_is_replaced_by_its_encode(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    """Cut without re-encoding, as phones trim: the MP4 holds its packets from the
    keyframe and an edit list plays from 1.5 s on. Its packets span more than it plays,
    which the check must not take for the length its encode owes."""
    run = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    original = tmp_path / "trimmed.mp4"
    trim = ["-ss", "1.5", "-i", str(clips["original"]), "-c", "copy", str(original)]
    subprocess.run([*run, *trim], check=True)
    assert probe(original).duration_s == pytest.approx(SECONDS - 1.5, abs=0.1)
    candidate = tmp_path / "trimmed-hevc.mp4"
    hevc = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]
    subprocess.run([*run, "-i", str(original), *hevc, "-c:a", "copy", str(candidate)], check=True)
    verify_replacement(candidate, original, allow_larger=True)


def _broadcast(path: Path, *, subtitled: bool) -> Path:
    """A DVB recording listing a subtitle stream, with captions or (a programme without
    subtitles) without a single packet in it."""
    plain = path.with_name("plain.ts")
    args = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"]
    args += ["-f", "lavfi", "-i", "sine=duration=4"]
    args += ["-i", str(write_pgs(path.with_name("captions.sup"), 320, 180, 4))]
    args += ["-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast"]
    args += ["-c:a", "mp2", "-c:s", "dvbsub", "-f", "mpegts", str(plain)]
    subprocess.run(args, check=True)
    with av.open(str(plain)) as src, av.open(str(path), "w", format="mpegts") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None or (packet.stream.type == "subtitle" and not subtitled):
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return path


@pytest.mark.parametrize("subtitled", [False, True])
def test_an_empty_subtitle_stream_does_not_keep_an_mp4_out(tmp_path: Path, subtitled: bool) -> None:
    """MP4 holds no bitmap subtitles: an encode of a recording with captions may not replace
    it. One whose DVB subtitle stream carries nothing loses nothing, and was refused all
    the same (`it holds 0 of the original's 1 subtitle streams`)."""
    original = _broadcast(tmp_path / "recording.ts", subtitled=subtitled)
    assert len(probe(original).subtitles) == 1
    candidate = tmp_path / "recording.mp4"
    encode = ["-map", "0:v", "-map", "0:a", "-c:v", "libx265", "-preset", "ultrafast"]
    encode += ["-c:a", "aac", str(candidate)]
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(original), *encode], check=True
    )
    if subtitled:
        with pytest.raises(ReplaceRefused, match=r"it holds 0 of the original's 1 subtitle"):
            verify_replacement(candidate, original, allow_larger=True)
    else:
        verify_replacement(candidate, original, allow_larger=True)
