"""Per-title ladders: the hull of a source's rate-quality points and the rungs picked on
it (``hevcq.media.pertitle``), and the pool option that asks for them."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import pytest
from pydantic import ValidationError

from hevcq.media.ladder import LadderPlan, Rung, ladder_args
from hevcq.media.pertitle import (
    Point,
    curve_points,
    frontier,
    pick_rungs,
    probe_args,
    rungs_of,
    upper_hull,
)
from hevcq.pools import Pool


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
    plan = LadderPlan(rungs, fps, 0, None)
    args = ladder_args("ffmpeg", Path("s.mp4"), Path("o"), plan)
    for k, p in enumerate(picks):
        assert args[args.index(f"-crf:v:{k}") + 1] == str(p.crf)
        assert args[args.index(f"-maxrate:v:{k}") + 1] == f"{p.maxrate_kbps}k"


def test_a_fixed_rung_keeps_the_plan_crf() -> None:
    plan = LadderPlan((Rung(1280, 720, 2765),), Fraction(30), 0, None)
    args = ladder_args("ffmpeg", Path("s.mp4"), Path("o"), plan)
    assert args[args.index("-crf:v:0") + 1] == "23"


def test_probes_use_the_ladder_h264_settings() -> None:
    args = probe_args(
        "ffmpeg", Path("s.mkv"), [(Rung(640, 360, 1), 28, Path("p.mkv"))], Fraction(25)
    )
    text = " ".join(args)
    assert "fps=25,split=1" in text
    assert "scale=640:360:flags=lanczos" in text
    assert "-preset veryfast -crf 28" in text
    assert "-g 50" in text


def test_probes_scale_each_size_once_and_encode_every_crf_from_one_decode() -> None:
    small, large = Rung(640, 360, 1), Rung(1280, 720, 1)
    outs = [(r, crf, Path(f"p{r.short}-{crf}.mkv")) for r in (large, small) for crf in (20, 28)]
    args = probe_args("ffmpeg", Path("s.mkv"), outs, Fraction(25))
    graph = args[args.index("-filter_complex") + 1]
    assert args.count("-i") == 1
    assert graph.count("scale=") == 2
    assert "fps=25,split=2[s0][s1]" in graph
    assert "[s0]scale=1280:720:flags=lanczos,setsar=1,split=2[v0][v1]" in graph
    assert "[s1]scale=640:360:flags=lanczos,setsar=1,split=2[v2][v3]" in graph
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
