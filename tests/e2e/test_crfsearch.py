"""The CRF search on real clips: the CRF it finds gives a full encode near the target and
near the predicted size, a second search reads every probe from the cache, a target out
of reach keeps the original with the reason, and a probe that cannot be scored is a
scoring failure, never "unreachable"."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import av
import pytest

from hevcq.errors import FailureClass, PermanentError
from hevcq.ledger import JobKey
from hevcq.media.crfsearch import (
    DamagedSource,
    SampleRules,
    Searcher,
    SearchResult,
    Unreachable,
    cut_samples,
    find_crf,
    first_damage_s,
    probe_plan,
    sample_format,
    sample_plan,
    scan_source,
    video_size,
)
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg, run_ffmpeg
from hevcq.media.model import EncodePlan
from hevcq.media.probe import probe
from hevcq.media.quality import (
    ScoringError,
    measure,
    no_score,
    score,
    score_batch,
    xpsnr_score,
)
from hevcq.media.samples import make_clip
from hevcq.pools import Metric, Pool
from hevcq.worker.runner import CRF_CACHE, JobContext, JobRunner, JobSpec
from tests.e2e.farmkit import pool_dir
from tests.e2e.test_choose_pools import ingest
from tests.fakes import FakeStore

pytestmark = pytest.mark.e2e
KEY = "TODO/a.mp4"


def pool(codec: str = "hevc", **quality: object) -> Pool:
    return Pool.model_validate(
        {
            "name": "q",
            "applies": {"source_codecs": ["h264", "hevc"]},
            "encode": {"codec": codec, "preset": "ultrafast"},
            **({"quality": quality} if quality else {}),
        }
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 s: long enough to be searched on a sample (one of 20 s), not the whole file."""
    return make_clip(tmp_path_factory.mktemp("c") / "clip.mp4", width=160, height=90, seconds=30)


@pytest.fixture(scope="module")
def phone_clip(clip: Path) -> Path:
    """The same picture with a phone's timing: frames 20-45 ms apart, on no fixed grid."""
    vfr = clip.with_name("vfr.mp4")
    subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(clip),
            "-vf",
            "setpts='(N/24+0.012*sin(N*1.7))/TB'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "copy",
            str(vfr),
        ],
        check=True,
    )
    return vfr


@pytest.fixture(scope="module")
def dropped_clip(clip: Path) -> Path:
    """A phone's other timing: a 30 fps grid with frames dropped in an uneven pattern. In
    Matroska's 1 ms ticks the average rate divides none of its timestamps: an encoder
    timed by that rate merged frames (the sample mis-scored), and one told that rate
    spent 9.5 % more bytes on the sample than on the whole (``sample_format``)."""
    vfr = clip.with_name("dropped.mp4")
    drop = "select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,11)\\,5))'"
    ffmpeg_args = ["-i", str(clip), "-vf", f"fps=30,{drop}", "-fps_mode", "vfr"]
    ffmpeg_args += ["-c:v", "libx264", "-preset", "ultrafast", "-an", str(vfr)]
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *ffmpeg_args], check=True
    )
    return vfr


def searcher(tmp_path: Path, ffmpeg: str | None = None) -> Searcher:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return Searcher(
        ffmpeg=ffmpeg or find_ffmpeg(),
        ffmpeg_version="test",
        scratch=scratch,
        cache_dir=tmp_path / "cache",
        threads=2,
    )


def plan_for(src: Path, p: Pool) -> EncodePlan:
    plan = decide(probe(src), p, src.name)
    assert isinstance(plan, EncodePlan)
    return plan


def encode(src: Path, dst: Path, plan: EncodePlan) -> Path:
    args = build_args(find_ffmpeg(), src, dst, plan, threads=2)
    subprocess.run([a for a in args if a not in ("-progress", "pipe:1")], check=True)
    return dst


@pytest.mark.parametrize("name", ["clip", "phone_clip", "dropped_clip"])
def test_the_crf_found_reaches_the_target_on_the_whole_file_at_the_size_predicted(
    tmp_path, request, name
) -> None:
    src: Path = request.getfixturevalue(name)
    plan = plan_for(src, pool())
    found = find_crf(searcher(tmp_path), src, plan, probe(src), source_id="e1", target=93.0)
    assert isinstance(found, SearchResult)
    assert 1 <= len(found.probes) <= 6
    assert not found.cached
    assert found.predicted_score >= 93.0
    full = encode(src, tmp_path / "full.mp4", dataclasses.replace(plan, crf=found.crf))
    got = score(find_ffmpeg(), src, full, threads=2)
    assert abs(got.mean - 93.0) < 2.0
    assert abs(got.mean - found.predicted_score) < 1.0
    actual = full.stat().st_size
    assert abs(found.predicted_bytes - actual) / actual < 0.05
    assert found.predicted_percent == pytest.approx(
        100 * found.predicted_bytes / src.stat().st_size, abs=0.01
    )
    # One CRF more must have failed the target (or been past the search's range).
    above = [p for p in found.probes if p.crf == found.crf + 1]
    assert not above or above[0].score < 93.0


def test_an_mp4_source_is_sampled_to_mp4_and_anything_else_to_matroska(tmp_path, clip) -> None:
    mkv = tmp_path / "clip"  # no extension, as a worker's scratch copy has none
    remux = [find_ffmpeg(), "-loglevel", "error", "-i", f"file:{clip}", "-c", "copy"]
    run_ffmpeg(
        [*remux, "-f", "matroska", f"file:{mkv}"],
        on_progress=None,
        stop=threading.Event(),
        stall_timeout_s=60,
    )
    notes = tmp_path / "notes"
    notes.write_text("meeting notes\n")
    assert [sample_format(p) for p in (clip, mkv, notes)] == ["mp4", "matroska", "matroska"]


def test_a_second_search_encodes_nothing(tmp_path, clip) -> None:
    plan = plan_for(clip, pool())
    first = find_crf(searcher(tmp_path), clip, plan, probe(clip), source_id="e1", target=90.0)
    # An ffmpeg that cannot run: any probe encoded would fail the search.
    again = find_crf(
        searcher(tmp_path, ffmpeg="/nonexistent/ffmpeg"),
        clip,
        dataclasses.replace(plan, pool="another pool"),
        probe(clip),
        source_id="e1",
        target=90.0,
    )
    assert isinstance(first, SearchResult)
    assert isinstance(again, SearchResult)
    assert again.cached
    assert all(p.cached for p in again.probes)
    assert (again.crf, again.predicted_bytes) == (first.crf, first.predicted_bytes)
    assert not list((tmp_path / "scratch").iterdir())  # nothing cut either
    # Another source, or another ffmpeg, is searched again.
    with pytest.raises(Exception, match="nonexistent"):
        find_crf(
            searcher(tmp_path, ffmpeg="/nonexistent/ffmpeg"),
            clip,
            plan,
            probe(clip),
            source_id="e2",
            target=90.0,
        )


def test_a_target_out_of_reach_says_why(tmp_path, clip) -> None:
    plan = plan_for(clip, pool())
    run = searcher(tmp_path)
    small = find_crf(run, clip, plan, probe(clip), source_id="e1", target=93.0, max_size_percent=20)
    clip_bytes = clip.stat().st_size
    assert isinstance(small, Unreachable)
    assert small.reason.startswith("VMAF 93 not reached within 20 % of the source size (CRF ")
    # It stopped at the first probe that failed the target already too large.
    over = [p for p in small.probes if p.score < 93.0 and p.predicted_bytes > 0.2 * clip_bytes]
    assert over, small.probes
    assert small.probes[-1] == over[0]
    perfect = find_crf(run, clip, plan, probe(clip), source_id="e1", target=100.0)
    assert isinstance(perfect, Unreachable)
    assert perfect.reason.startswith("VMAF 100 not reached at CRF 10 or above")
    assert len(perfect.probes) <= 6


def test_probes_are_scored_without_neg_which_only_an_output_reports(tmp_path, clip) -> None:
    # An ffmpeg that writes down every command it runs, then runs it.
    calls = tmp_path / "calls"
    shim = tmp_path / "ffmpeg"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{calls}"\nexec "{find_ffmpeg()}" "$@"\n')
    shim.chmod(0o755)
    plan = plan_for(clip, pool())
    found = find_crf(
        searcher(tmp_path, ffmpeg=str(shim)), clip, plan, probe(clip), source_id="n", target=93.0
    )
    assert isinstance(found, SearchResult)
    scorings = [line for line in calls.read_text().splitlines() if "libvmaf=" in line]
    assert len(scorings) == len(found.probes)  # one sample: one scoring per probe
    assert not [line for line in scorings if "vmaf_neg" in line]
    # An output's own score still reports NEG beside it.
    full = encode(clip, tmp_path / "full.mp4", dataclasses.replace(plan, crf=found.crf))
    assert score(find_ffmpeg(), clip, full, threads=2).neg_mean is not None


def hdr_clip(tmp_path: Path) -> Path:
    """An HDR (PQ) clip: the VMAF models cannot score it."""
    hdr = tmp_path / "hdr.mp4"
    subprocess.run(
        [
            find_ffmpeg(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:duration=1",
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc",
            str(hdr),
        ],
        check=True,
    )
    return hdr


def test_a_probe_that_cannot_be_scored_is_a_scoring_failure(tmp_path) -> None:
    hdr = hdr_clip(tmp_path)
    plan = plan_for(hdr, pool(codec="h264"))  # an HEVC pool would skip it
    with pytest.raises(ScoringError, match="HDR video"):
        find_crf(searcher(tmp_path), hdr, plan, probe(hdr), source_id="h", target=90.0)


def test_an_xpsnr_target_is_searched_on_xpsnr_and_the_full_encode_lands_near_it(
    tmp_path, clip
) -> None:
    # 31 dB: about what VMAF 93 is on this clip (CRF 22 reaches both here).
    plan = plan_for(clip, pool())
    found = find_crf(
        searcher(tmp_path), clip, plan, probe(clip), source_id="e1", target=31.0, metric="xpsnr"
    )
    assert isinstance(found, SearchResult)
    assert 1 <= len(found.probes) <= 6
    assert found.predicted_score >= 31.0
    full = encode(clip, tmp_path / "full.mp4", dataclasses.replace(plan, crf=found.crf))
    got = xpsnr_score(find_ffmpeg(), clip, full)
    assert abs(got.mean - 31.0) < 1.0
    assert abs(got.mean - found.predicted_score) < 0.5
    above = [p for p in found.probes if p.crf == found.crf + 1]
    assert not above or above[0].score < 31.0
    # Its probes answer the same XPSNR search again, and never a VMAF one.
    gone = searcher(tmp_path, ffmpeg="/nonexistent/ffmpeg")
    again = find_crf(gone, clip, plan, probe(clip), source_id="e1", target=31.0, metric="xpsnr")
    assert isinstance(again, SearchResult)
    assert (again.cached, again.crf) == (True, found.crf)
    with pytest.raises(Exception, match="nonexistent"):
        find_crf(gone, clip, plan, probe(clip), source_id="e1", target=93.0)
    small = find_crf(
        searcher(tmp_path),
        clip,
        plan,
        probe(clip),
        source_id="e1",
        target=31.0,
        max_size_percent=20,
        metric="xpsnr",
    )
    assert isinstance(small, Unreachable)
    assert small.reason.startswith("XPSNR 31 dB not reached within 20 % of the source size")


# --- in the worker -------------------------------------------------------------------------


def run_job(tmp_path: Path, clip: Path, p: Pool, store: FakeStore | None = None):
    store = store or FakeStore()
    data = clip.read_bytes()
    store.add(KEY, etag="e1", data=data)
    spec = JobSpec(JobKey(KEY, "q", "e1", p.settings_hash()), p, "media", "DONE/q/a.mp4", len(data))
    runner = JobRunner(
        store,
        ffmpeg=find_ffmpeg(),
        work_dir=tmp_path / "work",
        worker_id="w",
        stall_timeout_s=60,
        threads=2,
        ffmpeg_version="test",
    )
    ctx = JobContext()
    return runner.run(spec, ctx), ctx, store


def test_a_searching_pool_encodes_at_the_crf_found_and_says_so(tmp_path, clip, monkeypatch) -> None:
    runs: list[list[str]] = []

    def counted(args: list[str], **kw: Any) -> None:
        runs.append(args)
        run_ffmpeg(args, **kw)

    monkeypatch.setattr("hevcq.media.crfsearch.run_ffmpeg", counted)
    result, ctx, store = run_job(tmp_path, clip, pool(vmaf=90, max_size_percent=150))
    assert runs  # samples cut and probes encoded
    assert result.outcome == "done"
    assert result.crf is not None
    assert result.crf != 26  # not the pool's own CRF: searched
    assert result.predicted_vmaf >= 90
    assert result.vmaf is not None
    assert abs(result.vmaf - result.predicted_vmaf) < 1.5
    assert abs(result.predicted_bytes - result.output_bytes) / result.output_bytes < 0.05
    assert "search_s" in ctx.timings
    assert list((tmp_path / "work" / CRF_CACHE).glob("*.json"))
    # Run again (the output removed): every probe comes from the cache, the same CRF.
    del store.objects["DONE/q/a.mp4"]
    runs.clear()
    again, _, _ = run_job(tmp_path, clip, pool(vmaf=90, max_size_percent=150), store)
    assert again.outcome == "done"
    assert (again.crf, again.predicted_bytes) == (result.crf, result.predicted_bytes)
    assert runs == []


def test_a_short_clip_searched_whole_predicts_its_output_with_the_containers_bytes(
    tmp_path,
) -> None:
    """Searched whole, the probe is the output's video byte for byte: the prediction missed
    only the container's own bytes (the header, x265's parameter sets, the index), which
    made a five-frame clip 121 % of its prediction."""
    short = make_clip(tmp_path / "short.mp4", width=160, height=90, seconds=0.5)
    result, _, _ = run_job(tmp_path, short, pool(vmaf=90, max_size_percent=150))
    assert result.outcome == "done", result.reason
    assert result.output_bytes is not None
    assert result.predicted_bytes is not None
    # (what is left is the estimate of its re-encoded audio, a few per cent of half a second)
    assert abs(result.predicted_bytes - result.output_bytes) / result.output_bytes < 0.05


def test_an_xpsnr_pool_searches_and_scores_in_xpsnr(tmp_path, clip) -> None:
    result, _, _ = run_job(tmp_path, clip, pool(xpsnr=31, max_size_percent=150))
    assert result.outcome == "done"
    assert result.crf not in (None, 26)
    assert (result.vmaf, result.vmaf_low, result.vmaf_model, result.predicted_vmaf) == (
        None,
        None,
        None,
        None,
    )
    assert result.predicted_xpsnr >= 31
    assert abs(result.xpsnr - 31) < 1.0
    assert result.xpsnr_low <= result.xpsnr


def test_a_source_that_cannot_reach_the_target_within_the_limit_keeps_its_original(
    tmp_path, clip
) -> None:
    result, _, store = run_job(tmp_path, clip, pool(vmaf=93, max_size_percent=20))
    assert result.outcome == "skipped"
    assert result.reason.startswith(
        "kept the original: VMAF 93 not reached within 20 % of the source size"
    )
    assert result.failure_class is None
    assert "DONE/q/a.mp4" not in store.objects


def test_a_rendition_that_cannot_reach_the_target_is_not_made_and_keeps_nothing(
    tmp_path, clip
) -> None:
    """A rendition stands in for no original: its row says it was not made."""
    rendition = pool(vmaf=93, max_size_percent=20).model_copy(update={"output_suffix": ".small"})
    assert not rendition.may_replace_originals
    result, _, store = run_job(tmp_path, clip, rendition)
    assert result.outcome == "skipped"
    assert result.reason.startswith(
        "no output made: VMAF 93 not reached within 20 % of the source size"
    )
    assert "DONE/q/a.mp4" not in store.objects


def test_a_rendition_is_searched_and_scored_at_its_own_size(tmp_path) -> None:
    """Scored against its source at the source's size, a half-size rendition peaks near
    VMAF 88 at CRF 10, and a target of 95 made none. At its own size the search finds a
    CRF that reaches it, and the output's own score agrees."""
    src = make_clip(tmp_path / "wide.mp4", width=640, height=360, seconds=4)
    rendition = Pool.model_validate(
        {
            "name": "q",
            "output_suffix": ".small",
            "applies": {"source_codecs": ["h264"], "target_height": 180},
            "encode": {"preset": "ultrafast"},
            "quality": {"vmaf": 95, "max_size_percent": 80},
        }
    )
    assert rendition.scored_at_own_size
    result, _, store = run_job(tmp_path, src, rendition)
    assert result.outcome == "done", result.reason
    assert result.crf is not None
    assert result.crf > 14
    assert result.vmaf is not None
    assert result.predicted_vmaf is not None
    assert result.predicted_vmaf >= 95
    assert abs(result.vmaf - 95) < 1.5
    assert "DONE/q/a.mp4" in store.objects


def test_a_pool_that_only_scores_encodes_at_its_own_crf(tmp_path, clip) -> None:
    scored = pool(vmaf=90)
    result, _, _ = run_job(tmp_path, clip, scored)
    assert result.outcome == "done"
    assert result.crf == scored.encode.crf
    assert result.predicted_bytes is None
    assert result.vmaf is not None
    assert not (tmp_path / "work" / CRF_CACHE).exists()


def test_a_job_whose_probe_cannot_be_scored_fails_as_a_scoring_failure(
    tmp_path, clip, monkeypatch
) -> None:
    def unscorable(*args: Any, **kw: Any) -> None:
        raise ScoringError("scoring failed: libvmaf could not start")

    monkeypatch.setattr("hevcq.media.crfsearch.measure", unscorable)
    with pytest.raises(ScoringError, match="libvmaf could not start") as failed:
        run_job(tmp_path, clip, pool(vmaf=90, max_size_percent=80))
    assert failed.value.failure_class is FailureClass.SCORING


@pytest.mark.parametrize(
    "target",
    [
        {"vmaf": 90, "max_size_percent": 80},
        {"xpsnr": 30, "max_size_percent": 80},
        {"vmaf": 90},  # scored only
    ],
)
def test_an_hdr_source_is_encoded_at_the_pools_crf_unscored_and_says_why(
    tmp_path, monkeypatch, target
) -> None:
    # No score applies to HDR, so there is no CRF to search for and none to verify: the
    # pool's own settings, even under verify: quality, and the reason on the result.
    searched: list[object] = []
    monkeypatch.setattr("hevcq.worker.runner.find_crf", lambda *a, **k: searched.append(a))
    checked = pool(codec="h264", **target)
    # A high CRF: the tiny clip's encode must come out smaller than it, or it is kept.
    encode = checked.encode.model_copy(update={"crf": 45})
    checked = checked.model_copy(update={"verify": "quality", "encode": encode})
    result, _, store = run_job(tmp_path, hdr_clip(tmp_path), checked)
    assert result.outcome == "done", result.reason
    assert result.crf == checked.encode.crf
    assert result.reason == (
        "HDR source: quality scores do not apply to HDR;"
        f" encoded at the pool's CRF {checked.encode.crf}, not scored"
    )
    assert result.vmaf is None
    assert result.xpsnr is None
    assert result.predicted_bytes is None
    assert searched == []
    assert "DONE/q/a.mp4" in store.data


def tiny_clip(tmp_path: Path) -> Path:
    """A 16x16 clip (an icon's animation, a tracking pixel's video): smaller than VMAF
    measures."""
    tiny = tmp_path / "tiny.mp4"
    subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"),
            *(
                "-i",
                "testsrc2=size=16x16:rate=25:duration=2,noise=alls=60:allf=t",
                "-c:v",
                "libx264",
                "-qp",
                "0",
            ),
            str(tiny),
        ],
        check=True,
    )
    return tiny  # lossless: an encode of it comes out smaller, so it is not kept as it is


def test_a_picture_smaller_than_vmaf_measures_is_encoded_at_the_pools_crf_unscored(
    tmp_path, monkeypatch
) -> None:
    """Before, libvmaf crashed on it (SIGSEGV) and the job failed as a scoring failure."""
    searched: list[object] = []
    monkeypatch.setattr("hevcq.worker.runner.find_crf", lambda *a, **k: searched.append(a))
    checked = pool(vmaf=90, max_size_percent=80)
    encode = checked.encode.model_copy(update={"crf": 45})
    checked = checked.model_copy(update={"verify": "quality", "encode": encode})
    result, _, store = run_job(tmp_path, tiny_clip(tmp_path), checked)
    assert result.outcome == "done", result.reason
    assert result.reason == (
        "a 16x16 picture: VMAF measures pictures of 18 pixels a side or more;"
        " encoded at the pool's CRF 45, not scored"
    )
    assert result.vmaf is None
    assert searched == []
    assert "DONE/q/a.mp4" in store.data


def test_scoring_a_picture_smaller_than_vmaf_measures_says_so_and_xpsnr_scores_it(
    tmp_path,
) -> None:
    src = tiny_clip(tmp_path)
    with pytest.raises(ScoringError, match=r"^a 16x16 picture: VMAF measures .* not scored$"):
        score(find_ffmpeg(), src, src)
    with pytest.raises(ScoringError, match="16x16 picture"):
        score_batch(find_ffmpeg(), src, [src])
    assert no_score(src, "vmaf") is not None
    assert no_score(src, "xpsnr") is None
    assert xpsnr_score(find_ffmpeg(), src, src).mean > 0


def test_ingest_with_a_run_target_searches_each_file_pools_crf_and_a_rerun_does_nothing(
    tmp_path: Path,
) -> None:
    # The client and the workers derive the same pool from the run's target: the result
    # comes home as current, and the same run again finds nothing to do.
    pool_dir(tmp_path, ("hevc",))
    make_clip(tmp_path / "lib" / "trip.mp4", width=320, height=180, seconds=2)
    first = ingest(tmp_path, "--target-vmaf", "90")
    assert first.returncode == 0, first.stdout + first.stderr
    searched = r"VMAF \d+\.\d \(\d+\.\d low, NEG \d+\.\d\) at CRF \d+, \d+ % of the predicted size"
    assert re.search(searched, first.stdout), first.stdout
    assert (tmp_path / "out" / "hevc" / "trip.mp4").is_file()
    again = ingest(tmp_path, "--target-vmaf", "90")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "at CRF" not in again.stdout  # nothing encoded again
    assert "earlier" in again.stdout, again.stdout
    # Without the target the output is not the pool's own: the file is encoded again, and
    # the output made for the target, already home, is never overwritten by it.
    home = tmp_path / "out" / "hevc" / "trip.mp4"
    made_for_target = home.read_bytes()
    plain = ingest(tmp_path)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert "exists and differs; not overwriting" in plain.stdout, plain.stdout
    assert home.read_bytes() == made_for_target
    refused = ingest(tmp_path, "--target-vmaf", "0")
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr


def _master(dest: Path, codec_args: list[str]) -> Path:
    """30 s of ``make_clip``'s picture with a tone, in ``dest``'s container."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=30"]
    args += ["-f", "lavfi", "-i", "sine=duration=30", *codec_args, "-shortest", str(dest)]
    subprocess.run(args, check=True)
    return dest


@pytest.mark.parametrize(
    ("name", "codec_args", "fmt"),
    [
        # A ProRes master from an editor: QuickTime, whose codec MP4 cannot hold.
        ("master.mov", ["-c:v", "prores_ks", "-c:a", "pcm_s16le"], "mov"),
        # An MPEG program stream (a DVD recorder's .mpg): some packets carry no
        # presentation time, which no muxer takes as it stands.
        ("recording.mpg", ["-c:v", "mpeg2video", "-c:a", "mp2"], "matroska"),
        # AV1 in MP4 (a download, a screen recorder): PyAV names its stream by the
        # decoder that reads it (libdav1d), and the sample was cut to QuickTime, which
        # takes no AV1 ("av1 only supported in MP4 and AVIF").
        ("download.mp4", ["-c:v", "libsvtav1", "-preset", "12", "-g", "50", "-c:a", "aac"], "mp4"),
    ],
)
def test_sources_whose_samples_need_care_are_searched_on_cut_samples(
    tmp_path: Path, name: str, codec_args: list[str], fmt: str
) -> None:
    # Each failed its first cut ("codec not currently supported in container", "can't
    # write packet with unknown timestamp", "av1 only supported in MP4 and AVIF"), so any
    # pool with a target failed the job.
    src = _master(tmp_path / name, codec_args)
    assert sample_format(src) == fmt
    p = Pool.model_validate(
        {
            "name": "q",
            "applies": {"source_codecs": ["prores", "mpeg2video", "av1"]},
            "encode": {"codec": "hevc", "preset": "ultrafast"},
        }
    )
    run = searcher(tmp_path)
    found = find_crf(run, src, plan_for(src, p), probe(src), source_id=name, target=90.0)
    assert isinstance(found, SearchResult)
    assert found.probes
    # Searched on a 20 s sample cut from it, not on the whole file.
    info = probe(src)
    assert not sample_plan(info.duration_s, scan_source(src, 0).keyframes, run.rules).whole


@pytest.mark.parametrize("sound_s", [10, 60])
def test_a_short_clip_whose_sound_runs_on_predicts_the_size_of_its_picture(
    tmp_path, sound_s: int
) -> None:
    # 4 s of picture and more sound (a clip whose music runs on).
    # - 10 s: searched whole, the video's rate was spread over the container's 10 s, and
    #   the prediction came out two and a half times the video.
    # - 60 s: the one sample of a one-minute file was placed from 20 s to 40 s, where
    #   there is no picture, and the video's rate was counted over the minute: predicted
    #   at 3 to 5 times the source, so every pool kept the original.
    src = tmp_path / "clip.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"]
    args += ["-f", "lavfi", "-i", f"sine=duration={sound_s}", "-c:v", "libx264", "-c:a", "aac"]
    subprocess.run([*args, str(src)], check=True)
    info = probe(src)
    assert info.duration_s is not None
    assert info.duration_s > sound_s - 1
    plan = plan_for(src, pool())
    found = find_crf(searcher(tmp_path), src, plan, info, source_id="e1", target=93.0)
    assert isinstance(found, SearchResult)
    full = encode(src, tmp_path / "full.mp4", dataclasses.replace(plan, crf=found.crf))
    actual = full.stat().st_size
    assert abs(found.predicted_bytes - actual) / actual < 0.05


def test_a_live_recording_that_declares_no_length_predicts_its_re_encoded_sound(
    tmp_path,
) -> None:
    # Written to a pipe, as a browser's or OBS's recorder writes, a Matroska file has no
    # length in its header. Its AAC becomes Opus in the WebM output, and that sound was
    # predicted for a length of 0 s: the output came out 114 % of its prediction. (Such a
    # file's length is now measured from its packets, ``probe.packet_span_s``.)
    src = tmp_path / "live.mkv"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"]
    args += ["-f", "lavfi", "-i", "sine=duration=4", "-c:v", "libx264", "-c:a", "aac"]
    with src.open("wb") as out:
        subprocess.run([*args, "-f", "matroska", "pipe:1"], check=True, stdout=out)
    with av.open(str(src)) as f:
        assert f.duration is None  # nothing in the header
    assert probe(src).length_measured  # the length read from its packets instead
    # Within the 10 %: libopus's VBR spends some 15 % over its nominal rate on a
    # pure tone (the sound is predicted at the nominal rate, whatever the length).
    assert _webm_prediction_error(tmp_path, src) < 0.10


def _webm_prediction_error(tmp_path: Path, src: Path) -> float:
    """How far a search's predicted size of ``src`` in a WebM pool (its AAC re-encoded to
    Opus) is from the size of the full encode at the CRF found, as a share of the latter."""
    webm = Pool.model_validate(
        {
            "name": "q",
            "applies": {"source_codecs": ["h264"]},
            "encode": {"codec": "av1", "container": "webm", "preset": "12"},
        }
    )
    plan = plan_for(src, webm)
    assert [mode for _, mode in plan.audio] == ["libopus"]
    found = find_crf(searcher(tmp_path), src, plan, probe(src), source_id="e1", target=90.0)
    assert isinstance(found, SearchResult)
    full = encode(src, tmp_path / "full.webm", dataclasses.replace(plan, crf=found.crf))
    actual = full.stat().st_size
    return abs(found.predicted_bytes - actual) / actual


def test_a_subtitle_cue_far_past_the_end_does_not_lengthen_the_predicted_sound(
    tmp_path,
) -> None:
    # A 4 s clip whose subtitle track holds a cue at 20 minutes (timed for another cut):
    # Matroska declares 20 minutes. Its AAC becomes Opus in WebM, and that sound was
    # predicted for the declared 20 minutes: 973 % of the source, so it was never made.
    srt = tmp_path / "late.srt"
    srt.write_text(
        "1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:20:00,000 --> 00:20:02,000\nLate\n"
    )
    src = tmp_path / "clip.mkv"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"]
    args += ["-f", "lavfi", "-i", "sine=duration=4", "-i", str(srt)]
    args += ["-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-c:a", "aac"]
    subprocess.run([*args, "-c:s", "srt", str(src)], check=True)
    declared = probe(src).duration_s
    assert declared is not None
    assert declared > 1200
    assert _webm_prediction_error(tmp_path, src) < 0.10  # as the live recording's


def _recording(dest: Path, *codec_args: str) -> Path:
    """40 s of picture and sound from x264 with B-frames, keyframes 10 s apart (its
    default 250 frames at 25 fps), in ``dest``'s container."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=40"]
    args += ["-f", "lavfi", "-i", "sine=duration=40:sample_rate=44100"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", *codec_args, str(dest)]
    subprocess.run(args, check=True)
    return dest


@pytest.mark.parametrize("name", ["screen.mkv", "obs.flv", "recording.ts", "camera.avi"])
def test_every_sample_is_the_stretch_planned_whatever_the_container(
    tmp_path: Path, name: str
) -> None:
    # Matroska and MPEG-TS: ffmpeg seeks 3/23 s early where there are B-frames, so a
    # seek to a keyframe's time landed on the keyframe before, and the sample ran 10 s
    # long. FLV has no index: every seek started at the file's start, so a sample ran
    # from there, and one at the first keyframe came out empty (the keyframe's decode
    # time is before the file's start, and it was dropped with every frame after it).
    # AVI: ffmpeg "could not seek" to the first keyframe, and the cut came out empty.
    src = _recording(tmp_path / name, "-c:a", "aac")
    keyframes = scan_source(src, 0).keyframes
    assert len(keyframes) == 4
    spans = [(keyframes[0], 5.0), (keyframes[1], 5.0), (keyframes[3], 5.0)]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cut = cut_samples(
        find_ffmpeg(),
        src,
        spans,
        0,
        scratch,
        prefix="s",
        stop=threading.Event(),
        stall_timeout_s=60,
    )
    assert [p.name for p in cut] == ["s-0", "s-1", "s-2"]
    for sample in cut:
        _, seconds = video_size(sample)
        assert 4.9 <= seconds <= 5.2, (sample.name, seconds)
    # The first frame of each is the one at its keyframe: the picture there, decoded.
    for sample, (start, _) in zip(cut, spans, strict=True):
        assert _first_frame(sample) == _frame_at(src, start)
    assert sorted(p.name for p in scratch.iterdir()) == ["s-0", "s-1", "s-2"]  # no copy left


def _grey(frame: Any) -> bytes:
    """A frame's grey levels, row by row."""
    plane = frame.reformat(format="gray").planes[0]
    rows = bytes(plane)
    return b"".join(
        rows[y * plane.line_size : y * plane.line_size + plane.width] for y in range(plane.height)
    )


def _first_frame(path: Path) -> bytes:
    with av.open(str(path)) as f:
        return _grey(next(f.decode(video=0)))


def _frame_at(path: Path, start: float) -> bytes:
    """The source's frame shown ``start`` seconds after the file's start."""
    with av.open(str(path)) as f:
        origin = (f.start_time or 0) / 1_000_000
        for frame in f.decode(video=0):
            if frame.time is not None and frame.time - origin >= start - 0.001:
                return _grey(frame)
    raise AssertionError("no frame there")


def test_a_sample_that_comes_out_empty_fails_the_cut_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ffmpeg copies nothing and exits 0 where a seek finds no picture (as it did on an
    # FLV's first keyframe): the probe then failed on an empty file with a muxer's words,
    # and the samples cut before it stayed. Here an ffmpeg that copies the first span
    # and writes an empty file for the second.
    src = _recording(tmp_path / "clip.mkv", "-c:a", "aac")
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        'case "$*" in *" -ss 30."*) : > "${last#file:}" ;; *) exec "$REAL_FFMPEG" "$@" ;; esac\n'
    )
    fake.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("REAL_FFMPEG", find_ffmpeg())
    with pytest.raises(PermanentError, match=r"no video could be cut from the source at 30\.0"):
        cut_samples(
            str(fake),
            src,
            [(10.0, 5.0), (30.0, 5.0)],
            0,
            scratch,
            prefix="s",
            stop=threading.Event(),
            stall_timeout_s=60,
        )
    assert list(scratch.iterdir()) == []


def damaged_clip(tmp_path: Path) -> Path:
    """40 s of x264 at 160x90, keyframes 2 s apart, with 400 bytes flipped between 15 %
    and 85 % of the file: its pictures' data (the index is at the end), so frames from
    about 6 s in decode with errors, as a file damaged on a disk or in a transfer does."""
    clip = tmp_path / "damaged.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=40"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", str(clip)]
    subprocess.run(args, check=True)
    data = bytearray(clip.read_bytes())
    rng = random.Random(7)
    for _ in range(400):
        data[rng.randrange(len(data) * 15 // 100, len(data) * 85 // 100)] ^= 0xFF
    clip.write_bytes(bytes(data))
    return clip


def test_a_damaged_source_is_told_apart_not_searched(tmp_path: Path) -> None:
    # Its damaged frames are the decoder's repairs, which differ from one decode to the
    # next: its probes scored 67-89 at one CRF, and the search kept the original with
    # "VMAF not reached", which is not why.
    src = damaged_clip(tmp_path)
    plan = plan_for(src, pool())
    with pytest.raises(
        DamagedSource, match=r"its video does not decode cleanly at (\d+\.\d) s"
    ) as e:
        find_crf(searcher(tmp_path), src, plan, probe(src), source_id="d1", target=93.0)
    assert e.value.failure_class is FailureClass.SCORING
    at = float(re.findall(r"at (\d+\.\d) s", str(e.value))[0])
    assert 10.0 <= at <= 30.0  # in the one sample, 10-30 s


def test_an_open_gop_source_is_not_taken_for_damaged(tmp_path: Path) -> None:
    # A sample of an open-GOP stream starts on a keyframe whose next frames refer back past
    # it: the decoder reports them, and they are the cut's, not damage.
    src = tmp_path / "open.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=40"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "3"]
    args += ["-x264-params", "open-gop=1:keyint=50", str(src)]
    subprocess.run(args, check=True)
    plan = plan_for(src, pool())
    found = find_crf(searcher(tmp_path), src, plan, probe(src), source_id="o1", target=90.0)
    assert isinstance(found, SearchResult | Unreachable)
    assert found.probes


def test_a_broadcast_recording_that_starts_mid_gop_is_not_taken_for_damaged(
    tmp_path: Path,
) -> None:
    # A TV recorder starts writing wherever it tuned in: the file's first frames refer to
    # a keyframe it never got, no decoder shows them, and they were reported as damage
    # ("does not decode cleanly at 0.2 s"), so such recordings were never searched or
    # scored. The cut drops the TS packets of the first 0.8 s of a 2 s GOP.
    seconds = 20  # searched whole, so decoded from the file's first packet
    whole = tmp_path / "whole.ts"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=25:duration={seconds}"]
    # (veryfast: its B-frames and references are what the missing keyframe breaks)
    args += ["-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-f", "mpegts", str(whole)]
    subprocess.run(args, check=True)
    src = tmp_path / "recording.ts"
    data = whole.read_bytes()
    per_second = len(data) // seconds
    cut = (per_second * 8 // 10) // 188 * 188
    src.write_bytes(data[cut:])
    with av.open(str(src)) as f:
        first = next(p for p in f.demux(video=0) if p.size)
        assert not first.is_keyframe  # it does start mid-GOP
    plan = plan_for(src, pool())
    found = find_crf(searcher(tmp_path), src, plan, probe(src), source_id="m1", target=90.0)
    assert isinstance(found, SearchResult)


@pytest.mark.parametrize(
    "target", [{"vmaf": 90, "max_size_percent": 80}, {"xpsnr": 30, "max_size_percent": 80}]
)
def test_a_damaged_source_is_encoded_at_the_pools_crf_unscored_and_says_why(
    tmp_path: Path, target: dict[str, Any]
) -> None:
    # As an HDR source: the pool's own settings, no score, and the reason on the result.
    checked = pool(**target)
    encode = checked.encode.model_copy(update={"crf": 40})  # smaller than the source
    checked = checked.model_copy(update={"verify": "quality", "encode": encode})
    result, _, store = run_job(tmp_path, damaged_clip(tmp_path), checked)
    assert result.outcome == "done", result.reason
    assert result.crf == 40
    assert re.fullmatch(
        r"damaged source: its video does not decode cleanly at \d+\.\d s, and a score would"
        r" measure the decoder's repairs; encoded at the pool's CRF 40, not scored",
        result.reason or "",
    ), result.reason
    assert result.vmaf is None
    assert result.xpsnr is None
    assert result.predicted_bytes is None
    assert "DONE/q/a.mp4" in store.data


def test_a_source_that_cannot_seek_is_not_checked_for_damage(tmp_path: Path) -> None:
    # A raw H.264 stream has no index and no clock to seek by: PyAV raises, and the check
    # is left out rather than failing the job with an unexpected error.
    src = tmp_path / "raw.h264"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=10"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-f", "h264", str(src)]
    subprocess.run(args, check=True)
    assert first_damage_s(src, 0, [(4.0, 2.0)], [0.0, 2.0, 4.0]) is None


@pytest.mark.parametrize("name", ["recording.mp4", "recording.ts"])
def test_a_source_whose_keyframes_are_too_sparse_to_cut_is_sampled_where_planned(
    tmp_path: Path, name: str
) -> None:
    """A still opening and a noisy scene after it, in one GOP (a browser's or a screen
    recorder's keyframes are a minute or more apart). The sample planned for the middle
    can only be cut from the one keyframe: cut there, it held the still alone, the search
    chose a CRF for the still, and the noise came out far under the target. Read where
    it was planned (decoded from the keyframe), it holds both; and each probe encodes
    the sample's seconds, not the whole file's. MPEG-TS has no index to seek a keyframe
    by (a window read from it in place decoded to nothing): its video is copied first."""
    src = tmp_path / name
    graph = "[0][1]concat=n=2:v=1:a=0"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "smptehdbars=s=320x180:r=25:d=4", "-f", "lavfi"]
    args += ["-i", "testsrc2=s=320x180:r=25:d=12,noise=alls=20:allf=t", "-filter_complex", graph]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-g", "1000"]
    args += ["-sc_threshold", "0", str(src)]  # one keyframe, as such a recorder writes
    subprocess.run(args, check=True)
    info = probe(src)
    run = dataclasses.replace(searcher(tmp_path), rules=SampleRules(length_s=4.0))
    assert scan_source(src, 0).keyframes == (0.0,)
    assert sample_plan(info.duration_s, [0.0], run.rules).displaced
    plan = plan_for(src, pool())
    found = find_crf(run, src, plan, info, source_id="sparse", target=93.0)
    assert isinstance(found, SearchResult)
    full = encode(src, tmp_path / "full.mp4", dataclasses.replace(plan, crf=found.crf))
    got = score(find_ffmpeg(), src, full, threads=2)
    # The sample, 6 s to 10 s, is all noise; the still quarter before it scores higher.
    assert 0.0 <= got.mean - found.predicted_score < 1.5, (found, got)
    assert got.mean >= 93.0
    probes = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*.json")]
    encoded = sorted(doc["video_s"] for doc in probes if "video_s" in doc)
    assert len(encoded) == len(found.probes)
    assert all(abs(s - 4.0) < 0.1 for s in encoded), encoded  # the sample, not 16 s
    assert not list((tmp_path / "scratch").iterdir())  # nor any copy left behind


@pytest.mark.parametrize("metric", ["vmaf", "xpsnr"])
def test_a_window_read_in_place_is_scored_against_the_same_window(
    tmp_path: Path, metric: Metric
) -> None:
    """An encode of 4 s from 8 s into a one-GOP recording of bars then a moving pattern,
    scored against the source over the same window: the same frames on both sides.
    Scored against the source from its start, the bars are compared with the pattern."""
    src = tmp_path / "recording.mp4"
    graph = "[0][1]concat=n=2:v=1:a=0"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "smptehdbars=s=320x180:r=25:d=6", "-f", "lavfi"]
    args += ["-i", "testsrc2=s=320x180:r=25:d=10", "-filter_complex", graph]
    args += ["-c:v", "libx264", "-g", "1000", "-sc_threshold", "0", str(src)]
    subprocess.run(args, check=True)
    plan = probe_plan(plan_for(src, pool()), 20, whole=True)
    out = tmp_path / "window.mp4"
    cmd = build_args(find_ffmpeg(), src, out, plan, threads=2, window=(8.0, 4.0))
    subprocess.run([a for a in cmd if a not in ("-progress", "pipe:1")], check=True)
    assert abs(video_size(out)[1] - 4.0) < 0.1
    ff = find_ffmpeg()
    same = measure(ff, src, out, metric, threads=2, neg=False, window=(8.0, 4.0))
    other = measure(ff, src, out, metric, threads=2, neg=False)
    assert same.frames == 100
    good, bad = (90.0, 40.0) if metric == "vmaf" else (30.0, 15.0)  # XPSNR is in dB
    assert same.mean > good, same
    assert other.mean < bad, other
