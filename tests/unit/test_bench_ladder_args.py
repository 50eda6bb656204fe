"""The ladder benchmark's baseline: Apple's fixed bitrates in place of our capped CRF."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from benchmarks.bench_ladder import _apple, _fixed_rate_args

from hevcq.media.ladder import LadderAudio, LadderPlan, choose_rungs, ladder_args


def test_the_fixed_ladder_drops_every_crf_and_sets_apples_rates() -> None:
    plan = LadderPlan(choose_rungs(1280, 720, Fraction(30)), Fraction(30), 0, (LadderAudio(1),))
    apple = _apple(plan.rungs)
    assert [r.maxrate_kbps for r in apple] == [3000, 1100, 365, 145]
    args = _fixed_rate_args(ladder_args("ffmpeg", Path("s"), Path("o"), plan), apple)
    assert not any(a.startswith("-crf") for a in args)
    rates = [args[i + 1] for i, a in enumerate(args) if a.startswith("-b:v:")]
    assert rates == ["3000k", "1100k", "365k", "145k"]
