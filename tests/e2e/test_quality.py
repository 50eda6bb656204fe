"""VMAF with both sides aligned, on real clips: the same picture scores the same however
it is stored (rotated, variable frame rate, another size), and what cannot be scored
says so instead of scoring low."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path

import pytest

from hevcq.errors import InterruptedJob, StalledError
from hevcq.media.ffmpeg import Watch, find_ffmpeg
from hevcq.media.quality import (
    MODEL_HD,
    Score,
    ScoringError,
    score,
    score_batch,
    xpsnr_score,
)
from hevcq.media.samples import make_clip
from tests.e2e.cutclips import cover_first
from tests.e2e.test_crfsearch import hdr_clip

pytestmark = pytest.mark.e2e


def ffmpeg(*args: str) -> None:
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def encode(src: Path, dst: Path, *extra: str, timing: tuple[str, ...] = ("passthrough",)) -> Path:
    """An HEVC encode as the hevc pool makes it: display rotation and timing kept."""
    ffmpeg(
        "-noautorotate",
        "-i",
        str(src),
        *extra,
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-crf",
        "30",
        "-x265-params",
        "log-level=error",
        "-fps_mode",
        *timing,
        str(dst),
    )
    return dst


def test_an_output_scored_against_itself_is_near_100(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "s.mp4", width=320, height=240, seconds=1)
    got = score(find_ffmpeg(), src, src)
    assert got.model == MODEL_HD
    assert got.mean > 97
    assert got.low > 90
    assert got.neg_mean is not None
    assert got.frames == 24


def test_a_rotated_phone_clip_scores_like_the_same_clip_unrotated(tmp_path: Path) -> None:
    flat = make_clip(tmp_path / "flat.mp4", width=320, height=180, seconds=2)
    turned = make_clip(tmp_path / "turned.mov", width=320, height=180, seconds=2, rotation=90)
    a = score(find_ffmpeg(), flat, encode(flat, tmp_path / "a.mp4"))
    b = score(find_ffmpeg(), turned, encode(turned, tmp_path / "b.mp4"))
    assert b.mean > 80
    assert abs(a.mean - b.mean) < 2


def test_a_variable_rate_source_scores_like_a_constant_rate_one(tmp_path: Path) -> None:
    cfr = make_clip(tmp_path / "cfr.mp4", width=320, height=180, seconds=3, fps=30)
    # A phone's timing: frames 20-45 ms apart, never on a fixed grid.
    vfr = tmp_path / "vfr.mp4"
    ffmpeg(
        "-i",
        str(cfr),
        "-vf",
        "setpts='(N/30+0.012*sin(N*1.7))/TB'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-crf",
        "10",
        "-an",
        str(vfr),
    )
    # Its encode made constant-rate, as a ladder makes it: every frame moves on the grid.
    made_cfr = encode(vfr, tmp_path / "vfr-out.mp4", timing=("cfr", "-r", "30"))
    a = score(find_ffmpeg(), cfr, encode(cfr, tmp_path / "cfr-out.mp4"))
    b = score(find_ffmpeg(), vfr, made_cfr)
    assert b.mean > 80
    assert abs(a.mean - b.mean) < 3


def test_a_slow_motion_clip_in_millisecond_ticks_is_compared_frame_for_frame(
    tmp_path: Path,
) -> None:
    # A phone's 120 fps slow motion, scored at 60 fps (the highest common rate): each
    # source frame 8.333 ms from the last, every other one on the line between two of the
    # score's frames. Matroska and WebM count time in milliseconds, so the same frames of
    # the encode sit at 8, 17, 25 ms, and the ties fell to the other side: an AV1 encode
    # at CRF 10 scored 89.7 (the worst 1 % 66) against 97.7 once both sides share a clock.
    src = make_clip(tmp_path / "slowmo.mp4", width=320, height=180, seconds=1, fps=120)
    in_mp4 = score(find_ffmpeg(), src, encode(src, tmp_path / "out.mp4"))
    in_mkv = score(find_ffmpeg(), src, encode(src, tmp_path / "out.mkv"))
    assert in_mp4.mean > 60
    assert abs(in_mp4.mean - in_mkv.mean) < 0.5
    assert abs(in_mp4.low - in_mkv.low) < 2


def test_a_rendition_is_scored_at_the_source_size(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "s.mp4", width=640, height=360, seconds=1)
    small = encode(src, tmp_path / "small.mp4", "-vf", "scale=320:180")
    got = score(find_ffmpeg(), src, small)
    assert 40 < got.mean < 99  # upscaled for scoring: lower, but a real score


def test_a_rendition_scored_at_its_own_size_measures_the_encode_not_the_downscale(
    tmp_path: Path,
) -> None:
    """At the source's size a half-size rendition stays far under 95 even at CRF 10 (the
    detail the downscale left out counts against it); at its own size the source is
    brought down with the encodes' scaler and the score measures the encode."""
    src = make_clip(tmp_path / "s.mp4", width=640, height=360, seconds=1)
    fine = tmp_path / "fine.mp4"
    ffmpeg(
        *("-i", str(src), "-vf", "scale=320:180:flags=lanczos", "-c:v", "libx265"),
        *("-preset", "ultrafast", "-crf", "10", "-x265-params", "log-level=error", str(fine)),
    )
    coarse = encode(src, tmp_path / "coarse.mp4", "-vf", "scale=320:180:flags=lanczos")
    at_source = score(find_ffmpeg(), src, fine)
    own = score(find_ffmpeg(), src, fine, own_size=True)
    assert at_source.mean < 92
    assert own.mean > 97
    assert score(find_ffmpeg(), src, coarse, own_size=True).mean < own.mean - 3
    # an output as large as its source compares at the source's size either way
    same = encode(src, tmp_path / "same.mp4")
    assert score(find_ffmpeg(), src, same, own_size=True).mean == pytest.approx(
        score(find_ffmpeg(), src, same).mean, abs=0.01
    )
    assert xpsnr_score(find_ffmpeg(), src, fine, own_size=True).mean > (
        xpsnr_score(find_ffmpeg(), src, fine).mean + 5
    )


def test_a_batch_scores_each_output_as_scoring_it_alone_does(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "s.mp4", width=640, height=360, seconds=1)
    outs = [
        encode(src, tmp_path / "small.mp4", "-vf", "scale=320:180"),
        encode(src, tmp_path / "same.mp4"),
        encode(src, tmp_path / "tiny.mp4", "-vf", "scale=160:90"),
    ]
    batch = score_batch(find_ffmpeg(), src, outs, subsample=3)
    alone = [score(find_ffmpeg(), src, out, subsample=3) for out in outs]
    assert [b.mean for b in batch] == pytest.approx([a.mean for a in alone], abs=0.01)
    assert [b.frames for b in batch] == [a.frames for a in alone]
    assert batch[2].mean < batch[0].mean < batch[1].mean  # in the order given
    assert all(b.neg_mean is None for b in batch)  # probes skip NEG
    with pytest.raises(ScoringError, match="HDR video"):
        score_batch(find_ffmpeg(), src, [*outs, hdr_clip(tmp_path)])


def test_an_output_stating_the_colours_its_unstated_source_is_shown_in_scores_as_the_same_pixels(
    tmp_path: Path,
) -> None:
    """A ladder's rungs state the BT.709 players take an unstated HD source for. Scored
    against the source as it is, ffmpeg converted the source as if it were BT.601 to
    meet the rung: the same pixels scored VMAF 48 against 87 unstated, and every such
    ladder's top rung read far under its target. Each side now states what players take
    it for, so only a real difference of colours is converted, and it counts."""
    src = make_clip(tmp_path / "s.mp4", width=1280, height=720, seconds=1)
    plain = encode(src, tmp_path / "plain.mp4")
    hd = "colorspace=bt709:color_primaries=bt709:color_trc=bt709"
    stated = encode(src, tmp_path / "stated.mp4", "-vf", f"setparams={hd}")
    ff = find_ffmpeg()
    assert score(ff, src, stated).mean == pytest.approx(score(ff, src, plain).mean, abs=0.01)
    assert xpsnr_score(ff, src, stated).mean == pytest.approx(
        xpsnr_score(ff, src, plain).mean, abs=0.01
    )
    batch = score_batch(ff, src, [plain, stated])
    assert batch[1].mean == pytest.approx(batch[0].mean, abs=0.01)
    # The same pixels stating BT.601: players show other colours, and the score sees them
    # (in XPSNR: VMAF, blind to colour and fond of contrast, does not).
    sd = "colorspace=smpte170m:color_primaries=smpte170m:color_trc=smpte170m"
    shifted = encode(src, tmp_path / "shifted.mp4", "-vf", f"setparams={sd}")
    assert xpsnr_score(ff, src, shifted).mean < xpsnr_score(ff, src, plain).mean - 10


@pytest.mark.parametrize("fps", [240, 120])
def test_an_output_made_at_a_ladders_rate_is_compared_with_the_frames_it_was_made_of(
    tmp_path: Path, fps: int
) -> None:
    """A ladder brings a slow-motion source to 60 fps with ``fps`` on the source's own
    timestamps. Picked again after the score's millisecond clock, other frames fell on
    the ticks: a lossless 60 fps copy of a 240 fps clip scored 88.3, its worst 1 % 56,
    so no CRF could reach a target of 90 and the ladder went to CRF 12."""
    src = make_clip(tmp_path / "s.mp4", width=320, height=240, seconds=1, fps=fps)
    copy = tmp_path / "copy.mkv"
    ffmpeg("-i", str(src), "-vf", "fps=60", "-c:v", "libx264", "-qp", "0", "-an", str(copy))
    ff = find_ffmpeg()
    assert score(ff, src, copy, made_at=Fraction(60)).mean > 97
    assert score_batch(ff, src, [copy], made_at=Fraction(60))[0].mean > 97
    assert xpsnr_score(ff, src, copy, made_at=Fraction(60)).mean > 40


_PEAK_OF_SCORING = """
import resource, sys
from pathlib import Path
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.quality import score_batch
got = score_batch(find_ffmpeg(), Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]], threads=2)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(peak, *(round(g.mean, 2) for g in got))
"""


def test_probes_of_a_large_picture_are_scored_in_bounded_memory(tmp_path: Path) -> None:
    # A per-title ladder scores one probe per size and CRF together. In one ffmpeg run,
    # each output compared at 4K added 850 MB: a 4K phone clip's probes held 11.6 GB, an
    # 8K clip's 24 GB, and the kernel killed ffmpeg ("scoring failed: no log written").
    # Three 4K outputs held 2.9 GB in one run; scored in runs of one, 1.1 GB.
    src = tmp_path / "uhd.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=25:duration=0.4", str(src))
    outs = [encode(src, tmp_path / f"o{h}.mp4", "-vf", f"scale=-2:{h}") for h in (2160, 1080, 720)]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_SCORING, str(src), *map(str, outs)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak, *means = done.stdout.split()
    assert int(peak) < 1.6 * 2**30, f"scoring held {int(peak) / 2**30:.2f} GiB"
    assert float(means[0]) > float(means[1]) > float(means[2])  # each scored, in order


def test_a_score_whose_ffmpeg_is_killed_says_so(tmp_path: Path) -> None:
    # An 8K clip's probes took ffmpeg to 24 GB and the kernel killed it: the job failed
    # with "scoring failed: no log written", which said nothing of why.
    src = make_clip(tmp_path / "s.mp4", width=160, height=90, seconds=1)
    killed_ffmpeg = tmp_path / "ffmpeg"
    killed_ffmpeg.write_text("#!/bin/sh\nkill -KILL $$\n")
    killed_ffmpeg.chmod(0o755)
    with pytest.raises(ScoringError, match=r"killed by signal SIGKILL \(the kernel does this"):
        score(str(killed_ffmpeg), src, src)


def fake_ffmpeg(tmp_path: Path, body: str) -> str:
    """An ffmpeg that runs ``body`` (sh) instead: a scoring run as the worker sees it."""
    path = tmp_path / "ffmpeg"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# ffmpeg's -progress block, every 0.2 s, its time moving on each time.
_PROGRESSING = 'i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo "frame=$i"; ' + (
    'echo "out_time_us=${{i}}00000"; echo progress=continue; sleep 0.2; done; exit 1\n'
)


def test_a_score_stops_when_its_job_is_stopped(tmp_path: Path) -> None:
    """A full-length score runs about as long as the film plays: a stop (a scale-in, a
    SIGTERM) ends it at once, as it ends an encode, rather than after the score."""
    src = make_clip(tmp_path / "s.mp4", width=160, height=90, seconds=1)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(InterruptedJob):
        score(fake_ffmpeg(tmp_path, _PROGRESSING.format(n=300)), src, src, watch=Watch(stop))
    assert time.monotonic() - started < 10


def test_a_score_is_held_to_its_progress_not_to_a_clock(tmp_path: Path) -> None:
    """A score had an hour, and a film that plays for longer failed on every try. Now a
    score that makes progress runs on past its stall limit, and one that makes none for
    that long is a stall, as an encode is."""
    src = make_clip(tmp_path / "s.mp4", width=160, height=90, seconds=1)
    moving = fake_ffmpeg(tmp_path, _PROGRESSING.format(n=15))  # 3 s, then it fails
    started = time.monotonic()
    with pytest.raises(ScoringError, match="scoring failed: ffmpeg failed with exit status 1"):
        score(moving, src, src, watch=Watch(stall_timeout_s=1.0))
    assert time.monotonic() - started > 2.5  # ran on past the stall limit: it moved
    still = fake_ffmpeg(tmp_path, "sleep 30\n")
    with pytest.raises(StalledError):
        score(still, src, src, watch=Watch(stall_timeout_s=1.0))


@pytest.mark.parametrize(
    ("scorer", "hdr_reason"),
    [(score, "HDR video: the VMAF models"), (xpsnr_score, "HDR video: XPSNR")],
    ids=["vmaf", "xpsnr"],
)
def test_hdr_and_non_video_are_not_scored(
    tmp_path: Path, scorer: Callable[[str, Path, Path], Score], hdr_reason: str
) -> None:
    hdr = hdr_clip(tmp_path)
    with pytest.raises(ScoringError, match=hdr_reason):
        scorer(find_ffmpeg(), hdr, hdr)
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes\n")
    with pytest.raises(ScoringError, match=r"notes\.mp4"):
        scorer(find_ffmpeg(), notes, notes)


def test_an_output_whose_clock_starts_later_is_compared_frame_for_frame(tmp_path: Path) -> None:
    # Containers may start the output's timestamps elsewhere (an edit list, a muxer
    # offset); scored by raw timestamps, every frame would meet the wrong source frame.
    src = make_clip(tmp_path / "s.mp4", width=320, height=180, seconds=2)
    plain = score(find_ffmpeg(), src, encode(src, tmp_path / "a.mp4"))
    later = score(find_ffmpeg(), src, encode(src, tmp_path / "b.mp4", "-output_ts_offset", "0.5"))
    assert abs(plain.mean - later.mean) < 1
    assert later.frames == plain.frames


def test_the_quality_command_scores_an_original_whose_subtitle_outlasts_it(
    tmp_path: Path,
) -> None:
    # Matroska declares the length of its longest stream: a cue at 20 minutes on a 2 s
    # clip made it 20 minutes, and an MP4 encode of it (2 s) was refused as "not an
    # encode of the whole source". What is scored is the picture: what plays is compared.
    cues = tmp_path / "late.srt"
    cues.write_text("1\n00:20:00,000 --> 00:20:02,000\nLate\n", encoding="utf-8")
    src = tmp_path / "film.mkv"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=2",
        "-f", "lavfi", "-i", "sine=duration=2", "-i", str(cues),
        "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
        "-c:a", "aac", "-c:s", "srt", str(src),
    )  # fmt: skip
    out = encode(src, tmp_path / "film.mp4", "-sn")
    env = {**os.environ, "COLUMNS": "400"}
    cmd = [sys.executable, "-m", "hevcq", "quality", str(src), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"VMAF \d+\.\d\d \(1% low [^)]+\) with vmaf_v0\.6\.1, 48 frames\n", done.stdout
    )


def test_the_quality_command_prints_one_line_either_way(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "s.mp4", width=320, height=180, seconds=1)
    out = encode(src, tmp_path / "o.mp4")
    env = {**os.environ, "COLUMNS": "400"}
    cmd = [sys.executable, "-m", "hevcq", "quality"]
    run = partial(subprocess.run, capture_output=True, text=True, env=env, check=False)
    ok = run([*cmd, str(src), str(out)])
    assert ok.returncode == 0, ok.stderr
    assert re.fullmatch(
        r"VMAF \d+\.\d\d \(1% low \d+\.\d\d, NEG \d+\.\d\d\) with vmaf_v0\.6\.1, 24 frames\n",
        ok.stdout,
    )
    both = run([*cmd, str(src), str(out), "--xpsnr"])
    assert both.returncode == 0, both.stderr
    assert re.fullmatch(
        r"VMAF \d+\.\d\d \(1% low [^)]+\) with vmaf_v0\.6\.1, 24 frames\n"
        r"XPSNR \d+\.\d\d dB \(1% low \d+\.\d\d\)\n",
        both.stdout,
    )
    # A half-size rendition: --own-size scores it as a rendition pool does, far higher.
    small = encode(src, tmp_path / "small.mp4", "-vf", "scale=160:90:flags=lanczos")
    up, own = (run([*cmd, str(src), str(small), *flag]) for flag in ((), ("--own-size",)))
    assert (up.returncode, own.returncode) == (0, 0), up.stderr + own.stderr
    assert float(own.stdout.split()[1]) > float(up.stdout.split()[1]) + 5
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes\n")
    bad = run([*cmd, str(notes), str(out)])
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: notes.mp4: not a media file")
    assert len(bad.stderr.strip().splitlines()) == 1
    # Another clip, shorter: scoring stops at the shorter side, and a VMAF of its first
    # second was printed as if it were the whole encode's.
    other = make_clip(tmp_path / "other.mp4", width=320, height=180, seconds=3)
    partial_ = run([*cmd, str(other), str(out)])
    assert partial_.returncode == 2, partial_.stdout
    assert partial_.stderr.startswith("error: o.mp4 lasts 1.00 s and other.mp4 3.00 s: not an")
    assert len(partial_.stderr.strip().splitlines()) == 1
    # Audio only: it said the lengths differ, as if it were a shorter encode.
    sound = tmp_path / "sound.m4a"
    subprocess.run(
        [find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "sine=d=2", str(sound)], check=True
    )
    no_video = run([*cmd, str(src), str(sound)])
    assert no_video.returncode == 2, no_video.stdout
    assert no_video.stderr == "error: sound.m4a: no video stream\n"
    missing = run([*cmd, str(tmp_path / "gone.mp4"), str(out)])
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout


def test_a_source_whose_cover_comes_first_is_scored_by_its_video(tmp_path: Path) -> None:
    """Its stream 0 is a red cover: a graph taking the first video stream compared the
    output with that one picture (and failed), where the video is what was encoded."""
    src = cover_first(tmp_path, "tagged.mp4")
    out = encode(src, tmp_path / "out.mp4", "-map", "0:1")
    with_cover = score(find_ffmpeg(), src, out, neg=False)
    assert with_cover.mean > 80
    assert with_cover.frames == 72
    assert xpsnr_score(find_ffmpeg(), src, out).frames == 72
    [batched] = score_batch(find_ffmpeg(), src, [out])
    assert abs(batched.mean - with_cover.mean) < 0.01
