"""The corpus benchmark's pure parts: the baseline search step and the figure arithmetic."""

from __future__ import annotations

from benchmarks.bench_quality_corpus import (
    KINDS,
    Probe,
    baseline_next_crf,
    baseline_samples,
    baseline_search,
    bytes_saved,
    corpus,
    cpu_ratios,
    predicted_bytes,
    share_within_size,
    share_within_vmaf,
    source_args,
)


def _curve(crf: int) -> Probe:
    return Probe(crf, 100.0 - 0.5 * crf, 100.0 - 2 * crf)


def test_a_short_source_is_encoded_whole_and_a_long_one_gets_a_sample_per_12_minutes() -> None:
    assert baseline_samples(30.0) is None
    assert baseline_samples(600.0) == 1
    assert baseline_samples(25 * 60.0) == 3


def test_the_first_probe_is_the_middle_and_the_next_is_interpolated() -> None:
    assert baseline_next_crf([], 95.0, 10, 40) == 25
    probes = [Probe(20, 96.0, 50.0), Probe(30, 92.0, 30.0)]
    assert baseline_next_crf(probes, 95.0, 10, 40) == 22


def test_adjacent_bracketing_probes_close_the_search() -> None:
    assert baseline_next_crf([Probe(22, 95.5, 0), Probe(23, 94.5, 0)], 95.0, 10, 40) is None


def test_the_search_answers_the_highest_crf_reaching_the_target() -> None:
    best = baseline_search(_curve, 90.0, 10, 40)
    assert best is not None
    assert best.crf == 20


def test_a_result_above_the_encoded_percent_limit_is_refused() -> None:
    assert baseline_search(_curve, 99.0, 1, 40) is None


def test_the_figure_arithmetic() -> None:
    assert predicted_bytes(40.0, 1000) == 400
    assert share_within_vmaf([95.0, 96.2, 94.1, 93.0], 95.0) == 0.5
    assert share_within_size([(105, 100), (120, 100)]) == 0.5
    assert cpu_ratios([(1.0, 10.0), (3.0, 10.0), (2.0, 10.0)]) == (0.2, 0.3)
    saved, files = bytes_saved([(80, 95.0, 100, 94.0), (50, 90.0, 100, 95.0)])
    assert files == 1
    assert abs(saved - 0.2) < 1e-9


def test_the_corpus_has_thirty_files_covering_every_kind_and_two_long_sources() -> None:
    files = corpus()
    assert len(files) >= 30
    assert {s.kind for s in files} == set(KINDS)
    assert sum(s.seconds >= 600 for s in files) == 2
    assert len(corpus(quick=True)) == 4


def test_a_vfr_source_drops_frames_and_a_portrait_one_carries_its_rotation() -> None:
    vfr = next(s for s in corpus() if s.vfr)
    assert "-fps_mode" in source_args(vfr, "x.mp4")
    portrait = next(s for s in corpus() if s.rotation)
    assert source_args(portrait, "x.mp4")[:2] == ["-display_rotation", "90"]
