"""Generated benchmark sources, made once with ffmpeg and cached under benchmarks/.cache."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from hevcq.library.calibrate import CONTENT, content_args, make_content
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.samples import make_clip

CACHE = Path(__file__).resolve().parent / ".cache"
GiB = 1024**3


def _folder(name: str) -> Path:
    folder = CACHE / name
    folder.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # generated media never reaches git
    return folder


def _scratch(path: Path) -> Path:
    """A temporary name next to ``path`` that no other process making it shares.

    Test workers and benchmarks may make the same cached clip at once: each writes its own
    file and the last rename wins with identical bytes.
    """
    return path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")


def _ffmpeg(args: list[str], timeout_s: float = 600) -> None:
    cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args]
    subprocess.run(cmd, check=True, timeout=timeout_s)


def clip(width: int, height: int, seconds: float, fps: int = 24) -> Path:
    """An H.264 + AAC test-pattern clip (the shape phones and cameras upload)."""
    path = _folder("clips") / f"testsrc2-{width}x{height}-{seconds:g}s-{fps}fps.mp4"
    if not path.exists():
        tmp = _scratch(path)
        make_clip(tmp, width=width, height=height, seconds=seconds, fps=fps, container="mp4")
        tmp.replace(path)
    return path


def content_clip(kind: str, seconds: float, width: int = 1920, height: int = 1080) -> Path:
    """One content class (``library.calibrate.CONTENT``) as a high-quality H.264 + AAC source."""
    path = _folder("content") / f"{kind}-{width}x{height}-{seconds:g}s.mp4"
    if not path.exists():
        tmp = _scratch(path)
        make_content(tmp, kind, seconds, size=(width, height))
        tmp.replace(path)
    return path


def generated(folder: str, name: str, ffmpeg_args: Callable[[Path], list[str]]) -> Path:
    """A source made once by ffmpeg (``ffmpeg_args(out)``, after the binary) and cached
    under ``folder``."""
    path = _folder(folder) / name
    if not path.exists():
        tmp = _scratch(path)
        subprocess.run(
            [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", *ffmpeg_args(tmp)],
            check=True,
            timeout=3600,
        )
        tmp.replace(path)
    return path


def big_source(target_bytes: int = GiB) -> Path:
    """A lossless-noise 720p H.264 file of about ``target_bytes``: a segment repeated."""
    folder = _folder("big")
    path = folder / f"noise-720p-{target_bytes // (1024 * 1024)}MiB.mp4"
    if path.exists():
        return path
    seg = folder / "noise-720p-2s.mp4"
    if not seg.exists():
        # Per-pixel noise does not compress, so -qp 0 gives ~35 MB/s of valid H.264 cheaply.
        _ffmpeg(
            [
                "-f",
                "lavfi",
                "-i",
                "nullsrc=size=1280x720:rate=24,geq=random(1)*255:128:128",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=2",
                "-t",
                "2",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-qp",
                "0",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-f",
                "mp4",
                f"file:{seg}",
            ]
        )
    repeats = max(1, -(-target_bytes // seg.stat().st_size))
    tmp = _scratch(path)
    _ffmpeg(
        [
            "-stream_loop",
            str(repeats - 1),
            "-i",
            f"file:{seg}",
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            f"file:{tmp}",
        ]
    )
    tmp.replace(path)
    return path


def mixed_clip(seconds: float, width: int, height: int, fps: int = 24) -> Path:
    """Scenes of each content class in turn (``library.calibrate.CONTENT``: static,
    moderate, high), a third of ``seconds`` each, as H.264 + AAC: a source whose
    complexity changes from scene to scene, as a real video's does."""
    scene = seconds / 3
    parts = [
        f"{CONTENT[kind].format(w=width, h=height, fps=fps)},trim=duration={scene:g}[v{n}]"
        for n, kind in enumerate(("static", "moderate", "high"))
    ]
    graph = ";".join(parts) + ";[v0][v1][v2]concat=n=3:v=1:a=0[out0]"
    return generated(
        "content",
        f"mixed-{width}x{height}-{seconds:g}s.mp4",
        lambda out: ["-y", *content_args(graph, seconds, out)],
    )


def _texture(width: int, height: int, fps: int) -> str:
    """A lavfi graph (output ``[tex]``) of one still picture ``width`` x ``height`` with a
    natural picture's spread of detail: large soft shapes, finer ones on them and a little
    fine texture (foliage or a meadow seen from above), coloured by a gradient. Made
    once, then repeated (``loop``) without cost."""
    layers = []
    for name, div, amount, sigma in (("a", 16, 100, 10), ("b", 4, 80, 2), ("c", 1, 60, 0.5)):
        w, h = max(2, width // div), max(2, height // div)
        layers.append(
            f"color=c=gray:s={w}x{h}:r={fps}:d=1,format=gray,noise=alls={amount}:allf=u,"
            f"scale={width}:{height}:flags=bicubic,gblur=sigma={sigma}[{name}]"
        )
    return ";".join(
        [
            *layers,
            "[a][b]blend=all_mode=overlay:all_opacity=0.6[ab]",
            "[ab][c]blend=all_mode=softlight:all_opacity=0.5,eq=contrast=1.8,format=yuv444p[l]",
            f"gradients=s={width}x{height}:r={fps}:d=1:c0=0x3a6b35:c1=0xc8a165:c2=0x4a7fb5:"
            "n=3:type=radial[g]",
            "[l][g]blend=all_mode=multiply:c0_opacity=0:c1_mode=normal:c1_opacity=1:"
            "c2_mode=normal:c2_opacity=1,trim=end_frame=1,loop=loop=-1:size=1,"
            f"setpts=N/{fps}/TB[tex]",
        ]
    )


# Camera-like content, unlike the test patterns of ``CONTENT``: most of a real picture is
# smooth or softly textured, and a fixed ladder's bitrates are sized for the busiest of it.
NATURAL_KINDS = ("pan", "talk")


def natural_clip(kind: str, seconds: float, width: int, height: int, fps: int = 24) -> Path:
    """Camera-like content as H.264 + AAC, with a sensor's light grain:

    - ``pan``: a slow pan across a textured landscape (``_texture`` at twice the frame's
      size, crossed once in ``seconds``);
    - ``talk``: a still, softly focused background with one textured figure swaying in
      front of it, as in an interview or a video call.
    """
    grain = "format=yuv420p,noise=c0s=3:c0f=t"
    if kind == "pan":
        graph = (
            f"{_texture(2 * width, 2 * height, fps)};[tex]crop={width}:{height}:"
            f"x='(in_w-out_w)*t/{seconds:g}':y='(in_h-out_h)*0.3*t/{seconds:g}',{grain}[out0]"
        )
    elif kind == "talk":
        fw, fh = width // 4 // 2 * 2, height // 2 // 2 * 2
        graph = (
            f"{_texture(width, height, fps)};[tex]split[bg0][fg0];[bg0]gblur=sigma=6[bg];"
            f"[fg0]crop={fw}:{fh}:0:0[fg];"
            f"[bg][fg]overlay=x='(W-w)/2+W/12*sin(2*PI*t/5)':y='(H-h)/2+H/30*sin(2*PI*t/3)',"
            f"{grain}[out0]"
        )
    else:
        raise ValueError(f"no natural clip {kind!r}")
    return generated(
        "content",
        f"{kind}-{width}x{height}-{seconds:g}s.mp4",
        lambda out: ["-y", *content_args(graph, seconds, out)],
    )
