"""What an ffmpeg binary is (its version and encoders), and which pools it cannot serve."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

from hevcq.errors import ConfigError
from hevcq.formats import AUDIO_ENCODERS, VIDEO_CODECS
from hevcq.media.ffmpeg import ffmpeg_build, find_ffmpeg
from hevcq.pools import Quality, load_farm, load_pool

WORKERS = Path(__file__).resolve().parents[2] / "workers"


# The filters of ffmpeg 5.1 that hevcq's sources may need, as its -filters lists them.
SOURCE_FILTERS = (
    " TS bwdif  V->V  Deinterlace.\\n .S zscale  V->V  Scale.\\n .S tonemap  V->V  Tone.\\n"
    " TS premultiply  VV->V  Premultiply.\\n ... showinfo  V->V  Show.\\n"
)
# Its decoders of a VP8/VP9 stream's alpha.
ALPHA_DECODING = " V....D libvpx  VP8\\n V....D libvpx-vp9  VP9\\n"


def fake_ffmpeg(tmp_path: Path, version: str, encoders: str, **lists: str) -> str:
    """A script answering as an ffmpeg with these encoders; ``filters`` and ``decoders``
    replace the lists it gives by default (all that hevcq's sources may need)."""
    filters = lists.get("filters", SOURCE_FILTERS)
    decoders = lists.get("decoders", ALPHA_DECODING)
    script = tmp_path / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$2" in\n  -version) printf %s "{version}" ;;\n'
        f'  -encoders) printf "{encoders}" ;;\n'
        f'  -decoders) printf "{decoders}" ;;\n'
        f'  -filters) printf "{filters}" ;;\nesac\n'
    )
    script.chmod(0o755)
    return str(script)


def test_the_default_ffmpeg_is_the_pinned_build_with_every_encoder_in_the_table() -> None:
    build = ffmpeg_build(find_ffmpeg())
    assert build.path == imageio_ffmpeg.get_ffmpeg_exe()
    assert build.version == imageio_ffmpeg.get_ffmpeg_version()
    assert {c.encoder for c in VIDEO_CODECS.values()} <= build.encoders
    assert set(AUDIO_ENCODERS.values()) <= build.encoders
    av1 = load_pool(WORKERS / "optional" / "av1.yaml")
    assert build.missing([*load_farm(WORKERS).values(), av1]) == []


def test_an_ffmpeg_without_av1_cannot_serve_the_av1_pool(tmp_path: Path) -> None:
    path = fake_ffmpeg(
        tmp_path,
        "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024",
        " V....D libx265  HEVC\\n A....D aac  AAC\\n",
    )
    build = ffmpeg_build(path)
    assert build.version == "5.1.6-0+deb12u1"
    files = [p for p in load_farm(WORKERS).values() if p.ladder is None]
    assert build.missing(files) == []
    assert build.missing([load_pool(WORKERS / "optional" / "av1.yaml")]) == [
        f"pool av1 needs the libopus encoder, which the ffmpeg at {path} (5.1.6-0+deb12u1) lacks",
        f"pool av1 needs the libsvtav1 encoder, which the ffmpeg at {path} (5.1.6-0+deb12u1) lacks",
    ]


def test_an_ffmpeg_without_libvmaf_cannot_serve_a_pool_with_a_quality_target(
    tmp_path: Path,
) -> None:
    path = fake_ffmpeg(
        tmp_path, "ffmpeg version 7.1 Copyright", " V....D libx265  HEVC\\n A....D aac  AAC\\n"
    )
    hevc = load_pool(WORKERS / "hevc.yaml")
    scored = hevc.model_copy(update={"quality": Quality(vmaf=95)})
    build = ffmpeg_build(path)
    assert build.missing([hevc]) == []
    assert build.missing([scored]) == [
        f"pool hevc scores quality with libvmaf, which the ffmpeg at {path} (7.1) lacks"
    ]
    assert ffmpeg_build(find_ffmpeg()).missing([scored]) == []  # the pinned build has it
    # An XPSNR target needs the xpsnr filter instead.
    xpsnr = hevc.model_copy(update={"quality": Quality(xpsnr=40)})
    assert build.missing([xpsnr]) == [
        f"pool hevc scores quality with xpsnr, which the ffmpeg at {path} (7.1) lacks"
    ]
    assert ffmpeg_build(find_ffmpeg()).missing([xpsnr]) == []


def _hevc_and_hls_missing(tmp_path: Path, **lists: str) -> tuple[list[str], str]:
    """What an ffmpeg 7.1 with every encoder of the ``hevc`` and ``hls`` pools, and
    ``lists`` in place of its default filters or decoders, lacks for them; and how each
    line names it."""
    encoders = " V....D libx265  HEVC\\n V....D libx264  H.264\\n A....D aac  AAC\\n"
    path = fake_ffmpeg(tmp_path, "ffmpeg version 7.1 Copyright", encoders, **lists)
    farm = load_farm(WORKERS)
    missing = ffmpeg_build(path).missing([farm["hevc"], farm["hls"]])
    return missing, f"the ffmpeg at {path} (7.1) lacks"


def test_an_ffmpeg_without_the_source_filters_cannot_serve_pools_that_may_need_them(
    tmp_path: Path,
) -> None:
    missing, where = _hevc_and_hls_missing(tmp_path, filters=" .S zscale  V->V  Scale.\\n")
    assert missing == [
        f"pool hevc needs the bwdif filter, which {where}",  # an interlaced source
        f"pool hevc needs the premultiply filter, which {where}",  # a transparent one
        f"pool hevc needs the showinfo filter, which {where}",  # is it? (HEVC with alpha)
        f"pool hls needs the bwdif filter, which {where}",
        f"pool hls needs the premultiply filter, which {where}",
        f"pool hls needs the showinfo filter, which {where}",
        f"pool hls needs the tonemap filter, which {where}",  # an HDR source's rungs
    ]


def test_an_ffmpeg_without_libvpx_cannot_serve_pools_that_take_transparent_webm(
    tmp_path: Path,
) -> None:
    missing, where = _hevc_and_hls_missing(tmp_path, decoders=" V....D libvpx  VP8\\n")
    assert missing == [
        f"pool hls needs the libvpx-vp9 decoder (a WebM's alpha), which {where}",
    ]  # the hevc pool takes H.264 alone
    assert "libvpx-vp9" in ffmpeg_build(find_ffmpeg()).decoders  # the pinned build has it


def test_a_binary_that_is_not_ffmpeg_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not say it is ffmpeg"):
        ffmpeg_build(fake_ffmpeg(tmp_path, "hello", ""))
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(ConfigError, match="cannot run ffmpeg at"):
        ffmpeg_build(str(broken))


def test_version_names_hevcq_and_its_ffmpeg() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hevcq", "--version"], capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("hevcq ")
    assert (
        lines[1]
        == f"ffmpeg {imageio_ffmpeg.get_ffmpeg_version()} ({imageio_ffmpeg.get_ffmpeg_exe()})"
    )


def test_a_worker_refuses_to_start_in_one_line_without_its_pools_encoders(tmp_path: Path) -> None:
    workers = tmp_path / "workers"
    workers.mkdir()
    (workers / "av1.yaml").write_text((WORKERS / "optional" / "av1.yaml").read_text())
    path = fake_ffmpeg(tmp_path, "ffmpeg version 5.1.6 Copyright", " V....D libx265  HEVC\\n")
    env = {
        **os.environ,
        "HEVCQ_WORKERS_DIR": str(workers),
        "HEVCQ_FFMPEG": path,
        "HEVCQ_BUCKET": "media",
        "COLUMNS": "400",  # the console wraps long lines at its width
    }
    done = subprocess.run(
        [sys.executable, "-m", "hevcq", "worker", "--pool", "av1"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    [line] = lines
    assert "pool av1 needs the libopus encoder" in line
    assert "(and 1 more)" in line
