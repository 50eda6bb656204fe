"""A quality target in XPSNR instead of VMAF: the pool file names exactly one, the search
finds the CRF on dB curves, its probes are cached apart from VMAF's, and the result says
which metric was measured."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from hevcq.errors import ConfigError
from hevcq.media.crfsearch import (
    MAX_PROBES,
    SCALES,
    Measured,
    SamplePlan,
    _Cache,
    probe_key,
    search,
)
from hevcq.messages import JobResult
from hevcq.pools import Pool, Quality, load_pool
from tests.unit.test_crfsearch import Curve, fake

BASE = "applies: {source_codecs: [h264]}\n"


def pool(**quality: object) -> Pool:
    return Pool.model_validate(
        {"name": "q", "applies": {"source_codecs": ["h264"]}, "quality": quality}
    )


# --- the pool file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "quality", ["{vmaf: 95, xpsnr: 40}", "{max_size_percent: 80}", "{}", "{vmaf: null}"]
)
def test_a_pool_naming_both_targets_or_neither_is_refused_in_one_line(
    tmp_path: Path, quality: str
) -> None:
    f = tmp_path / "q.yaml"
    f.write_text(BASE + f"quality: {quality}\n")
    with pytest.raises(ConfigError, match="exactly one target: vmaf") as refused:
        load_pool(f)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"{f}: quality: ")


def test_an_xpsnr_target_is_read_through_metric_and_target(tmp_path: Path) -> None:
    f = tmp_path / "q.yaml"
    f.write_text(BASE + "verify: quality\nquality: {xpsnr: 41.5, max_size_percent: 80}\n")
    q = load_pool(f).quality
    assert q is not None
    assert (q.metric, q.target, q.vmaf, q.searches) == ("xpsnr", 41.5, None, True)
    vmaf = pool(vmaf=95).quality
    assert vmaf is not None
    assert (vmaf.metric, vmaf.target, vmaf.xpsnr) == ("vmaf", 95.0, None)


@pytest.mark.parametrize("value", [9.9, 100.1, -1])
def test_an_xpsnr_target_is_in_db_between_10_and_100(value: float) -> None:
    with pytest.raises(ValidationError, match="xpsnr"):
        Quality(xpsnr=value)


def test_a_searched_xpsnr_target_has_a_hash_of_its_own_and_vmaf_pools_keep_theirs() -> None:
    # The hash material of a VMAF search is as it was before XPSNR existed.
    assert pool(vmaf=95, max_size_percent=80).quality.hash_material() == {
        "vmaf": 95.0,
        "max_size_percent": 80.0,
    }
    xpsnr = pool(xpsnr=95, max_size_percent=80)
    assert xpsnr.quality.hash_material() == {"xpsnr": 95.0, "max_size_percent": 80.0}
    assert xpsnr.settings_hash() != pool(vmaf=95, max_size_percent=80).settings_hash()
    assert xpsnr.settings_hash() != pool(xpsnr=40, max_size_percent=80).settings_hash()
    # Scored only: the bytes are the pool's CRF's, whichever metric scores them.
    assert pool(xpsnr=40).settings_hash() == pool(vmaf=95).settings_hash()


def test_a_per_title_ladder_needs_a_vmaf_target() -> None:
    doc = {"name": "hls", "applies": {"source_codecs": ["h264"]}, "ladder": {"per_title": True}}
    with pytest.raises(ValidationError, match="picks its rungs by VMAF"):
        Pool.model_validate({**doc, "quality": {"xpsnr": 40}})
    assert Pool.model_validate({**doc, "quality": {"vmaf": 93}}).ladder is not None


def test_a_run_target_is_a_vmaf_even_on_an_xpsnr_pool() -> None:
    q = pool(xpsnr=40, max_size_percent=60, margin=0.5).with_target(93).quality
    assert q == Quality(vmaf=93, max_size_percent=60, margin=0.5, search=True)


# --- the search on dB --------------------------------------------------------------------


def truth(curve: Curve, target: float) -> int | None:
    return max((c for c in range(10, 52) if curve(c) >= target), default=None)


def db(at20: float, slope: float, bend: float = 0.0) -> Curve:
    """XPSNR falling about linearly with the CRF (``bend``: steeper at high CRFs)."""
    return lambda crf: at20 - slope * (crf - 20) - bend * (crf - 20) ** 2


@pytest.mark.parametrize(
    "curve",
    [db(32.35, 0.67), db(42.0, 0.4), db(38.0, 0.9, 0.01), db(45.0, 0.3, 0.02), db(36.0, 1.2)],
)
@pytest.mark.parametrize("target", [30.0, 34.0, 38.0, 41.0])
def test_an_xpsnr_search_finds_the_highest_crf_reaching_the_target(curve, target) -> None:
    probe, tried = fake(curve)
    found = search(probe, target, 10, 51, start=26, metric="xpsnr")
    assert found.crf == truth(curve, target)
    assert len(tried) <= MAX_PROBES
    assert len(set(tried)) == len(tried)


def test_the_vmaf_scale_would_misread_db() -> None:
    # On VMAF's scale a score near 40 is far from a perfect 100, where a CRF step barely
    # moves the distance: the search would read an XPSNR curve as flat there.
    curve = db(42.0, 0.4)
    on_db, _ = fake(curve)
    assert search(on_db, 38.0, 10, 51, start=26, metric="xpsnr").crf == truth(curve, 38.0)
    d = SCALES["vmaf"].distance
    assert (d(curve(26)) - d(curve(27))) > -SCALES["vmaf"].flat  # flat on VMAF's scale


def test_an_xpsnr_search_never_answers_a_crf_that_failed() -> None:
    rng = random.Random(27)
    for _ in range(200):
        top, slope = rng.uniform(35, 50), rng.uniform(0.2, 1.2)
        noise = rng.choice([0.0, 0.5])

        def curve(crf: int, top: float = top, slope: float = slope, noise: float = noise) -> float:
            return top - slope * (crf - 10) + rng.uniform(-noise, noise)

        probe, tried = fake(curve)
        target = rng.uniform(25, 48)
        found = search(probe, target, 10, 51, start=rng.randint(10, 51), metric="xpsnr")
        assert len(tried) <= MAX_PROBES
        assert found.crf is None or found.chosen.score >= target


# --- the probe cache ---------------------------------------------------------------------


def test_a_vmaf_probe_never_answers_an_xpsnr_search() -> None:
    samples, args = SamplePlan(False, ((10.0, 20.0),)), ["-crf", "24"]
    vmaf = probe_key("etag-1", samples, args, "n9.0.2")
    assert probe_key("etag-1", samples, args, "n9.0.2", "vmaf") == vmaf  # keys kept
    assert probe_key("etag-1", samples, args, "n9.0.2", "xpsnr") != vmaf


def test_a_probe_cached_before_xpsnr_existed_still_reads(tmp_path: Path) -> None:
    cache = _Cache(tmp_path, "etag-1")
    (tmp_path / "old.json").write_text(
        json.dumps({"vmaf": 93.5, "frames": 480, "video_bytes": 1000, "video_s": 20.0})
    )
    assert cache.probe("old") == Measured(93.5, 480, 1000, 20.0, cached=True)
    cache.keep_probe("new", Measured(41.25, 480, 900, 20.0))
    assert json.loads((tmp_path / "new.json").read_text())["score"] == 41.25
    assert cache.probe("new") == Measured(41.25, 480, 900, 20.0, cached=True)
    # the container's own bytes round-trip too (absent from the old one above: 0)
    cache.keep_probe("sized", Measured(41.25, 480, 900, 20.0, header_bytes=3542))
    assert cache.probe("sized") == Measured(41.25, 480, 900, 20.0, cached=True, header_bytes=3542)


# --- the result --------------------------------------------------------------------------


def test_a_result_names_its_metric_by_its_fields_and_older_results_still_parse() -> None:
    old = {"job_id": "j", "pool": "q", "bucket": "b", "source_key": "k", "outcome": "done"}
    r = JobResult.model_validate({**old, "vmaf": 95.0, "vmaf_low": 90.0, "predicted_vmaf": 95.1})
    assert (r.xpsnr, r.xpsnr_low, r.predicted_xpsnr) == (None, None, None)
    r = JobResult.model_validate({**old, "xpsnr": 41.2, "xpsnr_low": 38.0, "predicted_xpsnr": 41})
    assert (r.vmaf, r.xpsnr, r.xpsnr_low, r.predicted_xpsnr) == (None, 41.2, 38.0, 41.0)
