"""Scoring rules that need no video: the model per size, the 1 % low, the log's reading."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from hevcq.media.quality import (
    MODEL_4K,
    MODEL_HD,
    Picture,
    ScoringError,
    low_mean,
    model_for,
    parse_log,
    vmaf_graph,
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
        assert "setpts=PTS-STARTPTS,fps=30000/1001,format=yuv420p" in side  # zero, one rate
    assert "scale=1080:1920" in dist  # the output at the source's displayed size
    assert "version=vmaf_v0.6.1\\:name=vmaf|" in vmaf
    assert "vmaf_v0.6.1neg\\:name=vmaf_neg" in vmaf
    assert "enable_transform=true" in vmaf  # the phone model, asked for
    assert "shortest=1" in vmaf
    assert "n_subsample" not in vmaf  # an output's score uses every frame


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
