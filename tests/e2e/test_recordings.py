"""A browser's recording (MediaRecorder): a WebM or Matroska file written as it was
recorded, stating neither its length nor an index. Its length is measured from its
packets, so its poster is not its first frame and its outputs are held to its length."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

import hevcq.media.probe
from hevcq.errors import VerificationError
from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.poster import DARKEST, make_poster
from hevcq.media.probe import packet_span_s, probe
from hevcq.media.verify import verify_output
from tests.e2e.test_crfsearch import encode
from tests.e2e.test_media import plan_for

pytestmark = pytest.mark.e2e

SECONDS = 6.0


def _recorded(dest: Path, video: list[str], *, fmt: str) -> Path:
    """``SECONDS`` of picture fading in from black, with sound, written through a pipe
    as a recorder writes: no length, no index."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", f"testsrc2=size=320x180:rate=30:duration={SECONDS},fade=in:st=0:d=2"]
    args += ["-f", "lavfi", "-i", f"sine=duration={SECONDS}", *video, "-c:a", "libopus"]
    with dest.open("wb") as out:
        subprocess.run([*args, "-f", fmt, "-"], stdout=out, check=True)
    with av.open(str(dest)) as f:  # as recorded: the header states no length
        assert f.duration is None
        assert all(s.duration is None for s in f.streams)
    return dest


VP8 = ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "500k", "-g", "100000"]
H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "100000"]


@pytest.mark.parametrize(("name", "video", "fmt"), [("rec.webm", VP8, "webm"),
                                                    ("rec.mkv", H264, "matroska")])  # fmt: skip
def test_a_recordings_length_is_measured_from_its_packets(
    tmp_path: Path, name: str, video: list[str], fmt: str
) -> None:
    src = _recorded(tmp_path / name, video, fmt=fmt)
    info = probe(src)
    assert info.duration_s == pytest.approx(SECONDS, abs=0.05)
    assert info.length_measured


def test_a_recording_cut_short_is_measured_as_far_as_it_reads(tmp_path: Path) -> None:
    src = _recorded(tmp_path / "rec.webm", VP8, fmt="webm")
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])  # an upload that stopped halfway
    measured = probe(src).duration_s
    assert measured is not None
    assert 1.0 < measured < SECONDS - 1.0


def test_a_file_of_too_many_packets_is_not_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _recorded(tmp_path / "rec.webm", VP8, fmt="webm")
    monkeypatch.setattr(hevcq.media.probe, "SPAN_PACKETS", 50)
    assert packet_span_s(src) is None
    info = probe(src)
    assert info.duration_s is None  # unknown, as the file says
    assert not info.length_measured


def test_a_recordings_poster_is_past_its_fade_in(tmp_path: Path) -> None:
    # Its length unknown, all nine samples were its first frame: black.
    src = _recorded(tmp_path / "rec.webm", VP8, fmt="webm")
    chosen = make_poster(find_ffmpeg(), src, tmp_path / "poster.jpg")
    assert chosen.time_s >= 0.5
    assert chosen.mean >= DARKEST


def test_a_recordings_output_is_held_to_its_length_and_may_replace_it(tmp_path: Path) -> None:
    # Its length unknown, an output of any length passed, and `fetch --replace` refused
    # every output of it ("duration unknown, cannot compare").
    src = _recorded(tmp_path / "rec.mkv", H264, fmt="matroska")
    plan = plan_for(src, "hevc")
    whole, part = tmp_path / "whole.mp4", tmp_path / "part.mp4"
    encode(src, whole, plan)
    verify_output(whole, plan, probe(src), source_path=src)
    verify_replacement(whole, src, allow_larger=True)
    cut = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(whole)]
    subprocess.run([*cut, "-t", "3", "-map", "0", "-c", "copy", str(part)], check=True)
    with pytest.raises(VerificationError, match=r"output lasts 3\.\d+ s, source 6\.0"):
        verify_output(part, plan, probe(src), source_path=src)
    with pytest.raises(ReplaceRefused, match=r"differs from the original's 6\.0"):
        verify_replacement(part, src, allow_larger=True)
