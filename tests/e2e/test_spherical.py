"""A 360-degree camera's video keeps its spherical mapping in every output.

Such a camera (or the app that stitches its lenses) records an equirectangular picture
and says so in the file (Google's ``sv3d`` box in MP4, ``Projection`` in Matroska);
players and sites show it as a sphere only while the file says so. ffmpeg left it out of
every MP4 it wrote (its muxer writes the box only when allowed past the standard) and
out of every picture it scaled, so the outputs played as flat, stretched panoramas.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Any

import av
import pytest
from av.sidedata.sidedata import Type

from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media.decide import decide
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import Rung, build_ladder
from hevcq.media.model import EncodePlan
from hevcq.media.probe import probe
from hevcq.media.verify import shape_problems
from hevcq.pools import Pool
from tests.e2e.test_crfsearch import run_job

pytestmark = pytest.mark.e2e


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes) -> bytes:
    return _box(kind, b"\0\0\0\0" + payload)  # version 0, no flags


SV3D = _box(
    b"sv3d",
    _full_box(b"svhd", b"a camera\0")
    + _box(
        b"proj",
        _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))  # yaw, pitch, roll
        + _full_box(b"equi", struct.pack(">IIII", 0, 0, 0, 0)),  # no bounds cropped
    ),
)
# Where the video track's sample entry sits: moov > trak > mdia > minf > stbl > stsd.
PATH = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")


def _say_spherical(data: bytearray) -> bytearray:
    """``data`` (an MP4 with its index after the media, one video track first) with an
    ``sv3d`` box added to its video sample entry, as a 360-degree camera writes it."""
    parents: list[int] = []
    start, end = 0, len(data)
    for kind in PATH:
        at = start
        while at < end:
            size, found = struct.unpack(">I4s", data[at : at + 8])
            if found == kind:
                break
            at += size
        else:
            raise AssertionError(f"no {kind!r} box")
        parents.append(at)
        start, end = at + 8 + (8 if kind == b"stsd" else 0), at + size
    entry_size = struct.unpack(">I", data[start : start + 4])[0]
    parents.append(start)  # the sample entry itself
    data[start + entry_size : start + entry_size] = SV3D
    for at in parents:
        (size,) = struct.unpack(">I", data[at : at + 4])
        data[at : at + 4] = struct.pack(">I", size + len(SV3D))
    return data


@pytest.fixture(scope="module")
def sphere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of a 640x320 equirectangular picture that says so, with sound."""
    folder = tmp_path_factory.mktemp("sphere")
    flat = folder / "flat.mp4"
    subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=640x320:rate=25:duration=2"),
            *("-f", "lavfi", "-i", "sine=duration=2"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-c:a", "aac", str(flat)),
        ],
        check=True,
    )
    path = folder / "sphere.mp4"
    path.write_bytes(_say_spherical(bytearray(flat.read_bytes())))
    return path


def _mapping(path: Path) -> bool:
    """Whether the first frame of ``path`` says it is an equirectangular sphere."""
    with av.open(str(path)) as container:
        side: Any = next(container.decode(video=0)).side_data
        return side.get(Type.SPHERICAL) is not None


def _pool(**encode: str | int) -> Pool:
    applies: dict[str, object] = {"source_codecs": ["h264"]}
    if "target_height" in encode:
        applies["target_height"] = encode.pop("target_height")
    return Pool.model_validate(
        {"name": "q", "applies": applies, "encode": {"preset": "ultrafast", **encode}}
    )


def test_the_probe_reads_the_mapping(sphere: Path, tmp_path: Path) -> None:
    video = probe(sphere).main_video
    assert video is not None
    assert video.spherical
    assert _mapping(sphere)
    flat = tmp_path / "flat.mp4"
    subprocess.run(
        [find_ffmpeg(), "-loglevel", "error", "-i", str(sphere), "-c", "copy", str(flat)],
        check=True,
    )
    assert not _mapping(flat)  # a plain copy to MP4 already leaves it out
    assert probe(flat).main_video == video.__class__(**{**vars(video), "spherical": False})


@pytest.mark.parametrize(
    ("encode", "size"),
    [
        ({}, (640, 320)),  # the hevc pool's kind: the source's size, in MP4
        ({"container": "mkv"}, (640, 320)),
        ({"target_height": 240}, (480, 240)),  # a rendition: scaled
        ({"codec": "av1", "container": "webm", "preset": "12"}, (640, 320)),
    ],
)
def test_an_output_keeps_the_mapping(
    sphere: Path, tmp_path: Path, encode: dict[str, str | int], size: tuple[int, int]
) -> None:
    result, _, store = run_job(tmp_path, sphere, _pool(**encode))
    assert result.outcome == "done", result.reason
    out = tmp_path / "out"
    out.write_bytes(store.data["DONE/q/a.mp4"])
    video = probe(out).main_video
    assert video is not None
    assert (video.width, video.height) == size
    assert _mapping(out)


@pytest.mark.parametrize("rungs", [None, (Rung(480, 240, 1000), Rung(320, 160, 500))])
def test_a_ladders_top_rung_keeps_the_mapping(
    sphere: Path, tmp_path: Path, rungs: tuple[Rung, ...] | None
) -> None:
    # Its own rungs (the top at the source's size), and rungs all scaled down: ffmpeg
    # gives the mapping to one output stream, the top rung's. The others go without.
    variants = build_ladder(find_ffmpeg(), sphere, tmp_path / "ladder", probe(sphere), rungs=rungs)
    top = tmp_path / "ladder" / "0"
    assert (variants[0].width, variants[0].height) == ((640, 320) if rungs is None else (480, 240))
    joined = tmp_path / "top.mp4"
    joined.write_bytes(
        next(top.glob("init_*.mp4")).read_bytes() + sorted(top.glob("*.m4s"))[0].read_bytes()
    )
    assert _mapping(joined)


def test_an_output_that_lost_the_mapping_is_refused(sphere: Path, tmp_path: Path) -> None:
    plan = decide(probe(sphere), _pool(), "sphere.mp4")
    assert isinstance(plan, EncodePlan)
    assert plan.spherical
    flat = tmp_path / "flat.mp4"
    subprocess.run(
        [
            *(find_ffmpeg(), "-loglevel", "error", "-i", str(sphere)),
            *("-c:v", "libx265", "-preset", "ultrafast", "-c:a", "copy", str(flat)),
        ],
        check=True,
    )
    problems = shape_problems(probe(flat), plan)
    assert "its source's spherical (360-degree) mapping is missing" in problems


def test_a_replacement_that_lost_the_mapping_is_refused(sphere: Path, tmp_path: Path) -> None:
    # An output made before mappings were kept decodes and plays, flat: in the original's
    # place the mapping would be gone for good. One that keeps it may stand in.
    flat, kept = tmp_path / "flat.mp4", tmp_path / "kept.mp4"
    for out, strict in ((flat, []), (kept, ["-strict", "unofficial"])):
        subprocess.run(
            [
                *(find_ffmpeg(), "-loglevel", "error", "-i", str(sphere)),
                *("-c:v", "libx265", "-preset", "ultrafast", "-c:a", "copy", *strict, str(out)),
            ],
            check=True,
        )
    with pytest.raises(ReplaceRefused, match=r"spherical \(360-degree\) mapping: it would play"):
        verify_replacement(flat, sphere, allow_larger=True)
    verify_replacement(kept, sphere, allow_larger=True)
