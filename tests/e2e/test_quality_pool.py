"""A pool with a quality target: its outputs are scored, the score travels on the result,
and under ``verify: quality`` an output below the target is a failed job with the reason."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import structlog.testing

from hevcq.errors import PermanentError
from hevcq.ledger import JobKey
from hevcq.media.crfsearch import SearchResult
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.quality import MODEL_HD
from hevcq.media.samples import make_clip
from hevcq.messages import JobResult
from hevcq.pools import Pool
from hevcq.worker import runner as runner_module
from hevcq.worker.runner import JobContext, JobRunner, JobSpec
from tests.fakes import FakeStore

pytestmark = pytest.mark.e2e
KEY = "TODO/a.mp4"
OUT = "DONE/q/a.q.mp4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("c") / "clip.mp4"
    return make_clip(path, width=320, height=180, seconds=1).read_bytes()


def run(
    tmp_path: Path, store: FakeStore, clip: bytes, ctx: JobContext | None = None, **pool: object
) -> JobResult:
    p = Pool.model_validate(
        {
            "name": "q",
            "output_suffix": ".q",
            "applies": {"source_codecs": ["h264"]},
            "encode": {"preset": "ultrafast", "crf": pool.pop("crf", 28)},
            **pool,
        }
    )
    store.add(KEY, etag="e1", data=clip)
    spec = JobSpec(JobKey(KEY, "q", "e1", p.settings_hash()), p, "media", OUT, len(clip))
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=60
    )
    return runner.run(spec, ctx or JobContext())


def test_a_pool_with_a_target_puts_its_outputs_score_on_the_result(tmp_path, clip) -> None:
    with structlog.testing.capture_logs() as logs:
        result = run(tmp_path, FakeStore(), clip, quality={"vmaf": 50})
    # NEG is told beside the score, in the worker's log and on the result.
    (scored,) = [e for e in logs if e["event"] == "quality_scored"]
    assert scored["score"] == pytest.approx(result.vmaf, abs=0.001)
    assert 0 < scored["neg"] <= scored["score"] + 1
    assert result.vmaf_neg == pytest.approx(scored["neg"], abs=0.001)
    assert result.outcome == "done"
    assert result.vmaf is not None
    assert result.vmaf_low is not None
    assert 50 < result.vmaf <= 100
    assert result.vmaf_low <= result.vmaf
    assert result.vmaf_model == MODEL_HD


def test_a_searching_job_says_so_until_its_encode_counts(tmp_path, clip) -> None:
    """The live view and the dashboard read the step: a search reports no progress of its
    own, and a job at 0 % for minutes looked stuck."""
    seen: list[tuple[str, object]] = []
    ctx = JobContext(
        on_step=lambda step: seen.append(("step", step)),
        on_progress=lambda pct: seen.append(("progress", pct)),
        on_probe=lambda n: seen.append(("probe", n)),
        on_probe_progress=lambda pct: seen.append(("probe_done", pct)),
    )
    quality = {"vmaf": 50, "max_size_percent": 400}
    result = run(tmp_path, FakeStore(), clip, ctx, quality=quality)
    assert result.outcome == "done"
    steps = [value for kind, value in seen if kind == "step"]
    assert steps == ["searching", "encoding", "verifying"]
    # Each probe says it starts, numbered, while the job searches.
    probes = [value for kind, value in seen if kind == "probe"]
    assert probes == list(range(1, len(probes) + 1))
    assert probes
    assert all(seen.index(("probe", n)) < seen.index(("step", "encoding")) for n in probes)
    assert seen[0] == ("step", "searching")
    first_progress = next(i for i, (kind, _) in enumerate(seen) if kind == "progress")
    assert seen.index(("step", "encoding")) < first_progress
    # Each probe tells how far it has got, from its encode's progress to its score's
    # end, never going back; a library's time left weighs it.
    starts = [seen.index(("probe", n)) for n in probes] + [seen.index(("step", "encoding"))]
    for begin, end in itertools.pairwise(starts):
        told = [v for kind, v in seen[begin:end] if kind == "probe_done" and isinstance(v, float)]
        assert told
        assert told == sorted(told)
        assert told[-1] == pytest.approx(100.0)
        assert all(0 <= pct <= 100 for pct in told)


def test_a_pool_without_one_scores_nothing(tmp_path, clip) -> None:
    result = run(tmp_path, FakeStore(), clip)
    assert (result.outcome, result.vmaf, result.vmaf_low, result.vmaf_model) == (
        "done",
        None,
        None,
        None,
    )


def test_verify_quality_fails_an_output_below_the_target_and_uploads_nothing(
    tmp_path, clip
) -> None:
    store = FakeStore()
    with pytest.raises(PermanentError, match=r"^quality: VMAF \d+\.\d\d is below the pool's"):
        run(tmp_path, store, clip, crf=51, quality={"vmaf": 99.5, "margin": 0}, verify="quality")
    assert OUT not in store.objects  # refused before the upload
    result = run(tmp_path, FakeStore(), clip, crf=51, quality={"vmaf": 99.5, "margin": 0})
    assert result.outcome == "done"  # measured and reported, not enforced, under stream
    assert result.vmaf is not None
    assert result.vmaf < 99.5


def test_verify_quality_holds_an_xpsnr_output_to_its_target_less_the_margin(tmp_path, clip) -> None:
    store = FakeStore()
    with pytest.raises(PermanentError, match=r"^quality: XPSNR \d+\.\d\d dB is below the pool's"):
        run(tmp_path, store, clip, crf=51, quality={"xpsnr": 60, "margin": 0}, verify="quality")
    assert OUT not in store.objects
    passed = run(tmp_path, FakeStore(), clip, quality={"xpsnr": 20}, verify="quality")
    assert passed.outcome == "done"
    assert passed.xpsnr is not None
    assert passed.xpsnr > 20
    assert passed.vmaf is None
    # Below the target by less than the margin: accepted.
    near = run(tmp_path, FakeStore(), clip, quality={"xpsnr": passed.xpsnr + 0.5}, verify="quality")
    assert near.outcome == "done"


@pytest.mark.parametrize(("limit", "outcome"), [(5, "skipped"), (1000, "done")])
def test_an_encode_over_the_size_limit_its_samples_promised_is_not_kept(
    tmp_path, clip, monkeypatch, limit: float, outcome: str
) -> None:
    """Samples unlike the rest of their source (a video that stops for a minute and
    resumes had its one sample land in the stop) can predict far too small: the limit
    holds for what the full encode made."""

    def predicts_too_small(searcher, src, plan, info, **kw: object) -> SearchResult:
        return SearchResult(plan.crf, 60.0, 100, 0.01, (), cached=False)

    monkeypatch.setattr(runner_module, "find_crf", predicts_too_small)
    store = FakeStore()
    quality = {"vmaf": 50, "max_size_percent": limit}
    result = run(tmp_path, store, clip, quality=quality)
    assert result.outcome == outcome
    if outcome == "skipped":
        assert result.reason is not None
        assert result.reason.startswith(
            "no output made: VMAF 50 not reached within 5 % of the source size (CRF 28 came to"
        )
        assert result.reason.endswith("% in the full encode; its samples predicted 0 %)")
        assert OUT not in store.objects
    else:
        assert OUT in store.objects
