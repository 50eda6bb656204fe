"""The pool's verify policy with real ffmpeg: what each policy decodes, and what still guards
originals at replace time."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import av
import pytest
from structlog.testing import capture_logs

import hevcq.media.verify
from hevcq.errors import VerificationError
from hevcq.library.fetch import Fetcher, FetchOptions
from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media.model import EncodePlan
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from hevcq.media.streamcheck import FIRST_NON_VCL, StreamCheck, StreamDecoder, nal_length_size
from hevcq.media.verify import END_FRAMES, verify_output
from tests.e2e.test_media import encode_teed, ffmpeg, plan_for
from tests.unit.test_fetch import LIB, NOW, POOLS, make_lib

pytestmark = pytest.mark.e2e
__all__ = ["ffmpeg"]  # the fixture, shared with the media tests

FRAMES = 72  # 3 s at 24 fps: one GOP with x265's defaults
KEYINT = 24  # the multi-GOP clip: a keyframe every second, 3 GOPs


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    return make_clip(path, width=160, height=120, seconds=3.0, fps=24)


def gops_plan(source: Path) -> EncodePlan:
    params = {"keyint": str(KEYINT), "min-keyint": str(KEYINT), "scenecut": "0"}
    return dataclasses.replace(plan_for(source, "hevc"), x265_params=params)


def decoded_events(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == "output_decoded"]


def no_full_decode(*_args: object) -> None:
    raise AssertionError("the whole file was decoded")


@pytest.mark.parametrize("policy", ["stream", "full"])
def test_each_policy_decodes_what_it_says(
    ffmpeg: str, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    plan = plan_for(source, "hevc")
    out = tmp_path / "out.mp4"
    frames = None if policy == "full" else END_FRAMES
    check, _ = encode_teed(ffmpeg, source, plan, out, tmp_path / "s.hevc", frames=frames)
    assert check.decoded is (policy == "full")
    assert check.frames == FRAMES  # decoded (full) or counted (stream) from the raw stream
    monkeypatch.setattr(hevcq.media.verify, "decode_video", no_full_decode)
    with capture_logs() as logs:
        verify_output(out, plan, probe(source), source_path=source, stream=check)
    [event] = decoded_events(logs)
    if policy == "full":
        assert (event["how"], event["frames_decoded"]) == ("stream, every frame", FRAMES)
    else:
        # The first frames from the stream during the encode (a few more than asked: the
        # decoder's reorder delay); from the file, one GOP: its keyframe only.
        assert END_FRAMES <= check.first_decoded < FRAMES
        assert event["how"] == "stream, first frames; file, ends"
        assert (event["file_frames_decoded"], event["keyframes"]) == (1, 1)


def test_without_the_tee_every_frame_of_the_file_is_decoded(
    ffmpeg: str, source: Path, tmp_path: Path
) -> None:
    plan = plan_for(source, "hevc")
    out = tmp_path / "out.mp4"
    encode_teed(ffmpeg, source, plan, out, tmp_path / "s.hevc", frames=END_FRAMES)
    with capture_logs() as logs:
        verify_output(out, plan, probe(source), source_path=source)
    [event] = decoded_events(logs)
    assert (event["how"], event["frames_decoded"]) == ("file, every frame", FRAMES)


def keyframe_packets(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [i for i, p in enumerate(container.demux(stream)) if p.size and p.is_keyframe]


def damage_slice(path: Path, packet: int) -> None:
    """Zero four bytes inside the slice header of one packet's first slice: an Exp-Golomb
    code with 32 leading zeros, which no decoder accepts (0xff bytes parse as valid zeros
    and can go unnoticed). The container, the NAL sizes and the picture count stay intact."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = nal_length_size(stream.codec_context.extradata)
        assert size is not None
        found = next(p for i, p in enumerate(container.demux(stream)) if i == packet)
        pos, data = found.pos, bytes(found)
        assert pos is not None
    at = 0
    while (data[at + size] >> 1) & 0x3F >= FIRST_NON_VCL:  # skip SEI and the like
        at += size + int.from_bytes(data[at : at + size], "big")
    with path.open("r+b") as fh:
        fh.seek(pos + at + size + 2 + 4)  # NAL header, then four bytes into the slice header
        fh.write(b"\x00" * 4)


def stream_of(ffmpeg: str, path: Path, decode: bool) -> StreamCheck:
    # decode: every frame (verify: full), else the first END_FRAMES (verify: stream)
    """What reading the file's own video as the encoder's raw stream finds: the file
    passes the stream proof by construction, as if the encoder had written the damage."""
    raw = path.with_suffix(".hevc")
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(path),
            "-map",
            "0:v",
            "-c",
            "copy",
            "-bsf:v",
            "hevc_mp4toannexb",
            "-f",
            "hevc",
            str(raw),
        ],
        check=True,
        timeout=60,
    )
    return StreamDecoder(raw, frames=None if decode else END_FRAMES).finish()


@pytest.fixture(scope="module")
def gops_output(ffmpeg: str, source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gops")
    out = folder / "out.mp4"
    encode_teed(ffmpeg, source, gops_plan(source), out, folder / "s.hevc", frames=END_FRAMES)
    assert len(keyframe_packets(out)) == FRAMES // KEYINT
    return out


def test_stream_policy_decodes_the_start_of_the_last_gop_from_the_file(
    ffmpeg: str, source: Path, gops_output: Path
) -> None:
    with capture_logs() as logs:
        verify_output(
            gops_output,
            gops_plan(source),
            probe(source),
            stream=stream_of(ffmpeg, gops_output, decode=False),
        )
    [event] = decoded_events(logs)
    assert event["keyframes"] == FRAMES // KEYINT
    # The first keyframe and the start of the last GOP, less the leading pictures a
    # decoder starting at the last keyframe drops.
    assert 1 < event["file_frames_decoded"] <= 1 + END_FRAMES


@pytest.mark.parametrize("gop", [0, -1], ids=["first", "last"])
def test_stream_policy_rejects_a_damaged_first_or_last_gop(
    ffmpeg: str, source: Path, gops_output: Path, tmp_path: Path, gop: int
) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(gops_output.read_bytes())
    damage_slice(bad, keyframe_packets(bad)[gop])
    check = stream_of(ffmpeg, bad, decode=False)
    with pytest.raises(VerificationError, match="does not decode"):
        verify_output(bad, gops_plan(source), probe(source), stream=check)


def test_replace_refuses_a_file_whose_stream_check_passed_but_does_not_decode(
    ffmpeg: str, source: Path, gops_output: Path, tmp_path: Path
) -> None:
    # The middle GOP is the part verify: stream does not decode.
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(gops_output.read_bytes())
    damage_slice(bad, keyframe_packets(bad)[1])
    plan = gops_plan(source)
    verify_output(bad, plan, probe(source), stream=stream_of(ffmpeg, bad, decode=False))
    with pytest.raises(VerificationError, match="does not decode"):
        verify_output(bad, plan, probe(source), stream=stream_of(ffmpeg, bad, decode=True))
    with pytest.raises(ReplaceRefused, match="does not decode"):
        verify_replacement(bad, source, allow_larger=True)
    verify_replacement(gops_output, source, allow_larger=True)  # the undamaged file passes


@pytest.mark.parametrize("damaged", [True, False], ids=["damaged", "good"])
def test_fetch_replace_decodes_every_frame_whatever_the_pool_checked(
    ffmpeg: str, source: Path, gops_output: Path, tmp_path: Path, damaged: bool
) -> None:
    output = tmp_path / "out.mp4"
    output.write_bytes(gops_output.read_bytes())
    if damaged:  # in the middle GOP, which verify: stream lets through (test above)
        damage_slice(output, keyframe_packets(output)[1])
    lib = make_lib(tmp_path, source.read_bytes())
    lib.output("hevc", output.read_bytes())
    options = FetchOptions(
        pools=frozenset(POOLS), out_dir=lib.out, replace=frozenset({"hevc"}), allow_larger=True
    )
    fetcher = Fetcher(
        lib.root,
        lib.state,
        lib.objects,
        lib.ledger,
        options,
        all_pools=POOLS,
        library=LIB,
        clock=lambda: NOW,
    )
    got = fetcher.process(lib.result("hevc"))
    lib.state.close()
    if damaged:
        assert (got.action, "does not decode" in got.reason) == ("refused", True)
        assert lib.src.read_bytes() == source.read_bytes()
    else:
        assert got.action == "replaced", got.reason
        assert lib.src.read_bytes() == output.read_bytes()


def test_a_matroska_video_that_starts_after_its_audio_decodes_for_all_it_declares(
    ffmpeg: str, tmp_path: Path
) -> None:
    # Matroska's per-stream DURATION tag is where the stream ends: video from 2 s to 5 s
    # spans 3 s. Read as a span, it rejected every WebM or Matroska output of a recording
    # whose picture starts late ("video decodes for 3.00 s of 5.00 s"), on every retry.
    late = tmp_path / "late.mkv"
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-itsoffset", "2"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=3"]
    args += ["-f", "lavfi", "-i", "sine=duration=5", "-c:v", "libx264", "-preset", "ultrafast"]
    subprocess.run([*args, "-c:a", "libopus", str(late)], check=True)
    decoded = hevcq.media.verify.decode_video(late)
    assert decoded.declared_span_s is not None
    assert abs(decoded.declared_span_s - 3.0) < 0.1
    assert hevcq.media.verify.decode_problems(decoded) == []
    # A video that stops early is still one: its end is held to its tag.
    short = dataclasses.replace(decoded, span_s=decoded.span_s - 1.0)
    assert hevcq.media.verify.decode_problems(short) == [
        f"video decodes for {short.span_s:.2f} s of {decoded.declared_span_s:.2f} s"
    ]
