"""The corpus benchmark's pure parts: the baseline search step and the figure arithmetic."""

from __future__ import annotations

import pytest
from benchmarks.bench_quality_corpus import (
    KINDS,
    SIDES,
    Encoded,
    Outcome,
    Probe,
    Row,
    Source,
    baseline_next_crf,
    baseline_samples,
    baseline_search,
    baseline_spans,
    by_kind,
    bytes_saved,
    corpus,
    cpu_ratios,
    figures,
    guarantee,
    guarantee_crf,
    guarantee_figure,
    guarantee_pass,
    kind_note,
    predicted_bytes,
    selected,
    share_within_size,
    share_within_vmaf,
    source_args,
    summary,
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
    assert [s.kind for s in corpus(quick=True)] == list(KINDS)


def test_a_vfr_source_drops_frames_and_a_portrait_one_carries_its_rotation() -> None:
    vfr = next(s for s in corpus() if s.vfr)
    assert "-fps_mode" in source_args(vfr, "x.mp4")
    portrait = next(s for s in corpus() if s.rotation)
    assert source_args(portrait, "x.mp4")[:2] == ["-display_rotation", "90"]


def _row(
    name: str, kind: str, seconds: float, ours: tuple[int, float, float], fixed: int = 1000
) -> Row:
    """A file whose search predicted ``ours[0]`` bytes and got 1000 at VMAF ``ours[1]``,
    searching for ``ours[2]`` CPU seconds against a final encode of 10."""
    predicted, vmaf, cpu = ours
    final = Encoded(30, 800, vmaf, 10.0)
    return Row(
        name=name,
        kind=kind,
        seconds=seconds,
        input_bytes=5000,
        fixed=Encoded(26, fixed, 96.0, 12.0),
        ours=Outcome(30, predicted, cpu, final),
        baseline=Outcome(None, 0, 1.0, None, "not reached"),
    )


ROWS = [
    _row("a", "screen", 10.0, (820, 96.0, 4.0)),  # within both tolerances, as good as fixed
    _row("b", "screen", 700.0, (1000, 93.0, 2.0)),  # VMAF 2 short, size 25 % over
    _row("c", "grain", 20.0, (790, 96.2, 8.0), fixed=600),  # VMAF 1.2 over, cheaper fixed
]


def test_a_summary_counts_only_encoded_files_in_its_shares() -> None:
    ours = summary(ROWS, SIDES["hevcq"])
    assert (ours.files, ours.kept) == (3, 0)
    assert ours.vmaf_within == 1 / 3
    assert ours.size_within == 2 / 3
    assert ours.long_cpu == (0.2,)  # only the 700 s file is long
    # b's VMAF is below the fixed encode's: left out; a and c: 1600 against 1600
    assert (ours.saved, ours.saved_files) == (0.0, 2)
    base = summary(ROWS, SIDES["baseline"])
    assert (base.kept, base.vmaf_within, base.saved) == (3, None, None)


def test_the_breakdown_is_per_kind_in_kind_order() -> None:
    kinds = by_kind(list(reversed(ROWS)), SIDES["hevcq"])
    assert list(kinds) == ["screen", "grain"]
    assert kinds["screen"].vmaf_within == 0.5
    assert kind_note(kinds, "size_within") == "screen 0.50, grain 1.00"
    assert kind_note(by_kind(ROWS, SIDES["baseline"]), "saved") == "screen -, grain -"


def test_each_goal_is_judged_and_a_search_that_kept_everything_reports_no_share() -> None:
    figs = {f.name.split(": ", 1)[1].split(",")[0]: f for f in figures(ROWS)}
    vmaf = figs["share of files with final VMAF within 1.0 of 95"]
    assert (vmaf.median, vmaf.met) == (1 / 3, False)
    cpu = figs["search CPU over final-encode CPU"]
    assert cpu.met is True
    assert not any(f.name.startswith("baseline") for f in figures(ROWS))


def test_the_baseline_samples_sit_evenly_through_the_file() -> None:
    assert baseline_spans(600.0, 1) == [(290.0, 20.0)]
    assert baseline_spans(1800.0, 3) == [(290.0, 20.0), (890.0, 20.0), (1490.0, 20.0)]


def test_a_part_of_the_corpus_is_chosen_by_name_or_kind() -> None:
    files = corpus()
    assert selected(files, "") == files
    picked = selected(files, "grain, screen-1")
    assert {s.name for s in picked} == {
        "grain-0",
        "grain-1",
        "grain-2",
        "grain-3",
        "long-grain",
        "screen-1",
    }


def test_the_guarantee_crf_is_the_lowest_the_search_chose() -> None:
    assert guarantee_crf([27, 22, 26]) == 22
    assert guarantee_crf([]) is None


def test_each_file_is_compared_with_itself_at_the_guarantee_crf() -> None:
    files = corpus(quick=True)[:3]
    finals = [
        Encoded(27, 700, 95.5, 1.0),
        Encoded(22, 2000, 95.2, 1.0),
        Encoded(26, 500, 95.4, 1.0),
    ]
    asked: list[tuple[str, int]] = []

    def encode(src: Source, crf: int) -> Encoded:
        asked.append((src.name, crf))
        return Encoded(crf, 1000, 97.0 if src is files[0] else 94.8, 2.0)

    g = guarantee_pass(list(zip(files, finals, strict=True)), encode, target=95.0)
    assert g is not None
    # the file the search already encoded at CRF 22 is not encoded again
    assert asked == [(files[0].name, 22), (files[2].name, 22)]
    assert (g.crf, g.files, g.searched_bytes, g.fixed_bytes) == (22, 3, 3200, 4000)
    assert abs(g.saved - 0.2) < 1e-9
    assert (g.below_target, g.fixed_min_vmaf, g.searched_min_vmaf) == (1, 94.8, 95.2)
    fig = guarantee_figure("hevcq", g)
    assert (fig.median, fig.target, fig.met) == (g.saved, None, None)
    assert "CRF 22 on 3 files" in fig.notes
    assert "1 fixed encodes under 95" in fig.notes
    assert guarantee_pass([], encode) is None


def test_a_guarantee_is_over_one_crf() -> None:
    pair = (Encoded(26, 500, 95.4, 1.0), Encoded(22, 900, 96.0, 1.0))
    other = (Encoded(27, 500, 95.4, 1.0), Encoded(23, 900, 96.0, 1.0))
    with pytest.raises(ValueError, match="too many values"):
        guarantee([pair, other], 95.0)
