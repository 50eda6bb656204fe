"""A picture that changes shape partway (``hevcq.media.ffargs.fit_picture``): a browser's
recording of a phone turned on its side, a shared window resized, a broadcast that moves
to another programme. Here two recordings joined into one MPEG-TS file, the first
landscape and the second portrait. Left to ffmpeg, the portrait part was stretched to
the landscape size in every pool and in the ladder's rungs; now it keeps its shape,
centred on black, and frames of the first size come out as they did before, byte for
byte. Below, a VP8 or VP9 recording that starts small is made at the size it shows
longest (``hevcq.media.picshape``)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from hevcq.ledger import JobKey
from hevcq.library.catalog import Catalog
from hevcq.library.scan import scan
from hevcq.media import picshape
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args, fit_picture
from hevcq.media.ffmpeg import find_ffmpeg, run_ffmpeg
from hevcq.media.ladder import build_ladder, plan_ladder
from hevcq.media.model import EncodePlan, Skip
from hevcq.media.picshape import main_picture
from hevcq.media.probe import probe
from hevcq.media.quality import score
from hevcq.media.splice import straighten
from hevcq.metadata import META_CLIENT_SKIPS
from hevcq.pools import Pool, load_farm
from hevcq.worker.precheck import confirmed_skip
from hevcq.worker.runner import JobContext, JobRunner, JobSpec
from tests.conftest import fast_pools
from tests.e2e.farmkit import hevcq_cli, pool_dir
from tests.e2e.test_crfsearch import run_job
from tests.e2e.test_media import plan_for
from tests.fakes import FakeStore

pytestmark = pytest.mark.e2e

PART_S = 2
FPS = 25


def _ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _part(path: Path, size: str) -> None:
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={PART_S}"),
        *("-f", "lavfi", "-i", f"sine=duration={PART_S}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS)),
        *("-c:a", "aac", "-f", "mpegts", str(path)),
    )


@pytest.fixture(scope="module")
def turned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 320x180, then 2 s at 180x320, on one clock as a worker puts them."""
    folder = tmp_path_factory.mktemp("turned")
    first, second = folder / "landscape.ts", folder / "portrait.ts"
    _part(first, "320x180")
    _part(second, "180x320")
    joined = folder / "turned.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    assert straighten(find_ffmpeg(), joined, stop=threading.Event(), stall_timeout_s=60)
    return joined


def _encode(src: Path, dst: Path, plan: EncodePlan, *, vf: str | None = None) -> bytes:
    """Encode as a worker does; ``vf``: this video filter in place of the plan's ("" none)."""
    args = build_args(find_ffmpeg(), src, dst, plan, threads=1)
    if vf is not None:
        at = args.index("-filter:v:0")
        args[at : at + 2] = ["-filter:v:0", vf] if vf else []
    run_ffmpeg(args, on_progress=None, stop=threading.Event(), stall_timeout_s=60)
    return dst.read_bytes()


def _luma(frame: av.VideoFrame, x0: int, x1: int) -> float:
    """The mean luma of columns ``x0`` to ``x1`` (excluded) of ``frame``."""
    plane = frame.reformat(format="gray").planes[0]
    data = bytes(plane)
    rows = [data[y * plane.line_size + x0 : y * plane.line_size + x1] for y in range(frame.height)]
    return sum(sum(r) for r in rows) / (len(rows) * (x1 - x0))


def _sides(path: Path, at_s: float) -> tuple[tuple[int, int], float, float]:
    """The size of the frame shown at ``at_s``, and the mean luma of its outer eighths and
    of its middle."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= at_s:
                w = frame.width
                edge = (_luma(frame, 0, w // 8) + _luma(frame, w - w // 8, w)) / 2
                return (w, frame.height), edge, _luma(frame, w * 3 // 8, w * 5 // 8)
    raise AssertionError(f"no frame at {at_s} s in {path}")


def test_a_portrait_part_keeps_its_shape_in_a_landscape_output(
    turned: Path, tmp_path: Path
) -> None:
    plan = plan_for(turned, "hevc")
    assert (plan.width, plan.height, plan.source_size) == (320, 180, (320, 180))
    out = tmp_path / "out.mp4"
    _encode(turned, out, plan)
    size, edge, middle = _sides(out, 0.5)
    assert size == (320, 180)
    assert edge > 40  # the landscape part fills the frame
    assert middle > 40
    size, edge, middle = _sides(out, PART_S + 0.5)
    assert size == (320, 180)
    assert edge < 20, edge  # black each side: the portrait picture is 100x180 in the middle
    assert middle > 40
    # Stretched, as before, the same frame filled the width.
    stretched = tmp_path / "stretched.mp4"
    _encode(turned, stretched, plan, vf="")
    assert _sides(stretched, PART_S + 0.5)[1] > 40


def test_frames_of_the_first_size_come_out_as_they_did(tmp_path: Path) -> None:
    src = tmp_path / "landscape.ts"
    _part(src, "320x180")
    plan = plan_for(src, "hevc")
    # As it is: the same bytes as with no filter at all.
    fitted = _encode(src, tmp_path / "a.mp4", plan)
    assert fitted == _encode(src, tmp_path / "b.mp4", plan, vf="")
    # Scaled: the same bytes as a plain scale.
    half = dataclasses.replace(plan, width=160, height=90, scale=True)
    scaled = _encode(src, tmp_path / "c.mp4", half)
    assert scaled == _encode(src, tmp_path / "d.mp4", half, vf="scale=160:90:flags=lanczos")
    # An odd-sized source's last row and column cropped: the same bytes as a plain crop.
    odd = dataclasses.replace(plan, width=318, height=178, crop=True)
    cropped = _encode(src, tmp_path / "e.mp4", odd)
    assert cropped == _encode(src, tmp_path / "f.mp4", odd, vf="crop=318:178:0:0")


def test_a_ladders_rungs_keep_the_portrait_parts_shape(turned: Path, tmp_path: Path) -> None:
    variants = build_ladder(find_ffmpeg(), turned, tmp_path / "hls", probe(turned))
    assert (variants[0].width, variants[0].height) == (320, 180)
    rung = tmp_path / "rung.mp4"
    top = tmp_path / "hls" / "0"
    rung.write_bytes(
        b"".join(p.read_bytes() for p in [top / "init_0.mp4", *sorted(top.glob("*.m4s"))])
    )
    _, edge, middle = _sides(rung, 0.5)
    assert edge > 40
    assert middle > 40
    _, edge, middle = _sides(rung, PART_S + 0.5)
    assert edge < 20, edge
    assert middle > 40


def test_a_fitted_output_is_scored_against_its_source_fitted_the_same_way(
    turned: Path, tmp_path: Path
) -> None:
    plan = plan_for(turned, "hevc")
    out = tmp_path / "out.mp4"
    _encode(turned, out, dataclasses.replace(plan, crf=18))
    got = score(find_ffmpeg(), turned, out, neg=False)
    assert got.frames == 2 * PART_S * FPS
    # Against the source stretched, the portrait part's frames scored far lower.
    assert got.low > 80, got


def test_the_fit_keeps_the_shape_shown_for_non_square_output_pixels(tmp_path: Path) -> None:
    # A 720x576 output of 16:9 pixels (64:45) is shown 1024x576: a 4:3 frame fills its
    # height and 540 of its 720 stored pixels across, 90 black each side.
    out = tmp_path / "sd.mkv"
    chain = fit_picture(720, 576, first=(720, 576), aspect=Fraction(64, 45))
    _ffmpeg(
        *("-f", "lavfi", "-i", "testsrc2=size=640x480:rate=25:duration=0.2"),
        *("-vf", chain, "-c:v", "ffv1", str(out)),
    )
    size, edge, middle = _sides(out, 0)
    assert size == (720, 576)
    assert edge < 20, edge
    assert middle > 40


# --- a recording that changes size: made at the size it shows longest ------------------


def _vp(path: Path, parts: list[tuple[str, float]], codec: str) -> Path:
    """A WebM as a browser records a call: parts of these sizes and lengths one after
    the other, the header saying the first size only."""
    names = []
    for n, (size, seconds) in enumerate(parts):
        part = path.with_name(f"{path.stem}-{n}.webm")
        _ffmpeg(
            *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={seconds}"),
            *("-c:v", codec, "-deadline", "realtime", "-cpu-used", "8", "-b:v", "3M"),
            *("-f", "webm", str(part)),
        )
        names.append(part)
    listing = path.with_name(f"{path.stem}.txt")
    listing.write_text("".join(f"file '{p}'\n" for p in names))
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", "-live", "1", str(path))
    return path


@pytest.mark.parametrize("codec", ["libvpx", "libvpx-vp9"])
def test_a_call_recording_that_starts_small_is_made_at_its_main_size(
    tmp_path: Path, codec: str
) -> None:
    src = _vp(tmp_path / "call.webm", [("320x180", 1), ("640x360", 3)], codec)
    header = probe(src)
    assert header.main_video is not None
    assert (header.main_video.width, header.main_video.height) == (320, 180)
    info = main_picture(src, header)
    assert info.main_video is not None
    assert (info.main_video.width, info.main_video.height) == (640, 360)
    # A ladder of it tops out at 360p, not 180p.
    ladder = plan_ladder(info)
    assert ladder is not None
    assert (ladder.rungs[0].width, ladder.rungs[0].height) == (640, 360)
    # A pool's output is 640x360, its first second fitted in (the same shape: scaled up).
    assert _encoded_size(tmp_path, src, "vp8", "vp9") == (640, 360)


def test_a_short_change_of_size_leaves_the_first(tmp_path: Path) -> None:
    src = _vp(tmp_path / "call.webm", [("640x360", 3), ("320x180", 1)], "libvpx")
    info = main_picture(src, probe(src))
    assert info.main_video is not None
    assert (info.main_video.width, info.main_video.height) == (640, 360)
    assert info.main_video.sized_by_keyframes


def test_keyframes_that_claim_a_huge_picture_make_a_skip_with_its_reason(tmp_path: Path) -> None:
    # A hostile upload: its second keyframe's header rewritten to claim 16000x16000 (the
    # first left alone, which the probe decodes). The plan follows the claim as it would
    # a header's, and the pool skips the file, saying why, rather than asking an encoder
    # for a picture no stream may hold.
    src = _vp(tmp_path / "call.webm", [("320x180", 1), ("320x180", 3)], "libvpx")
    data = bytearray(src.read_bytes())
    first = data.find(b"\x9d\x01\x2a")
    at = data.find(b"\x9d\x01\x2a", first + 7)
    assert 0 < first < at
    data[at + 3 : at + 7] = (16000).to_bytes(2, "little") * 2
    src.write_bytes(bytes(data))
    info = main_picture(src, probe(src))
    assert info.main_video is not None
    assert (info.main_video.width, info.main_video.height) == (16000, 16000)
    hevc = Pool.model_validate(
        {"name": "q", "applies": {"source_codecs": ["vp8"]}, "encode": {"codec": "hevc"}}
    )
    skip = decide(info, hevc, "call.webm")
    assert isinstance(skip, Skip)
    assert "larger than any video stream may hold" in skip.reason


@pytest.fixture(scope="module")
def call_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VP8 call recording: 1 s at 320x180, then 2 s at 1280x720; its header says 320x180."""
    folder = tmp_path_factory.mktemp("call")
    return _vp(folder / "call.webm", [("320x180", 1), ("1280x720", 2)], "libvpx")


def test_an_ingest_makes_the_720p_rendition_of_a_call_recording_that_starts_small(
    tmp_path: Path, call_720p: Path
) -> None:
    # The client decides its pools from the size the recording shows longest, as the
    # worker does: it used to read the header's 320x180 and skip the 720p pool as
    # "smaller than 720p", so no rendition was ever made.
    pool_dir(tmp_path, ("720p",))
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    shutil.copy(call_720p, lib / "call.webm")
    run = hevcq_cli(tmp_path, "ingest", str(lib), "--out", str(out), "--no-dashboard")
    assert run.returncode == 0, run.stdout + run.stderr
    made = [p for p in (out / "720p").iterdir() if p.suffix == ".mkv"]  # a WebM's outputs
    assert [p.name for p in made] == ["call.720p.mkv"], run.stdout
    video = probe(made[0]).main_video
    assert video is not None
    assert (video.codec, video.width, video.height) == ("hevc", 1280, 720)


def test_a_worker_does_not_confirm_a_skip_from_a_vp8_header(
    tmp_path: Path, call_720p: Path
) -> None:
    # An upload the client (an older one) said the 720p pool skips: its header's 320x180
    # agrees, but a header states only the first keyframe's size, so the worker downloads
    # it and decides from every keyframe.
    pools = load_farm(fast_pools(tmp_path))
    data = call_720p.read_bytes()
    store = FakeStore()
    store.add("TODO/call.webm", etag="e1", data=data, meta={META_CLIENT_SKIPS: "720p"})
    assert confirmed_skip(store, "TODO/call.webm", "e1", pools["720p"]) is None
    key = JobKey("TODO/call.webm", "720p", "e1", pools["720p"].settings_hash())
    spec = JobSpec(key, pools["720p"], "media", "DONE/720p/call.720p.mp4", len(data))
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=60
    )
    result = runner.run(spec, JobContext())
    assert result.outcome == "done", result.reason
    assert _made_size(tmp_path, store, "DONE/720p/call.720p.mp4") == (1280, 720)


def _encoded_size(tmp_path: Path, src: Path, *codecs: str) -> tuple[int, int]:
    """The coded size of a worker's HEVC output of ``src`` (a pool taking ``codecs``)."""
    pool = Pool.model_validate(
        {
            "name": "q",
            "applies": {"source_codecs": list(codecs)},
            "encode": {"codec": "hevc", "preset": "ultrafast"},
        }
    )
    result, _, store = run_job(tmp_path, src, pool)
    assert result.outcome == "done", result.reason
    return _made_size(tmp_path, store, "DONE/q/a.mp4")


def _made_size(tmp_path: Path, store: FakeStore, key: str) -> tuple[int, int]:
    """The coded size of the output a job stored under ``key``."""
    out = tmp_path / "made.mp4"
    out.write_bytes(store.data[key])
    video = probe(out).main_video
    assert video is not None
    return video.width, video.height


def test_a_scan_reads_keyframes_only_where_a_pool_would_skip_by_the_header(
    tmp_path: Path, call_720p: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A library of HD WebM is not read through at scan: a 1280x720 header already makes
    # the 720p pool encode. A call recording whose header says 320x180 is read, and so is
    # one scanned before a rendition pool was chosen, once one is.
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(call_720p, lib / "call.webm")
    _vp(tmp_path / "hd.webm", [("1280x720", 1), ("320x180", 2)], "libvpx")
    shutil.copy(tmp_path / "hd.webm", lib / "hd.webm")
    read: list[str] = []
    real = picshape.shown_sizes

    def counted(path: Path, *args: Any) -> dict[picshape.Shape, float] | None:
        read.append(path.name)
        return real(path, *args)

    monkeypatch.setattr(picshape, "shown_sizes", counted)
    pools = load_farm(fast_pools(tmp_path))
    with Catalog(tmp_path / "state" / "lib.sqlite3") as store:
        first = scan(lib, [pools["hevc"]], store, workers=2)  # no rendition pool: nothing read
        assert read == []
        assert [e.rel for e in first.entries] == ["call.webm", "hd.webm"]
        second = scan(lib, [pools["hevc"], pools["720p"]], store, workers=2)
    assert read == ["call.webm"]
    decisions = {e.rel: e.decisions["720p"] for e in second.entries}
    call = decisions["call.webm"]
    assert isinstance(call, EncodePlan)
    assert (call.width, call.height) == (1280, 720)
    # Mostly 320x180 after its first second, but a header of 1280x720: the client encodes
    # and the worker, which reads every keyframe, decides again (it will skip it).
    assert isinstance(decisions["hd.webm"], EncodePlan)


def _ts_part(path: Path, size: str, seconds: int, codec: str, *extra: str) -> Path:
    _ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=duration={seconds}"),
        *("-c:v", codec, "-g", str(FPS), *extra, "-c:a", "mp2", "-f", "mpegts", str(path)),
    )
    return path


@pytest.mark.parametrize("codec", ["libx264", "mpeg2video"])
def test_a_recording_that_starts_on_a_smaller_picture_is_made_at_its_main_size(
    tmp_path: Path, codec: str
) -> None:
    # A broadcast recording that begins on the end of a programme at a smaller size (an
    # SD channel's 544 pixels before its 720, a 1440-wide HD programme before a 1920 one):
    # its header says the first size, and the whole output was made at it.
    first = _ts_part(tmp_path / "a.ts", "320x180", 1, codec)
    second = _ts_part(tmp_path / "b.ts", "640x360", 3, codec)
    src = tmp_path / "recording.ts"
    src.write_bytes(first.read_bytes() + second.read_bytes())
    assert straighten(find_ffmpeg(), src, stop=threading.Event(), stall_timeout_s=60)
    header = probe(src).main_video
    assert header is not None
    assert (header.width, header.height) == (320, 180)
    info = main_picture(src, probe(src))
    assert info.main_video is not None
    assert (info.main_video.width, info.main_video.height) == (640, 360)
    assert _encoded_size(tmp_path, src, "h264", "mpeg2video") == (640, 360)


def test_the_main_part_s_pixel_aspect_comes_with_its_size(tmp_path: Path) -> None:
    # An SD programme's start, 720x576 stored for 16:9 (pixels 64:45), before an HD one in
    # square pixels: the plan takes the HD part's pixels as well as its size. Taking the
    # SD part's pixel aspect made a ladder of 1820x720 and a file shown as wide.
    first = _ts_part(tmp_path / "a.ts", "720x576", 1, "libx264", "-vf", "setsar=64/45")
    second = _ts_part(tmp_path / "b.ts", "1280x720", 3, "libx264")
    src = tmp_path / "recording.ts"
    src.write_bytes(first.read_bytes() + second.read_bytes())
    assert straighten(find_ffmpeg(), src, stop=threading.Event(), stall_timeout_s=60)
    header = probe(src).main_video
    assert header is not None
    assert (header.width, header.height, header.sar_num, header.sar_den) == (720, 576, 64, 45)
    info = main_picture(src, probe(src))
    video = info.main_video
    assert video is not None
    assert (video.width, video.height, video.sar_num, video.sar_den) == (1280, 720, 1, 1)
    ladder = plan_ladder(info)
    assert ladder is not None
    assert (ladder.rungs[0].width, ladder.rungs[0].height) == (1280, 720)


def test_an_all_keyframe_recording_is_decoded_once_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _ts_part(tmp_path / "intra.ts", "320x180", 4, "mpeg2video", "-g", "1")
    decoded: list[object] = []
    real = picshape._Decoder.sizes

    def counted(self: Any, packet: Any, at: float) -> list[tuple[float, picshape.Shape]]:
        decoded.append(packet)
        return real(self, packet, at)

    monkeypatch.setattr(picshape._Decoder, "sizes", counted)
    shown = picshape.shown_sizes(src, 0, None)
    assert shown is not None
    assert list(shown) == [(320, 180, 1, 1)]
    assert 3 <= len([p for p in decoded if p is not None]) <= 5  # of 100 keyframes
    # Any other container is not decoded at all: its header is all the encode follows.
    mp4 = tmp_path / "intra.mp4"
    _ffmpeg("-i", str(src), "-c", "copy", str(mp4))
    assert picshape.shown_sizes(mp4, 0, None) is None
