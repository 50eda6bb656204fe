"""Scoring rules that need no video: the model per size, the 1 % low, the reading of
libvmaf's log and of the xpsnr filter's stats file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from hevcq.media.ffargs import DEINTERLACE, fit_picture
from hevcq.media.quality import (
    MODEL_4K,
    MODEL_HD,
    MODEL_XPSNR,
    XPSNR_CEILING,
    Picture,
    ScoringError,
    batch_graph,
    batch_size,
    compared_size,
    lengths_differ,
    low_mean,
    model_for,
    parse_log,
    parse_xpsnr,
    scored_size,
    shown,
    shown_under,
    vmaf_graph,
    xpsnr_graph,
)


@pytest.mark.parametrize(
    ("size", "model"),
    [
        ((1920, 1080), MODEL_HD),
        ((2560, 1440), MODEL_HD),
        ((1440, 2560), MODEL_HD),  # portrait: the long side counts
        ((3840, 2160), MODEL_4K),
        ((2160, 3840), MODEL_4K),
    ],
)
def test_the_model_follows_the_picture(size: tuple[int, int], model: str) -> None:
    assert model_for(*size) == model


def test_the_one_percent_low_is_the_mean_of_the_worst_frames() -> None:
    scores = [90.0] * 198 + [10.0, 30.0]
    assert low_mean(scores) == 20.0  # 1 % of 200 frames: the worst two
    assert low_mean([50.0]) == 50.0
    with pytest.raises(ScoringError, match="no frame was scored"):
        low_mean([])


def test_both_sides_are_aligned_before_scoring() -> None:
    ref = Picture(1080, 1920, 29.7, ten_bit=False, hdr=False)
    graph = vmaf_graph(ref, Fraction(30000, 1001), Path("/t/log.json"), phone=True, threads=2)
    dist, source, vmaf = graph.split(";")
    for side in (dist, source):
        # zero, one clock, one rate
        assert "setpts=PTS-STARTPTS,settb=1/1000,fps=30000/1001,format=yuv420p" in side
    assert "scale=1080:1920" in dist  # the output at the source's displayed size
    assert "version=vmaf_v0.6.1\\:name=vmaf|" in vmaf
    assert "vmaf_v0.6.1neg\\:name=vmaf_neg" in vmaf
    assert "enable_transform=true" in vmaf  # the phone model, asked for
    assert "shortest=1" in vmaf
    assert "n_subsample" not in vmaf  # an output's score uses every frame


def test_an_interlaced_or_anamorphic_source_is_scored_as_the_viewer_sees_it() -> None:
    ref = Picture(854, 480, 29.97, ten_bit=False, hdr=False, anamorphic=True, interlaced=True)
    graph = vmaf_graph(ref, Fraction(30000, 1001), Path("/l"), phone=False, threads=1)
    dist, source, _ = graph.split(";")
    assert source.startswith(f"[1:0]{DEINTERLACE},setpts=PTS-STARTPTS")  # as its encodes
    assert source.endswith(f"{fit_picture(854, 480, flags='bicubic')},setsar=1[ref]")  # square
    assert "scale=854:480" in dist
    plain = Picture(854, 480, 29.97, ten_bit=False, hdr=False)
    source = vmaf_graph(plain, Fraction(30), Path("/l"), phone=False, threads=1).split(";")[1]
    assert "bwdif" not in source
    # Only the scale that holds the picture to its first size and format, should it change
    # partway: a no-op on frames already at it.
    assert source.endswith(f"format=yuv420p,{fit_picture(854, 480, flags='bicubic')}[ref]")
    assert "setsar" not in source


def test_a_rendition_is_compared_at_its_own_size_with_the_encodes_scaler() -> None:
    uhd = Picture(3840, 2160, 25.0, ten_bit=False, hdr=False)
    hd = Picture(1920, 1080, 25.0, ten_bit=False, hdr=False)
    assert compared_size(uhd, hd, own_size=True) == (1920, 1080)
    assert compared_size(uhd, hd, own_size=False) == (3840, 2160)
    assert compared_size(hd, hd, own_size=True) == (1920, 1080)
    assert compared_size(hd, uhd, own_size=True) == (1920, 1080)  # never scored larger
    graph = vmaf_graph(uhd, Fraction(25), Path("/l"), phone=False, threads=1, size=(1920, 1080))
    dist, source, vmaf = graph.split(";")
    assert source.endswith("scale=1920:1080:flags=lanczos,setsar=1[ref]")  # as encodes scale
    assert "scale=1920:1080" in dist
    assert "version=vmaf_v0.6.1\\:name=vmaf" in vmaf  # the model of the size compared at
    assert "scale=1920:1080" in xpsnr_graph(uhd, Fraction(25), Path("/s"), (1920, 1080))


@pytest.mark.parametrize(
    ("size", "scored"),
    [
        ((3840, 2160), (3840, 2160)),  # up to 4K: its own size
        ((4096, 2160), (4096, 2160)),  # DCI 4K: about as many pixels, its own size
        ((7680, 4320), (3840, 2160)),  # 8K: the 4K model's size
        ((4320, 7680), (2160, 3840)),  # portrait
        ((8192, 4352), (4066, 2160)),  # aspect kept, even sides
        ((10240, 2160), (6476, 1366)),  # no more pixels than 4K either
    ],
)
def test_a_picture_above_4k_is_scored_at_4k(size: tuple[int, int], scored: tuple[int, int]) -> None:
    # An 8K score took 4.4 GB, and the probes of an 8K clip 24 GB, before ffmpeg was
    # killed: no model is trained above 4K, so both sides are compared at it.
    ref = Picture(*size, 30.0, ten_bit=False, hdr=False)
    assert scored_size(ref) == scored
    assert compared_size(ref, ref, own_size=False) == scored
    assert compared_size(ref, ref, own_size=True) == scored
    dist, source, vmaf = vmaf_graph(ref, Fraction(30), Path("/l"), phone=False, threads=1).split(
        ";"
    )
    w, h = scored
    assert f"scale={w}:{h}:flags=bicubic" in dist
    fit = fit_picture(w, h, flags="bicubic")
    assert source.endswith(fit + (",setsar=1[ref]" if scored != size else "[ref]"))
    assert model_for(w, h) == MODEL_4K
    assert f"version={MODEL_4K}" in vmaf
    batch = batch_graph(ref, Fraction(30), [Path("/a"), Path("/b")], threads=1, subsample=5)
    assert batch.count(f"scale={w}:{h}:flags=bicubic") == 2  # both outputs
    assert batch.count(fit_picture(w, h, flags="bicubic")) == 1  # and the source


def test_probes_are_scored_in_runs_that_keep_their_memory_bounded() -> None:
    # Each output compared holds about 850 MB at 4K: a 4K source's probes are scored one
    # at a time, a 1080p source's several at once, a 720p source's (the per-title
    # benchmark's) all ten at once, as before.
    assert batch_size((3840, 2160)) == 1
    assert 5 <= batch_size((1920, 1080)) <= 8
    assert batch_size((1280, 720)) >= 10
    assert batch_size((64, 64)) >= 100


def test_a_probe_score_can_ask_for_every_nth_frame_only() -> None:
    ref = Picture(1280, 720, 25.0, ten_bit=False, hdr=False)
    graph = vmaf_graph(ref, Fraction(25), Path("/t/log.json"), phone=False, threads=1, subsample=5)
    assert graph.endswith(":shortest=1:n_subsample=5")


def test_a_log_that_is_not_libvmafs_is_a_scoring_error_not_a_score() -> None:
    with pytest.raises(ScoringError, match="unreadable VMAF log"):
        parse_log({"frames": [{"metrics": {}}]}, MODEL_HD)
    score = parse_log(
        {
            "frames": [{"metrics": {"vmaf": 90.0}}, {"metrics": {"vmaf": 80.0}}],
            "pooled_metrics": {"vmaf": {"mean": 85.0}, "vmaf_neg": {"mean": 84.0}},
        },
        MODEL_HD,
    )
    assert (score.mean, score.low, score.neg_mean, score.frames) == (85.0, 80.0, 84.0, 2)


def test_xpsnr_is_measured_on_the_same_aligned_pictures_as_vmaf() -> None:
    ref = Picture(1080, 1920, 29.7, ten_bit=True, hdr=False)
    rate = Fraction(30000, 1001)
    vmaf = vmaf_graph(ref, rate, Path("/t/log.json"), phone=False, threads=1)
    xpsnr = xpsnr_graph(ref, rate, Path("/t/xpsnr.log"))
    dist, source, scorer = xpsnr.split(";")
    assert [dist, source] == vmaf.split(";")[:2]
    assert "format=yuv420p10le" in dist
    assert scorer == "[dist][ref]xpsnr=stats_file=/t/xpsnr.log:shortest=1"


# The xpsnr filter's stats file for three frames, as ffmpeg n9 writes it.
STATS = """n:    1  XPSNR y: 41.0000  XPSNR u: 44.1000  XPSNR v: 43.9000
n:    2  XPSNR y: 35.0000  XPSNR u: 40.2000  XPSNR v: 40.0000
n:    3  XPSNR y: inf  XPSNR u: inf  XPSNR v: inf

XPSNR average, 3 frames  y: 38.2000  u: 42.0000  v: 41.8000  (minimum: 38.2000)
"""


def test_the_xpsnr_stats_give_the_pooled_luma_value_and_the_worst_frames() -> None:
    got = parse_xpsnr(STATS)
    assert got.metric == "xpsnr"
    assert got.model == MODEL_XPSNR
    assert got.mean == 38.2  # the filter's own pooled luma value, not a mean of dB
    assert got.low == 35.0  # 1 % of 3 frames: the worst one
    assert got.frames == 3
    assert got.neg_mean is None
    # A frame identical to its source (inf) is capped, not carried as infinity.
    assert parse_xpsnr(STATS.replace("y: 38.2000", "y: inf")).mean == XPSNR_CEILING


@pytest.mark.parametrize(
    "text",
    [
        "",
        STATS.replace("XPSNR average, 3 frames", "XPSNR average, 4 frames"),
        STATS.split("\n\n", maxsplit=1)[0],  # no pooled line: the filter did not finish
        STATS.replace("y: 35.0000", "y: nan"),
        STATS.replace("y: 38.2000", "y: -"),
    ],
)
def test_stats_that_are_not_the_xpsnr_filters_are_a_scoring_error(text: str) -> None:
    with pytest.raises(ScoringError, match="unreadable XPSNR stats"):
        parse_xpsnr(text)


@pytest.mark.parametrize(
    ("metric", "value", "digits", "text"),
    [
        ("vmaf", 93.0, None, "VMAF 93"),
        ("vmaf", 93.456, 1, "VMAF 93.5"),
        ("xpsnr", 41.0, None, "XPSNR 41 dB"),
        ("xpsnr", 41.234, 2, "XPSNR 41.23 dB"),
    ],
)
def test_a_score_is_shown_with_its_metric_and_unit(
    metric: str, value: float, digits: int | None, text: str
) -> None:
    assert shown(metric, value, digits) == text


@pytest.mark.parametrize(
    ("value", "line", "text"),
    [
        (91.34, 93.0, "VMAF 91.3"),
        # A 240 fps clip kept its original with "VMAF 93 not reached ... (CRF 25 scores
        # VMAF 93.0 ...)": a score under the target never reads as the target.
        (92.98, 93.0, "VMAF 92.98"),
        (92.9996, 93.0, "VMAF 92.999"),
    ],
)
def test_a_score_under_the_line_never_reads_as_the_line(
    value: float, line: float, text: str
) -> None:
    assert shown_under("vmaf", value, line) == text
    assert shown_under("xpsnr", 40.96, 41.0) == "XPSNR 40.96 dB"


@pytest.mark.parametrize(
    ("source_s", "output_s", "differ"),
    [
        (10.0, 10.0, False),
        (10.0, 9.6, False),  # audio priming, a last frame's duration
        (10.0, 9.4, True),
        (100.0, 98.1, False),  # 2 % of a long source
        (100.0, 97.9, True),
        (10.0, 0.4, True),  # another, shorter clip
        (10.0, 30.0, True),
        (None, 4.0, False),  # a length the container does not give is not held against it
    ],
)
def test_an_output_scored_alone_must_last_as_long_as_its_source(
    source_s: float | None, output_s: float, differ: bool
) -> None:
    assert lengths_differ(source_s, output_s) is differ


def test_each_side_is_named_by_the_index_of_its_main_video() -> None:
    """Cover art may come before a file's video (an MP4 whose metadata precedes its
    tracks): ``[1:v]`` would then score the picture."""
    ref = Picture(640, 360, 25.0, ten_bit=False, hdr=False, index=1)
    dist, source, _ = vmaf_graph(ref, Fraction(25), Path("/l"), phone=False, threads=1).split(";")
    assert dist.startswith("[0:0]")
    assert source.startswith("[1:1]")
    assert xpsnr_graph(ref, Fraction(25), Path("/s"), dist=2).startswith("[0:2]")
    batch = batch_graph(ref, Fraction(25), [Path("/a"), Path("/b")], threads=1, subsample=1)
    assert batch.startswith("[2:1]")


def test_each_side_states_the_colours_it_leaves_unstated_before_anything_else() -> None:
    """Both sides state what players take them for before the graph meets them: a side
    stating nothing beside one stating BT.709 would be converted as BT.601."""
    hd = "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709"
    ref = Picture(1280, 720, 25.0, ten_bit=False, hdr=False, colours=hd)
    dist, source, _ = vmaf_graph(
        ref, Fraction(25), Path("/l"), phone=False, threads=1, dist_colours=hd
    ).split(";")
    assert dist.startswith(f"[0:0]{hd},setpts=PTS-STARTPTS")
    assert source.startswith(f"[1:0]{hd},setpts=PTS-STARTPTS")
    assert xpsnr_graph(ref, Fraction(25), Path("/s"), dist_colours=hd).startswith(f"[0:0]{hd},")
    batch = batch_graph(
        ref, Fraction(25), [Path("/a"), Path("/b")], threads=1, subsample=1, dist_colours=["", hd]
    ).split(";")
    assert batch[0].startswith(f"[2:0]{hd},setpts=")
    assert batch[1].startswith("[0:v]setpts=")
    assert batch[3].startswith(f"[1:v]{hd},setpts=")
    # A side stating all of its colours is left as it is.
    plain = Picture(1280, 720, 25.0, ten_bit=False, hdr=False)
    dist, source, _ = vmaf_graph(plain, Fraction(25), Path("/l"), phone=False, threads=1).split(";")
    assert dist.startswith("[0:0]setpts=")
    assert source.startswith("[1:0]setpts=")


def test_an_output_made_at_a_ladders_rate_has_the_sources_frames_picked_before_the_clock() -> None:
    """A ladder picks a fast source's frames with ``fps`` on the source's own timestamps;
    the score picks them the same way before moving them onto its millisecond clock."""
    ref = Picture(640, 360, 240.0, ten_bit=False, hdr=False)
    _, source, _ = vmaf_graph(
        ref, Fraction(60), Path("/l"), phone=False, threads=1, made_at=Fraction(60)
    ).split(";")
    assert source.startswith("[1:0]fps=60,setpts=PTS-STARTPTS,settb=1/1000,fps=60,")
    batch = batch_graph(
        ref, Fraction(60), [Path("/a")], threads=1, subsample=1, made_at=Fraction(60)
    )
    assert batch.startswith("[1:0]fps=60,setpts=PTS-STARTPTS,")
    assert (
        xpsnr_graph(ref, Fraction(60), Path("/s"), made_at=Fraction(60))
        .split(";")[1]
        .startswith("[1:0]fps=60,setpts=")
    )
    # A file output keeps the source's timing: nothing is picked before the clock.
    _, plain, _ = vmaf_graph(ref, Fraction(60), Path("/l"), phone=False, threads=1).split(";")
    assert plain.startswith("[1:0]setpts=PTS-STARTPTS,")


def test_a_ladder_rung_is_compared_from_the_source_files_zero_as_it_was_made() -> None:
    """A ladder's rungs start where the source file does, the time before a late video's
    first frame filled with that frame; their score picks the source's frames from there
    (``from_zero``), and the per-title probes, which start where their video does, do not."""
    ref = Picture(640, 360, 30.0, ten_bit=False, hdr=False)
    kw: dict[str, Any] = {"made_at": Fraction(30), "from_zero": True}
    _, source, _ = vmaf_graph(ref, Fraction(30), Path("/l"), phone=False, threads=1, **kw).split(
        ";"
    )
    assert source.startswith("[1:0]fps=30:start_time=0,setpts=PTS-STARTPTS,")
    xpsnr = xpsnr_graph(ref, Fraction(30), Path("/s"), **kw).split(";")[1]
    assert xpsnr.startswith("[1:0]fps=30:start_time=0,setpts=")
    probes = batch_graph(
        ref, Fraction(30), [Path("/a")], threads=1, subsample=1, made_at=Fraction(30)
    )
    assert probes.startswith("[1:0]fps=30,setpts=PTS-STARTPTS,")
