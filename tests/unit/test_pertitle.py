"""Per-title ladders: the hull of a source's rate-quality points and the rungs picked on
it (``hevcq.media.pertitle``), and the pool option that asks for them."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import pytest
from pydantic import ValidationError

from hevcq.media.crfsearch import GopBytes, SampleRules, scan_source
from hevcq.media.ffargs import fit_picture
from hevcq.media.ladder import PRESET, LadderPlan, Rung, ladder_args, plan_ladder
from hevcq.media.model import MediaInfo, VideoStream
from hevcq.media.pertitle import (
    CAP_FACTOR,
    FLOOR_KBPS,
    MIN_CAP_KBPS,
    PROBE_RULES,
    TOP_FIRST_BELOW_BPP,
    Pick,
    Point,
    curve_points,
    frontier,
    one_rung_suffices,
    pick_rungs,
    predicted_video_bytes,
    probe_args,
    rungs_of,
    sample_count,
    scene_classes,
    source_bpp,
    stratified_spans,
    upper_hull,
)
from hevcq.media.samples import make_clip
from hevcq.pools import LADDER_PRESET, Pool


def curve(short: int, rates: list[float], vmafs: list[float], crfs: tuple[int, ...] = (20, 28)):
    return [Point(short, c, r, v) for c, r, v in zip(crfs, rates, vmafs, strict=True)]


# A 1080p source whose curves cross as real ones do: small sizes win at low rates.
MOVING = [
    *curve(1080, [6000, 2400], [97.0, 91.0]),
    *curve(720, [3000, 1200], [94.0, 88.0]),
    *curve(480, [1200, 450], [86.0, 79.0]),
    *curve(360, [600, 230], [80.0, 71.0]),
    *curve(240, [280, 120], [68.0, 58.0]),
]


def test_the_hull_rises_with_the_rate_and_no_point_lies_above_it() -> None:
    points = curve_points(MOVING)
    hull = upper_hull(points)
    assert [p.kbps for p in hull] == sorted(p.kbps for p in hull)
    assert [p.vmaf for p in hull] == sorted(p.vmaf for p in hull)
    for p in points:
        for a, b in itertools.pairwise(hull):
            if a.kbps <= p.kbps <= b.kbps:
                t = (math.log(p.kbps) - math.log(a.kbps)) / (math.log(b.kbps) - math.log(a.kbps))
                assert p.vmaf <= a.vmaf + t * (b.vmaf - a.vmaf) + 1e-6


def test_a_size_another_beats_at_every_rate_has_no_point_on_the_hull() -> None:
    # 480p here costs more than 720p for less quality at every CRF.
    dominated = [*curve(720, [3000, 1200], [94.0, 88.0]), *curve(480, [3200, 1300], [85.0, 78.0])]
    assert {p.short for p in upper_hull(curve_points(dominated))} == {720}
    assert {p.short for p in frontier(curve_points(dominated))} == {720}
    picks = pick_rungs(frontier(curve_points(dominated)), 90.0, source_short=720, max_rungs=4)
    assert all(p.short == 720 for p in picks)


def test_the_top_rung_is_the_cheapest_point_reaching_the_target() -> None:
    hull = frontier(curve_points(MOVING))
    picks = pick_rungs(hull, 93.0, source_short=1080, max_rungs=5)
    top = picks[0]
    assert top.vmaf >= 93.0
    assert all(p.kbps >= top.kbps for p in hull if p.vmaf >= 93.0)
    # 720p a little harder beats 1080p here: the size comes from the curves, not a table
    assert (top.short, top.crf) == (720, 21)
    assert top.maxrate_kbps == math.ceil(top.kbps * 2.0)


def test_rungs_step_down_in_rate_and_size_and_never_exceed_the_fixed_count() -> None:
    hull = frontier(curve_points(MOVING))
    picks = pick_rungs(hull, 95.0, source_short=1080, max_rungs=5)
    assert 3 <= len(picks) <= 5
    for upper, lower in itertools.pairwise(picks):
        assert lower.short <= upper.short
        assert lower.kbps <= 0.8 * upper.kbps
    assert picks[-1].short <= 480
    assert picks[-1].kbps < 250


def test_no_rung_is_ever_above_the_source() -> None:
    hull = frontier(curve_points(MOVING))
    picks = pick_rungs(hull, 99.0, source_short=720, max_rungs=4)
    assert picks
    assert max(p.short for p in picks) <= 720
    # out of reach: the best point the source's sizes allow, not a larger size
    assert picks[0].short == 720


def test_a_static_source_gets_fewer_cheaper_rungs() -> None:
    static = [
        *curve(1080, [400, 180], [99.0, 97.5]),
        *curve(720, [250, 110], [97.0, 95.0]),
        *curve(480, [120, 60], [92.0, 89.0]),
        *curve(360, [80, 40], [88.0, 84.0]),
        *curve(240, [45, 25], [80.0, 75.0]),
    ]
    moving = pick_rungs(frontier(curve_points(MOVING)), 95.0, source_short=1080, max_rungs=5)
    still = pick_rungs(frontier(curve_points(static)), 95.0, source_short=1080, max_rungs=5)
    assert len(still) < len(moving)
    assert sum(p.kbps for p in still) < 0.2 * sum(p.kbps for p in moving)


def test_a_cheap_rung_is_never_capped_below_what_streams_anywhere() -> None:
    # A still picture at 18 kb/s capped at twice that lost 0.7 VMAF: x264 under a tight
    # cap starves frames far smaller than its buffer. Cheap rungs get the floor instead.
    still = [*curve(720, [30, 12], [97.4, 96.0]), *curve(360, [12, 6], [90.0, 86.0])]
    picks = pick_rungs(frontier(curve_points(still)), 97.0, source_short=720, max_rungs=4)
    assert picks[0].kbps * CAP_FACTOR < MIN_CAP_KBPS
    assert all(p.maxrate_kbps == MIN_CAP_KBPS for p in picks)


def test_the_largest_size_alone_settles_a_ladder_cheap_at_the_top() -> None:
    # A still 720p picture reaching VMAF 97 for 30 kb/s: one rung, no smaller size needed.
    still_top = curve(720, [30, 12], [97.4, 96.0])
    assert one_rung_suffices(still_top, 97.0, max_rungs=4)
    # the same picture asked for more than its probes reach: the other sizes are probed
    assert not one_rung_suffices(still_top, 99.0, max_rungs=4)
    # a moving source's top rung costs thousands of kb/s: rungs go below it
    assert not one_rung_suffices(curve(1080, [6000, 2400], [97.0, 91.0]), 95.0, max_rungs=5)
    # a rung just at the floor still gets rungs below it
    at_floor = curve(720, [400, FLOOR_KBPS], [98.0, 97.0])
    assert not one_rung_suffices(at_floor, 97.0, max_rungs=4)
    assert not one_rung_suffices([], 90.0, max_rungs=4)


def test_a_still_is_told_from_busy_video_by_its_bits_per_pixel() -> None:
    # the benchmark's still (SMPTE bars, 60 s at 720p24) and a busy test pattern squeezed
    # to 1.2 Mb/s: a still takes well under a thousandth of a bit per pixel, busy video 0.05
    rate = Fraction(24)
    still = source_bpp(65_599, 60.0, 1280 * 720, rate)
    busy = source_bpp(9_000_000, 60.0, 1280 * 720, rate)
    assert still is not None
    assert busy is not None
    assert still < TOP_FIRST_BELOW_BPP < busy
    assert source_bpp(0, 60.0, 1280 * 720, rate) is None  # not read
    assert source_bpp(1000, None, 1280 * 720, rate) is None
    assert source_bpp(1000, 60.0, 1280 * 720, Fraction(0)) is None


def test_the_frontier_holds_the_hull_and_a_point_between_where_curves_cross() -> None:
    points = curve_points(MOVING)
    hull, front = upper_hull(points), frontier(points)
    assert set(hull) <= set(front)
    assert [p.vmaf for p in front] == sorted(p.vmaf for p in front)
    for p in points:  # nothing off the frontier is as good for as little
        assert any(q.kbps <= p.kbps and q.vmaf >= p.vmaf for q in front)
    # a target inside a hull edge: the frontier's cheapest point reaching it is close to
    # it, the hull's next vertex far above it
    edges = [(a, b) for a, b in itertools.pairwise(hull) if b.vmaf - a.vmaf > 2.0]
    assert edges
    a, b = edges[0]
    target = (a.vmaf + b.vmaf) / 2
    top = pick_rungs(front, target, source_short=1080, max_rungs=1)[0]
    assert target <= top.vmaf < b.vmaf
    assert top.kbps < b.kbps


def test_curve_points_fill_in_between_and_beyond_the_probes() -> None:
    points = curve_points(curve(720, [3000, 1200], [94.0, 88.0]), extend=2)
    assert [p.crf for p in points] == list(range(18, 31))
    mid = next(p for p in points if p.crf == 24)
    assert mid.kbps == pytest.approx(math.sqrt(3000 * 1200), rel=1e-3)
    assert 88.0 < mid.vmaf < 94.0
    assert [p.kbps for p in points] == sorted((p.kbps for p in points), reverse=True)


def test_picked_rungs_are_encoded_each_at_its_own_crf() -> None:
    fps = Fraction(30)
    picks = pick_rungs(frontier(curve_points(MOVING)), 93.0, source_short=1080, max_rungs=5)
    rungs = rungs_of(picks, 1920, 1080, fps)
    assert [r.short for r in rungs] == [p.short for p in picks]
    assert rungs[0].width == 1920 or rungs[0].short < 1080
    plan = LadderPlan(rungs, fps, 0, ())
    args = ladder_args("ffmpeg", Path("s.mp4"), Path("o"), plan)
    for k, p in enumerate(picks):
        assert args[args.index(f"-crf:v:{k}") + 1] == str(p.crf)
        assert args[args.index(f"-maxrate:v:{k}") + 1] == f"{p.maxrate_kbps}k"


def test_a_fixed_rung_keeps_the_plan_crf() -> None:
    plan = LadderPlan((Rung(1280, 720, 2765),), Fraction(30), 0, ())
    args = ladder_args("ffmpeg", Path("s.mp4"), Path("o"), plan)
    assert args[args.index("-crf:v:0") + 1] == "23"


def test_probes_use_the_ladder_h264_settings() -> None:
    args = probe_args(
        "ffmpeg", Path("s.mkv"), [(Rung(640, 360, 1), 28, Path("p.mkv"))], Fraction(25)
    )
    text = " ".join(args)
    assert "fps=25,split=1" in text
    assert f"{fit_picture(640, 360)},setsar=1" in text
    assert "-preset veryfast -crf 28" in text
    assert "-g 50" in text


def test_probes_state_the_colours_the_rungs_state() -> None:
    """An unstated HD source's rungs state BT.709 (``ladder.source_colours``); its 360p
    probe, left unstated, would be taken for BT.601 by its size and scored in other
    colours than its rung is shown in."""
    hd = "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709"
    outs = [(Rung(640, 360, 1), 28, Path("p.mkv"))]
    args = probe_args("ffmpeg", Path("s.mkv"), outs, Fraction(25), colours=hd)
    assert args[args.index("-filter_complex") + 1].startswith(f"[0:v:0]{hd},fps=25,")


@pytest.mark.parametrize(("stream", "option"), [("0:3", "-c:3"), ("0:v:0", "-c:v:0")])
def test_probes_read_an_alpha_kept_beside_the_picture_with_its_decoder(
    stream: str, option: str
) -> None:
    """A VP9 WebM's alpha is read by libvpx, as the ladder reads it, so that the probes
    see the picture laid over black as the rungs will be."""
    outs = [(Rung(640, 360, 1), 28, Path("p.mkv"))]
    args = probe_args(
        "ffmpeg",
        Path("s.mkv"),
        outs,
        Fraction(25),
        stream=stream,
        alpha=True,
        alpha_decoder="libvpx-vp9",
    )
    at = args.index("-i")
    assert args[at - 2 : at] == [option, "libvpx-vp9"]
    assert "premultiply=inplace=1" in args[args.index("-filter_complex") + 1]
    plain = probe_args("ffmpeg", Path("s.mkv"), outs, Fraction(25), stream=stream)
    assert not any(a.startswith("-c:") for a in plain[: plain.index("-i")])


def test_probes_scale_each_size_once_and_encode_every_crf_from_one_decode() -> None:
    small, large = Rung(640, 360, 1), Rung(1280, 720, 1)
    outs = [(r, crf, Path(f"p{r.short}-{crf}.mkv")) for r in (large, small) for crf in (20, 28)]
    args = probe_args("ffmpeg", Path("s.mkv"), outs, Fraction(25))
    graph = args[args.index("-filter_complex") + 1]
    assert args.count("-i") == 1
    assert graph.count("scale=") == 2
    assert "fps=25,split=2[s0][s1]" in graph
    assert f"[s0]{fit_picture(1280, 720)},setsar=1,split=2[v0][v1]" in graph
    assert f"[s1]{fit_picture(640, 360)},setsar=1,split=2[v2][v3]" in graph
    for i, (_, crf, out) in enumerate(outs):
        at = args.index(f"[v{i}]")
        assert args[at : at + 7] == [
            f"[v{i}]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            str(crf),
        ]
        assert f"file:{out}" in args[at:]


POOL = {"name": "hls", "applies": {"source_codecs": ["h264"]}, "ladder": {}}


def test_a_per_title_pool_needs_a_quality_target() -> None:
    with pytest.raises(ValidationError, match="per_title needs a quality target"):
        Pool.model_validate({**POOL, "ladder": {"per_title": True}})
    Pool.model_validate({**POOL, "ladder": {"per_title": True}, "quality": {"vmaf": 93}})


def test_a_fixed_ladder_hashes_as_before_and_a_per_title_target_changes_the_hash() -> None:
    fixed = Pool.model_validate(POOL)
    scored = Pool.model_validate({**POOL, "quality": {"vmaf": 93}})
    per_title = Pool.model_validate(
        {**POOL, "ladder": {"per_title": True}, "quality": {"vmaf": 93}}
    )
    other = Pool.model_validate({**POOL, "ladder": {"per_title": True}, "quality": {"vmaf": 95}})
    assert fixed.settings_hash() == scored.settings_hash()
    assert len({fixed.settings_hash(), per_title.settings_hash(), other.settings_hash()}) == 3
    assert fixed.ladder is not None
    assert "per_title" not in fixed.ladder.hash_material(None)


# --- where the probes' samples fall ---------------------------------------------------------

# A minute of three 20 s scenes, a keyframe every 10 s: still (100 kB a stretch), busy (1 MB)
# and noisy (5 MB), as a source encoded at one quality spends on them.
SCENES_KEYS = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0)
SCENES_BYTES = (100_000, 100_000, 1_000_000, 1_000_000, 5_000_000, 5_000_000)


def scene_of(start: float) -> str:
    return ("still", "busy", "noisy")[int(start // 20)]


def test_samples_stand_for_the_easiest_to_the_hardest_stretches_not_the_clock() -> None:
    """Placed by time, two samples a minute land at 20 s and 40 s, snapped back to the
    keyframes at 10 s and 30 s: the still and the busy scene, never the noisy one."""
    two = stratified_spans(60.0, SCENES_KEYS, SCENES_BYTES, 2, PROBE_RULES)
    assert [scene_of(s) for s, _ in two] == ["still", "noisy"]
    three = stratified_spans(60.0, SCENES_KEYS, SCENES_BYTES, 3, PROBE_RULES)
    assert [scene_of(s) for s, _ in three] == ["still", "busy", "noisy"]
    # Each starts on its stretch's keyframe, as a stream copy cuts, and is as long as asked.
    assert all(s in SCENES_KEYS and n == PROBE_RULES.length_s for s, n in three)


def test_stretches_are_weighed_by_their_length_and_their_rate() -> None:
    """A long easy stretch outweighs a short hard one: half the points fall in it."""
    keys = (0.0, 50.0, 55.0)
    spans = stratified_spans(60.0, keys, (500_000, 1_000_000, 2_000_000), 2, PROBE_RULES)
    # rates: 10 kB/s over 50 s, 200 kB/s and 400 kB/s over 5 s each
    assert [s for s, _ in spans] == [0.0, 50.0]


def test_an_even_source_is_sampled_evenly_and_a_long_stretch_is_never_sampled_twice() -> None:
    keys = tuple(float(t) for t in range(0, 60, 10))
    even = stratified_spans(60.0, keys, (1000,) * 6, 2, PROBE_RULES)
    assert [s for s, _ in even] == [10.0, 40.0]
    # one stretch holds both points: the second sample takes the next harder stretch
    spans = stratified_spans(60.0, (0.0, 55.0), (5_500, 5_000), 2, PROBE_RULES)
    assert [s for s, _ in spans] == [0.0, 55.0]


def test_rates_that_differ_by_an_encoders_wander_rank_by_time() -> None:
    """An even clip's stretches (kB/s as a real one measured): ranked by that noise, the
    first sample fell on the very first keyframe; ranked as equal, the two are spread."""
    keys = (0.0, 10.4, 20.8, 31.2, 41.7, 52.1)
    rates = (454, 457, 457, 454, 455, 451)
    ends = (*keys[1:], 60.0)
    sizes = tuple(round(r * 1000 * (e - k)) for r, k, e in zip(rates, keys, ends, strict=True))
    spans = stratified_spans(60.0, keys, sizes, 2, PROBE_RULES)
    assert [s for s, _ in spans] == [10.4, 41.7]
    # Two still stretches 8 % apart rank as one band (rounding rates into fixed bands would
    # split them, and put a sample on the first keyframe again).
    keys = (0.0, 10.42, 20.0, 30.42, 40.79, 51.17)
    sizes = (12_214, 10_390, 4_736_380, 7_531_427, 41_245_995, 36_729_764)
    spans = stratified_spans(60.0, keys, sizes, 2, PROBE_RULES)
    assert [s for s, _ in spans] == [10.42, 40.79]


def test_a_minute_of_three_unlike_scenes_gets_a_sample_of_each() -> None:
    """The clock gives a minute two samples, which miss one of its three scenes: it gets
    three, one in each."""
    assert scene_classes(60.0, SCENES_KEYS, SCENES_BYTES) == 3
    count = sample_count(2, 60.0, SCENES_KEYS, SCENES_BYTES)
    assert count == 3
    spans = stratified_spans(60.0, SCENES_KEYS, SCENES_BYTES, count, PROBE_RULES)
    assert [scene_of(s) for s, _ in spans] == ["still", "busy", "noisy"]


def test_one_kind_of_picture_keeps_the_clocks_count() -> None:
    """Rates wandering within a factor of two are one kind of picture: an even clip, or one
    that grows harder along its minute (kB/s as the benchmark's measured)."""
    even = tuple(float(t) for t in range(0, 60, 10))
    assert scene_classes(60.0, even, (1000,) * 6) == 1
    assert sample_count(2, 60.0, even, (1000,) * 6) == 2
    keys = (0.0, 8.5, 17.0, 25.5, 34.0, 42.5, 51.0)
    rates = (1454, 1616, 2200, 2896, 4395, 3129, 4429)
    ends = (*keys[1:], 60.0)
    sizes = tuple(round(r * 1000 * (e - k)) for r, k, e in zip(rates, keys, ends, strict=True))
    assert scene_classes(60.0, keys, sizes) == 2
    assert sample_count(2, 60.0, keys, sizes) == 2


def test_a_brief_scene_is_no_class_and_extra_samples_stop_at_their_share() -> None:
    # a 5 s burst in a minute (8 % of it) is not a kind of picture of its own
    keys = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 55.0)
    sizes = (1000, 1000, 1000, 1000, 1000, 500, 50_000)
    assert scene_classes(60.0, keys, sizes) == 1
    # six unlike scenes in a minute: three samples at most (7.5 % of it, 1.5 s each)
    six_keys = tuple(float(t) for t in range(0, 60, 10))
    six_sizes = tuple(10**k for k in range(1, 7))
    assert scene_classes(60.0, six_keys, six_sizes) == 6
    assert sample_count(2, 60.0, six_keys, six_sizes) == 3
    # never fewer than the clock gives, and nothing to count in an empty scan
    assert sample_count(4, 60.0, six_keys, six_sizes) == 4
    assert sample_count(1, 10.0, (), ()) == 1
    assert scene_classes(0.0, (), ()) == 0


def test_too_few_keyframes_to_choose_from_leaves_the_placement_by_time() -> None:
    assert stratified_spans(60.0, (0.0,), (1000,), 2, PROBE_RULES) == ()
    assert stratified_spans(60.0, (0.0, 30.0), (1, 1), 3, PROBE_RULES) == ()
    assert stratified_spans(60.0, SCENES_KEYS, SCENES_BYTES, 0, PROBE_RULES) == ()


def test_a_sample_near_the_end_is_cut_to_what_is_left() -> None:
    spans = stratified_spans(60.0, (0.0, 59.0), (1000, 10_000), 2, SampleRules(length_s=1.5))
    assert spans == ((0.0, 1.5), (59.0, 1.0))


def test_gop_bytes_counts_each_packet_with_the_keyframe_before_it_in_decode_order() -> None:
    gops = GopBytes()
    gops.add(7)  # before any keyframe: counted with the first
    gops.add(100, keyframe_at=0.0)
    gops.add(10)
    gops.add(200, keyframe_at=1.0)
    gops.add(20)
    gops.add(5, keyframe_at=1.0)  # a second keyframe at the same time is the same stretch
    gops.add(30)
    assert gops.result() == ((0.0, 1.0), (117, 255))
    assert GopBytes().result() == ((), ())


def test_a_scan_measures_every_video_byte_between_keyframes(tmp_path: Path) -> None:
    # 264 frames at 24 fps: past x264's default GOP of 250, so two keyframes at least
    clip = make_clip(tmp_path / "clip.mp4", width=64, height=48, seconds=11.0, audio_streams=0)
    scan = scan_source(clip, 0)
    assert len(scan.gop_bytes) == len(scan.keyframes) >= 2
    assert sum(scan.gop_bytes) == scan.stream_bytes[0]
    assert all(n > 0 for n in scan.gop_bytes)


def test_a_ladder_may_name_its_preset_and_only_another_one_changes_the_hash() -> None:
    """The preset was fixed at veryfast. A pool may name a slower one for a better picture;
    left unset, every ladder hashes as before, so no library's ladders are made again."""
    fixed = Pool.model_validate(POOL)
    slow = Pool.model_validate({**POOL, "ladder": {"preset": "slow"}})
    named = Pool.model_validate({**POOL, "ladder": {"preset": "veryfast"}})
    assert fixed.ladder is not None
    assert slow.ladder is not None
    assert "preset" not in fixed.ladder.hash_material(None)
    assert slow.ladder.hash_material(None)["preset"] == "slow"
    assert slow.settings_hash() != fixed.settings_hash()
    assert named.settings_hash() == fixed.settings_hash()  # the default, named: no byte changes
    assert LADDER_PRESET == PRESET
    with pytest.raises(ValidationError, match="'fastest' is not an x264/x265 preset"):
        Pool.model_validate({**POOL, "ladder": {"preset": "fastest"}})


def test_the_ladders_preset_reaches_its_h264_and_hevc_rungs_and_its_probes() -> None:
    video = VideoStream(0, "h264", 1280, 720, "yuv420p", 8, fps=25.0)
    plan = plan_ladder(MediaInfo("mp4", 10.0, 1000, video=(video,)), ("hevc", "av1"), preset="slow")
    assert plan is not None
    args = ladder_args("ffmpeg", Path("s.mp4"), Path("o"), plan)
    codecs = {args[i + 1]: args[i + 3] for i, a in enumerate(args) if a.startswith("-c:v:")}
    assert codecs == {"libx264": "slow", "libx265": "slow", "libsvtav1": "8"}
    default = plan_ladder(MediaInfo("mp4", 10.0, 1000, video=(video,)))
    assert default is not None
    assert default.preset == "veryfast"
    probes = probe_args(
        "ffmpeg",
        Path("s.mkv"),
        [(Rung(640, 360, 1), 28, Path("p.mkv"))],
        Fraction(25),
        preset="slow",
    )
    assert "-preset slow -crf 28" in " ".join(probes)


def test_a_ladders_predicted_video_is_each_rung_at_its_curves_rate() -> None:
    picks = [Pick(720, 20, 2000.0, 95.0, 4000), Pick(360, 28, 400.0, 80.0, 800)]
    assert predicted_video_bytes(picks, 10.0) == 3_000_000  # 2400 kb/s for 10 s
    assert predicted_video_bytes(picks, 0.0) == 0
    assert predicted_video_bytes([], 10.0) == 0
