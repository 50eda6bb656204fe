"""The CRF search's pure parts: where samples go, the bracket search against made-up VMAF
curves, the size prediction, what a probe's cache key covers, and the pool settings."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from hevcq.media.crfsearch import (
    MAX_PROBES,
    ProbeResult,
    SamplePlan,
    SampleRules,
    SourceScan,
    kept_bytes,
    over_the_limit,
    picture_samples,
    predict_bytes,
    probe_key,
    probe_plan,
    sample_plan,
    search,
)
from hevcq.media.decide import shares_encode
from hevcq.media.ffargs import build_args
from hevcq.media.model import Cover, EncodePlan, MediaInfo, VideoStream
from hevcq.messages import JobResult
from hevcq.metadata import META_TARGET_VMAF, client_target, target_metadata
from hevcq.pools import TARGET_SIZE_PERCENT, Pool, Quality

MIN = 60.0

# --- sample_plan -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "duration", "picture"),
    [
        ((0.0, 60.0), 60.0, (0.0, 60.0)),  # as long as its file
        ((0.0, 59.5), 60.0, (0.0, 60.0)),  # sound a few frames longer: the file's length
        ((0.0, 5.0), 60.0, (0.0, 5.0)),  # a short clip, a minute of sound
        ((100.0, 900.0), 1000.0, (100.0, 800.0)),  # starts late and ends early
        (None, 60.0, (0.0, 60.0)),  # no times on its packets
        ((0.0, 5.0), 0.0, (0.0, 0.0)),  # a file of unknown length: left to the search
    ],
)
def test_the_picture_is_the_file_unless_it_ends_well_before_it(
    span: tuple[float, float] | None, duration: float, picture: tuple[float, float]
) -> None:
    assert SourceScan((), {}, video_span=span).picture(duration) == picture


def test_samples_are_placed_within_the_picture() -> None:
    # Ten minutes of picture from 100 s in a file of twenty minutes: three samples, every
    # one inside the picture, on its keyframes (every 2 s).
    keys = tuple(100.0 + 2 * n for n in range(300))
    scan = SourceScan(keys, {}, video_span=(100.0, 700.0))
    plan, span = picture_samples(scan, 1200.0, SampleRules())
    assert span == (100.0, 600.0)
    assert len(plan.spans) == 3
    for start, length in plan.spans:
        assert start in keys
        assert start >= 100.0
        assert start + length <= 700.0
    # A picture as long as its file: the samples of before.
    whole = SourceScan(keys, {}, video_span=(0.0, 1200.0))
    assert picture_samples(whole, 1200.0, SampleRules())[0] == sample_plan(1200.0, keys)


def test_a_short_source_is_searched_whole() -> None:
    assert sample_plan(10.0) == SamplePlan(whole=True)
    assert sample_plan(23.0) == SamplePlan(whole=True)  # one 20 s sample: 87 % of it
    assert sample_plan(None) == SamplePlan(whole=True)
    assert sample_plan(0.0) == SamplePlan(whole=True)


def test_up_to_two_minutes_one_sample_in_the_middle() -> None:
    plan = sample_plan(60.0)
    assert plan == SamplePlan(whole=False, spans=((20.0, 20.0),))
    assert sample_plan(120.0).spans == ((50.0, 20.0),)


def test_over_two_minutes_at_least_three_samples_spread_evenly() -> None:
    plan = sample_plan(121.0)
    assert len(plan.spans) == 3
    assert [round(s + n / 2, 2) for s, n in plan.spans] == [30.25, 60.5, 90.75]
    assert all(n == 20.0 for _, n in plan.spans)


def test_one_sample_per_twelve_minutes_beyond_that() -> None:
    assert len(sample_plan(36 * MIN).spans) == 3
    assert len(sample_plan(36 * MIN + 1).spans) == 4
    assert len(sample_plan(120 * MIN).spans) == 10
    spans = sample_plan(120 * MIN).spans
    assert all(s > 0 and s + n < 120 * MIN for s, n in spans)
    assert sorted(spans) == list(spans)


def test_samples_covering_85_percent_use_the_whole_file() -> None:
    rules = SampleRules(length_s=20.0, min_count_above_s=30.0)
    assert sample_plan(70.0, rules=rules) == SamplePlan(whole=True)  # 3 x 20 = 86 %
    assert not sample_plan(71.0, rules=rules).whole  # 84.5 %


def test_samples_start_on_the_keyframe_before_and_end_on_the_one_after() -> None:
    keyframes = [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0, 36.0, 40.0, 44.0, 48.0]
    # planned: 20 s from 20.0 to 40.0 in a 60 s source
    assert sample_plan(60.0, keyframes).spans == ((20.0, 20.0),)
    every_six = [6.0 * n for n in range(10)]
    assert sample_plan(60.0, every_six).spans == ((18.0, 24.0),)  # 18 .. 42


def test_a_keyframe_rounded_a_hair_low_still_counts_as_the_start() -> None:
    assert sample_plan(60.0, [0.0, 20.0004, 40.0004]).spans == ((20.0, 20.0),)


def test_sparse_keyframes_end_a_sample_mid_gop_rather_than_stretch_it() -> None:
    plan = sample_plan(600.0, [0.0, 300.0])  # planned at 140, 290 and 440
    assert plan.spans == ((0.0, 20.0), (300.0, 20.0))  # the first two snapped to 0, merged
    assert all(n <= 2 * 20.0 for _, n in plan.spans)
    assert plan.displaced  # and stand for none of their places: the search reads these
    assert plan.planned == ((140.0, 20.0), (290.0, 20.0), (440.0, 20.0))


def test_a_plan_that_is_not_displaced_keeps_no_planned_spans() -> None:
    assert sample_plan(60.0, [4.0 * n for n in range(15)]).planned == ()


def test_planned_spans_count_from_the_file_start_as_the_cut_ones_do() -> None:
    """The picture starts 5 s into the file (sound first): both kinds of span move."""
    scan = SourceScan(keyframes=(5.0,), stream_bytes={}, video_span=(5.0, 65.0))
    plan, (start, picture) = picture_samples(scan, 600.0, SampleRules())
    assert (start, picture) == (5.0, 60.0)
    assert plan.displaced
    assert plan.spans == ((5.0, 20.0),)
    assert plan.planned == ((25.0, 20.0),)


@pytest.mark.parametrize(
    ("duration", "keyframes", "displaced"),
    [
        (60.0, [4.0 * n for n in range(15)], False),
        (60.0, [6.0 * n for n in range(10)], False),  # 18 .. 42 holds 30
        (60.0, [12.0 * n for n in range(5)], False),  # 12 .. 36 holds 30
        (60.0, [0.0, 20.0004, 40.0004], False),
        (60.0, [0.0], True),  # one keyframe: a 20 s sample of the first third
        (60.0, [0.0, 45.0], True),  # 0 .. 20 does not hold 30
        (300.0, [0.0, 100.0, 200.0], True),  # a browser's recording: 55, 140, 225 planned
        (300.0, [10.0 * n for n in range(30)], False),
    ],
)
def test_a_sample_that_no_longer_holds_the_middle_of_its_place_is_displaced(
    duration: float, keyframes: list[float], displaced: bool
) -> None:
    plan = sample_plan(duration, keyframes)
    assert not plan.whole
    assert plan.displaced is displaced


def test_short_probe_samples_of_a_clip_with_one_keyframe_are_displaced() -> None:
    """A per-title probe's 1.5 s sample of a 4 s sticker planned at its middle snaps to
    its only keyframe, at the start, where it was still transparent."""
    rules = SampleRules(length_s=1.5, every_s=30.0, min_count=1, min_count_above_s=0.0)
    assert sample_plan(4.0, [0.0], rules).displaced
    assert not sample_plan(4.0, rules=rules).displaced  # no keyframes known: as planned


def test_snapping_that_makes_samples_cover_most_of_the_file_uses_it_whole() -> None:
    assert sample_plan(30.0).spans == ((5.0, 20.0),)  # 67 %
    assert sample_plan(30.0, [0.0, 26.0]) == SamplePlan(whole=True)  # 0 .. 26: 87 %


# --- search ------------------------------------------------------------------------------


Curve = Callable[[int], float]


def fake(curve: Curve) -> tuple[Callable[[int], ProbeResult], list[int]]:
    tried: list[int] = []

    def probe(crf: int) -> ProbeResult:
        tried.append(crf)
        return ProbeResult(crf, curve(crf), 1000 * (60 - crf))

    return probe, tried


def truth(curve: Curve, target: float, lo: int, hi: int) -> int | None:
    return max((c for c in range(lo, hi + 1) if curve(c) >= target), default=None)


def linear(at20: float, slope: float) -> Curve:
    return lambda crf: min(100.0, at20 - slope * (crf - 20))


def logistic(mid: float, width: float) -> Curve:
    return lambda crf: 100.0 / (1 + math.exp((crf - mid) / width))


@pytest.mark.parametrize(
    "curve",
    [
        linear(95.3, 1.3),
        linear(99.0, 0.4),
        linear(90.0, 2.5),
        logistic(30.0, 4.0),
        logistic(22.0, 2.0),
        logistic(40.0, 6.0),
    ],
)
@pytest.mark.parametrize("target", [80.0, 90.0, 93.0, 95.0, 97.0])
def test_a_monotone_curve_gives_the_highest_crf_reaching_the_target(curve, target) -> None:
    probe, tried = fake(curve)
    found = search(probe, target, 10, 51, start=26)
    assert found.crf == truth(curve, target, 10, 51)
    assert len(tried) <= MAX_PROBES
    assert tried[0] == 26
    assert len(set(tried)) == len(tried)  # no CRF probed twice


def test_the_probes_are_logged_in_order_with_the_chosen_one() -> None:
    probe, tried = fake(linear(95.3, 1.3))
    found = search(probe, 95.0, 10, 51, start=26)
    assert [p.crf for p in found.probes] == tried
    assert found.chosen is not None
    assert found.chosen.crf == found.crf
    assert found.chosen.score >= 95.0


def test_a_flat_curve_above_the_target_goes_to_the_highest_crf() -> None:
    probe, tried = fake(lambda _crf: 99.5)
    found = search(probe, 95.0, 10, 51, start=26)
    assert found.crf == 51
    assert len(tried) <= MAX_PROBES


def test_a_flat_curve_below_the_target_is_unreachable() -> None:
    probe, tried = fake(lambda _crf: 80.0)
    found = search(probe, 95.0, 10, 51, start=26)
    assert found.crf is None
    assert found.chosen is None
    assert 10 in tried  # it went down to the lowest CRF before giving up
    assert len(tried) <= MAX_PROBES


def test_a_probe_failing_the_target_already_too_large_ends_the_search() -> None:
    curve = logistic(24.0, 1.5)  # passes 95 up to CRF 19; sizes are 1000 * (60 - crf)
    probe, tried = fake(curve)
    assert search(probe, 95.0, 10, 51, start=26).crf == 19
    assert tried == [26, 10, 18, 20, 19]
    # Allowed 38 500 bytes: CRF 20 fails at 40 000, so every CRF that passes is larger.
    probe, tried = fake(curve)
    found = search(probe, 95.0, 10, 51, start=26, too_big=lambda p: p.predicted_bytes > 38_500)
    assert tried == [26, 10, 18, 20]
    assert found.crf == 18  # measured to pass, and too large: the caller keeps the original


def test_a_passing_probe_too_large_does_not_end_the_search() -> None:
    probe, _ = fake(linear(95.3, 1.3))  # passes up to CRF 20
    found = search(probe, 95.0, 10, 51, start=26, too_big=lambda p: p.predicted_bytes > 39_000)
    assert found.crf == 20  # 40 000 bytes: the caller refuses it, the search still finds it


def test_a_target_not_reached_even_at_the_lowest_crf_is_unreachable() -> None:
    probe, tried = fake(linear(92.0, 1.0))  # 102 at CRF 10 would be, but capped: 100 at 12
    assert search(probe, 100.5, 10, 51, start=26).crf is None
    probe, tried = fake(logistic(15.0, 3.0))  # 84 at CRF 10
    assert search(probe, 95.0, 10, 51, start=26).crf is None
    assert tried[-1] == 10


def test_the_lowest_crf_passing_alone_is_the_answer() -> None:
    probe, _ = fake(lambda crf: 95.0 if crf <= 10 else 90.0)
    assert search(probe, 95.0, 10, 51, start=26).crf == 10


def test_a_start_outside_the_range_is_brought_in() -> None:
    probe, tried = fake(linear(95.3, 1.3))
    search(probe, 95.0, 10, 51, start=60)
    assert tried[0] == 51
    probe, tried = fake(linear(95.3, 1.3))
    search(probe, 95.0, 10, 51)
    assert tried[0] == 30


def test_never_more_than_six_probes_and_never_a_failing_answer() -> None:
    rng = random.Random(20261125)
    for _ in range(400):
        points = sorted((rng.uniform(0, 100) for _ in range(42)), reverse=True)
        table = dict(zip(range(10, 52), points, strict=True))
        noise = 2.0 if rng.random() < 0.3 else 0.0

        def curve(crf: int, table: dict[int, float] = table, noise: float = noise) -> float:
            return table[crf] + rng.uniform(-noise, noise)

        probe, tried = fake(curve)
        target = rng.uniform(50, 99)
        found = search(probe, target, 10, 51, start=rng.randint(10, 51))
        assert len(tried) <= MAX_PROBES
        assert found.crf is None or found.chosen.score >= target
        best = truth(curve, target, 10, 51)
        if not noise and found.crf is not None:
            assert best is not None
            assert found.crf <= best


# --- size --------------------------------------------------------------------------------


def test_size_is_the_samples_video_rate_times_the_duration_plus_what_is_kept() -> None:
    # 3 samples, 60 s of video in 6 MB: 100 kB/s; a 600 s source with 5 MB of audio
    assert predict_bytes(6_000_000, 60.0, 600.0, 5_000_000) == 65_000_000
    assert predict_bytes(0, 0.0, 600.0, 7) == 7


def plan(**kw: object) -> EncodePlan:
    base: dict = {
        "pool": "q",
        "container": "mp4",
        "video_index": 0,
        "width": 1920,
        "height": 1080,
        "rotation": 0,
        "ten_bit": False,
        "crf": 26,
        "preset": "medium",
        "audio": ((1, "copy"), (2, "aac")),
        "audio_bitrate_kbps": 128,
        "subtitles": ((3, "mov_text"),),
    }
    return EncodePlan(**{**base, **kw})


def test_copied_streams_keep_their_size_and_encoded_audio_takes_its_bit_rate() -> None:
    sizes = {0: 10**9, 1: 3_000_000, 2: 9_000_000, 3: 20_000}
    assert kept_bytes(plan(), sizes, 100.0) == 3_000_000 + 16_000 * 100 + 20_000


def test_encoded_surround_sound_counts_at_the_rate_of_its_pairs() -> None:
    sizes = {0: 10**9, 1: 3_000_000, 2: 9_000_000, 3: 20_000}
    surround = plan(audio_rates=((2, 384),))  # 128 kb/s for each of three pairs
    assert kept_bytes(surround, sizes, 100.0) == 3_000_000 + 3 * 16_000 * 100 + 20_000


def test_encoded_audio_is_counted_for_as_long_as_it_lasts_where_that_is_known() -> None:
    """A file's declared length may be a subtitle's: the sound lasts as long as itself."""
    sizes = {0: 10**9, 1: 3_000_000, 2: 9_000_000, 3: 20_000}
    lengths = {0: 6.0, 1: 6.0, 2: 6.0, 3: 1202.0}
    assert kept_bytes(plan(), sizes, 1202.0, lengths) == 3_000_000 + 16_000 * 6 + 20_000
    assert kept_bytes(plan(), sizes, 100.0, {}) == kept_bytes(plan(), sizes, 100.0)


def test_a_kept_cover_counts_at_its_size() -> None:
    """An output copies its cover as it is: left out, a small video with a large cover
    was predicted 16 % under what it came to."""
    sizes = {0: 10**9, 1: 3_000_000, 2: 9_000_000, 3: 20_000, 4: 700_000}
    covered = plan(covers=(Cover(4, "mjpeg", "cover.jpg", "image/jpeg"),))
    assert kept_bytes(covered, sizes, 100.0) == kept_bytes(plan(), sizes, 100.0) + 700_000


# --- the cache key -----------------------------------------------------------------------


def key_args(p: EncodePlan, threads: int | None = None) -> list[str]:
    return build_args("ffmpeg", Path("sample"), Path("probe"), p, threads=threads)[1:]


def test_a_probe_encodes_the_video_alone() -> None:
    p = probe_plan(plan(video_index=2), 31, whole=False)
    assert (p.crf, p.video_index, p.audio, p.subtitles, p.attachments) == (31, 0, (), (), False)
    assert probe_plan(plan(video_index=2), 31, whole=True).video_index == 2


def test_the_key_covers_source_samples_arguments_and_ffmpeg_and_nothing_else() -> None:
    samples = SamplePlan(False, ((10.0, 20.0),))
    args = key_args(probe_plan(plan(), 24, whole=False))
    key = probe_key("etag-1", samples, args, "n9.0.2")
    assert key == probe_key("etag-1", samples, list(args), "n9.0.2")
    others = {
        probe_key("etag-2", samples, args, "n9.0.2"),
        probe_key("etag-1", SamplePlan(False, ((10.0, 21.0),)), args, "n9.0.2"),
        probe_key("etag-1", SamplePlan(True), args, "n9.0.2"),
        probe_key("etag-1", samples, key_args(probe_plan(plan(), 25, whole=False)), "n9.0.2"),
        probe_key("etag-1", samples, key_args(probe_plan(plan(), 24, whole=False), 4), "n9.0.2"),
        probe_key(
            "etag-1", samples, key_args(probe_plan(plan(preset="slow"), 24, whole=False)), "n9.0.2"
        ),
        probe_key("etag-1", samples, args, "n9.0.3"),
        probe_key("etag-1", samples, args, "n9.0.2", own_size=True),  # scored at its size
        # the same span read by seeking holds its own frames, not the GOPs around it
        probe_key("etag-1", SamplePlan(False, ((10.0, 20.0),), seek=True), args, "n9.0.2"),
    }
    assert key not in others
    assert len(others) == 9


def test_two_pools_with_the_same_plan_share_their_probes() -> None:
    # Another pool name, audio and subtitles: none of it reaches a probe's arguments.
    mine = key_args(probe_plan(plan(), 24, whole=False))
    theirs = key_args(probe_plan(plan(pool="other", audio=(), subtitles=()), 24, whole=False))
    assert mine == theirs


# --- the pool ----------------------------------------------------------------------------


def pool(**quality: object) -> Pool:
    doc: dict = {"name": "q", "applies": {"source_codecs": ["h264"]}}
    if quality:
        doc["quality"] = quality
    return Pool.model_validate(doc)


def test_a_size_limit_turns_the_search_on_and_a_target_alone_does_not() -> None:
    assert pool(vmaf=95, max_size_percent=80).quality.searches
    assert not pool(vmaf=95).quality.searches
    assert pool(vmaf=95, search=True).quality.searches
    assert not pool(vmaf=95, max_size_percent=None, search=False).quality.searches
    with pytest.raises(ValidationError, match="max_size_percent limits a CRF search"):
        Quality(vmaf=95, max_size_percent=80, search=False)
    with pytest.raises(ValidationError):
        Quality(vmaf=95, max_size_percent=0)


def test_only_a_search_changes_the_settings_hash() -> None:
    plain = pool().settings_hash()
    assert pool(vmaf=95).settings_hash() == plain
    assert pool(vmaf=95, phone=True, margin=3).settings_hash() == plain
    searched = pool(vmaf=95, max_size_percent=80).settings_hash()
    assert searched != plain
    assert pool(vmaf=94, max_size_percent=80).settings_hash() != searched
    assert pool(vmaf=95, max_size_percent=70).settings_hash() != searched
    assert pool(vmaf=95, max_size_percent=80, margin=2).settings_hash() == searched
    assert pool(vmaf=95, search=True).settings_hash() not in (plain, searched)


def test_a_searching_renditions_hash_says_it_is_scored_at_its_own_size() -> None:
    """Its CRF is chosen by a score at its own size now: outputs searched for a target at
    the source's size are not current for it (and one that scores only keeps its hash)."""

    def rendition(**quality: object) -> Pool:
        doc: dict = {"name": "r", "output_suffix": ".720p"}
        doc["applies"] = {"source_codecs": ["h264"], "target_height": 720}
        return Pool.model_validate({**doc, **({"quality": quality} if quality else {})})

    assert rendition().scored_at_own_size
    assert not pool().scored_at_own_size
    searched = rendition(vmaf=95, max_size_percent=80)
    material = {"vmaf": 95.0, "max_size_percent": 80.0, "scored_at": "own size"}
    blob = json.dumps(
        {
            "applies": searched.applies.model_dump(),
            "encode": searched.encode.hash_material(),
            "crf_search": material,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert searched.settings_hash() == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert rendition(vmaf=95).settings_hash() == rendition().settings_hash()


def test_a_run_target_makes_a_file_pool_search_for_it_within_its_own_limit_or_80() -> None:
    plain = pool().with_target(93)
    assert plain.quality == Quality(vmaf=93, max_size_percent=TARGET_SIZE_PERCENT, search=True)
    limited = pool(vmaf=95, max_size_percent=60, phone=True, margin=2).with_target(93)
    assert limited.quality == Quality(
        vmaf=93, max_size_percent=60, phone=True, margin=2, search=True
    )
    # The same target gives the same pool, so the client and the worker agree on it.
    assert pool().with_target(93).settings_hash() == plain.settings_hash()
    assert pool().with_target(94).settings_hash() != plain.settings_hash()
    assert plain.settings_hash() != pool().settings_hash()


def test_a_run_target_leaves_a_ladder_pool_as_it_is() -> None:
    ladder = Pool.model_validate(
        {"name": "hls", "applies": {"source_codecs": ["h264"]}, "ladder": {}}
    )
    assert ladder.with_target(93) == ladder


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [(None, None), ("93", 93.0), ("95.5", 95.5), ("100", 100.0)],
)
def test_an_upload_carries_its_run_target_as_text(raw: str | None, wanted: float | None) -> None:
    metadata = {} if raw is None else {META_TARGET_VMAF: raw}
    assert client_target(metadata) == wanted
    assert client_target(target_metadata(wanted)) == wanted


@pytest.mark.parametrize("raw", ["", "high", "0", "-1", "100.5", "nan", "inf", "1e999"])
def test_a_run_target_that_is_not_a_vmaf_is_refused_in_one_line(raw: str) -> None:
    with pytest.raises(ValueError, match="the upload's VMAF target") as refused:
        client_target({META_TARGET_VMAF: raw})
    assert "\n" not in str(refused.value)


SOURCE = MediaInfo(
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    duration_s=60.0,
    size_bytes=10**8,
    video=(VideoStream(0, "h264", 1920, 1080, "yuv420p", 8, fps=24.0),),
)


def test_a_searching_pool_shares_its_encode_only_with_the_same_target() -> None:
    searching = pool(vmaf=95, max_size_percent=80)
    assert not shares_encode(SOURCE, searching, pool(), "TODO/a.mp4")
    assert not shares_encode(SOURCE, searching, pool(vmaf=95), "TODO/a.mp4")
    assert not shares_encode(SOURCE, pool(), searching, "TODO/a.mp4")
    assert shares_encode(SOURCE, searching, pool(vmaf=95, max_size_percent=80), "TODO/a.mp4")
    assert shares_encode(SOURCE, pool(vmaf=95), pool(), "TODO/a.mp4")  # scored only: as before


def test_an_older_result_without_the_search_fields_still_parses() -> None:
    old = {"job_id": "j", "pool": "q", "bucket": "b", "source_key": "k", "outcome": "done"}
    r = JobResult.model_validate(old)
    assert (r.crf, r.predicted_vmaf, r.predicted_bytes) == (None, None, None)
    r = JobResult.model_validate({**old, "crf": 22, "predicted_bytes": 5, "predicted_vmaf": 95.1})
    assert (r.crf, r.predicted_bytes) == (22, 5)


@pytest.mark.parametrize(
    ("made", "limit", "why"),
    [
        (790, 80.0, None),
        (800, 80.0, None),  # at the limit is within it
        (820, None, None),  # no limit, nothing to break
        (
            820,
            80.0,
            "VMAF 93 not reached within 80 % of the source size"
            " (CRF 26 came to 82 % in the full encode; its samples predicted 24 %)",
        ),
    ],
)
def test_the_size_limit_holds_for_the_full_encode(
    made: int, limit: float | None, why: str | None
) -> None:
    got = over_the_limit(made, 1000, crf=26, predicted_bytes=240, target=93, max_size_percent=limit)
    assert got == why
