"""A per-title ladder from the pinned ffmpeg: probed, picked on its frontier, built and
passing every ladder check."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hevcq.media import pertitle
from hevcq.media.ffmpeg import find_ffmpeg, run_ffmpeg
from hevcq.media.ladder import MASTER, Rung, build_ladder, check_ladder, read_master
from hevcq.media.model import MediaInfo
from hevcq.media.pertitle import Pick, Prober, per_title_rungs, probe_points
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from tests.e2e.cutclips import late

pytestmark = pytest.mark.e2e


def test_a_per_title_ladder_is_built_from_its_probes_and_passes_every_check(
    tmp_path: Path,
) -> None:
    ffmpeg = find_ffmpeg()
    src = make_clip(tmp_path / "src.mp4", width=640, height=360, seconds=10, fps=25)
    info = probe(src)
    prober = Prober(ffmpeg, tmp_path, threads=2)
    points = probe_points(prober, src, info)
    assert {(p.short, p.crf) for p in points} == {(360, 20), (360, 28), (240, 20), (240, 28)}
    for short in (360, 240):
        hi, lo = (next(p for p in points if (p.short, p.crf) == (short, c)) for c in (20, 28))
        assert hi.kbps > lo.kbps > 0
        assert hi.vmaf > lo.vmaf
    rungs, picks = per_title_rungs(prober, src, info, 90.0)
    assert rungs
    assert max(r.short for r in rungs) <= 360
    assert all(r.crf is not None for r in rungs)
    assert not list(tmp_path.glob("pertitle-*"))  # samples and probes removed
    build_ladder(ffmpeg, src, tmp_path / "hls", info, rungs=rungs, threads=2)
    assert check_ladder(tmp_path / "hls") == []
    variants, _ = read_master(tmp_path / "hls" / MASTER)
    assert [v.height for v in variants] == [r.height for r in rungs]
    assert [p.crf for p in picks] == [r.crf for r in rungs]


def _still_clip(path: Path, seconds: float) -> Path:
    """A 640x360 H.264 clip of SMPTE bars that never change: a slide, a title card."""
    graph = f"smptehdbars=size=640x360:rate=25:duration={seconds:g}"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
    args += ["-i", graph, "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(args, check=True, capture_output=True)
    return path


def test_a_still_picture_is_probed_at_its_largest_size_only(tmp_path: Path) -> None:
    """Cheap at the top, a still gets one rung: the smaller sizes are never encoded."""
    src = _still_clip(tmp_path / "still.mp4", 6)
    info = probe(src)
    prober = Prober(find_ffmpeg(), tmp_path, threads=2)
    points = probe_points(prober, src, info, 95.0)
    assert {p.short for p in points} == {360}
    rungs, picks = per_title_rungs(prober, src, info, 95.0)
    assert [r.short for r in rungs] == [360]
    assert picks[0].vmaf >= 95.0
    # asked for more than any probe reaches, every size is probed for the rungs below
    assert {p.short for p in probe_points(prober, src, info, 100.0)} == {360, 240}
    # a source at a rate no still is coded at is probed at every size in one pass
    busy = dataclasses.replace(prober, top_first_below_bpp=0)
    assert {p.short for p in probe_points(busy, src, info, 95.0)} == {360, 240}
    assert not list(tmp_path.glob("pertitle-*"))


def test_a_clip_with_one_keyframe_is_probed_where_its_sample_was_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sticker or a short upload that opens black, in one GOP: the one sample planned at
    its middle can only start on its keyframe, at the black opening. Probed there, its
    ladder was picked for a black picture; it is read where it was planned instead,
    decoded from the keyframe, not cut (and not probed whole either)."""
    src = tmp_path / "sticker.mp4"
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "color=black:s=640x360:r=25:d=3", "-f", "lavfi"]
    args += ["-i", "testsrc2=s=640x360:r=25:d=3", "-filter_complex", "[0][1]concat=n=2:v=1:a=0"]
    args += ["-c:v", "libx264", "-g", "1000", "-sc_threshold", "0", str(src)]
    subprocess.run(args, check=True)
    info = probe(src)
    prober = Prober(find_ffmpeg(), tmp_path, threads=2)
    commands: list[list[str]] = []
    real = run_ffmpeg

    def recorded(args: list[str], **kwargs: Any) -> None:
        commands.append(args)
        real(args, **kwargs)

    monkeypatch.setattr(pertitle, "run_ffmpeg", recorded)
    points = probe_points(prober, src, info)
    assert min(p.kbps for p in points) > 20  # the pattern's rates, not a black picture's
    assert commands  # every probe command reads the window of the source itself
    for args in commands:
        i = args.index("-i")
        assert args[i + 1] == f"file:{src}"
        assert args[i - 4] == "-ss"
        assert args[i - 2] == "-t"
    assert not list(tmp_path.glob("pertitle-*"))


def _per_title_job(
    tmp_path: Path, clip: Path, ctx: Any = None, store: Any = None, **ladder: Any
) -> tuple[Any, bool]:
    """A per-title ``hls`` job on ``clip`` through ``JobRunner`` with a fake store (or
    ``store``), the pool's ``ladder`` settings added: its result, and whether its output
    was committed."""
    from hevcq.keys import done_key  # noqa: PLC0415
    from hevcq.ledger import JobKey  # noqa: PLC0415
    from hevcq.pools import Pool  # noqa: PLC0415
    from hevcq.worker.runner import JobContext, JobRunner, JobSpec  # noqa: PLC0415
    from tests.fakes import FakeStore  # noqa: PLC0415

    pool = Pool.model_validate(
        {
            "name": "hls",
            "applies": {"source_codecs": ["h264", "hevc"]},
            "ladder": {"per_title": True, "poster": False, **ladder},
            "quality": {"vmaf": 90},
        }
    )
    key = f"TODO/{clip.name}"
    store = store or FakeStore()
    store.add(key, etag="e1", data=clip.read_bytes())
    out_key = done_key(key, "hls", pool.output_suffix, extension=pool.fixed_extension)
    spec = JobSpec(JobKey(key, "hls", "e1", pool.settings_hash()), pool, "media", out_key, 1)
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=60
    )
    return runner.run(spec, ctx or JobContext()), out_key in store.data


def test_a_per_title_pool_runs_its_probes_before_the_ladder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hevcq.worker.runner as runner_module  # noqa: PLC0415

    clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=8, fps=25)
    calls: list[float] = []

    def spy(
        run: Prober, src: Path, info: MediaInfo, target: float
    ) -> tuple[tuple[Rung, ...], list[Pick]]:
        calls.append(target)
        got = per_title_rungs(run, src, info, target)
        assert got[0]
        return got

    monkeypatch.setattr(runner_module, "per_title_rungs", spy)
    seen: list[tuple[str, object]] = []
    phases: list[str] = []

    def on_step(step: str) -> None:
        seen.append(("step", step))
        phases.append(ctx.phase)

    ctx = runner_module.JobContext(
        on_step=on_step,
        on_progress=lambda pct: seen.append(("progress", pct)),
        on_probe=lambda n: seen.append(("probe", n)),
    )
    result, committed = _per_title_job(tmp_path, clip, ctx)
    assert result.outcome == "done", result.reason
    assert calls == [90.0]
    assert committed
    # Measured as a file output is: its top rung, full length, beside what was predicted.
    assert result.vmaf is not None
    assert result.vmaf_low is not None
    assert result.vmaf_low <= result.vmaf
    assert result.vmaf_model == "vmaf_v0.6.1"
    assert result.predicted_vmaf is not None
    assert abs(result.vmaf - result.predicted_vmaf) < 3.0, result
    assert result.crf is not None
    # The size its probes predicted: the H.264 rungs' video at their curves' rates, the
    # rest (audio, playlists) as made.
    assert result.predicted_bytes is not None
    assert result.output_bytes is not None
    assert 0.6 < result.output_bytes / result.predicted_bytes < 1.5, result
    # Each probe command says it starts, numbered, while the job searches.
    probes = [value for kind, value in seen if kind == "probe"]
    assert probes == list(range(1, len(probes) + 1))
    assert probes
    assert all(seen.index(("probe", n)) < seen.index(("step", "encoding")) for n in probes)
    # What a running job shows: the step while it probes, then the ladder's own percent
    # as it encodes, then the step again while every rung is decoded and checked.
    steps = [value for kind, value in seen if kind == "step"]
    assert steps == ["searching", "encoding", "verifying"]
    encoding, verifying = seen.index(("step", "encoding")), seen.index(("step", "verifying"))
    percents = [v for kind, v in seen[encoding:verifying] if isinstance(v, float)]
    assert percents
    assert percents[-1] > 90
    assert percents == sorted(percents)
    # While the rungs are checked a stop gives the job the grace a file's verification
    # gets (``worker.grace``): the encode's pace, at 100 %, says nothing of what is left.
    assert phases[-1] == "verify"


def test_an_hd_ladder_of_a_source_stating_no_colours_scores_what_its_probes_predicted(
    tmp_path: Path,
) -> None:
    """The rungs of a source that states no colours state the BT.709 players take an HD
    picture for (decision 0036); its probes do not. The top rung's score once read about
    40 VMAF under the probes' prediction, for the same pixels: the scoring converted the
    unstated source as BT.601 to meet the rung (``quality.aligned``)."""
    clip = make_clip(tmp_path / "clip.mp4", width=1280, height=720, seconds=3, fps=24)
    vmaf, predicted, _ = _scored_ladder(tmp_path, clip)
    assert abs(vmaf - predicted) < 3.0


def _video_late(tmp_path: Path, seconds: float) -> Path:
    """A clip whose picture starts ``seconds`` after its sound, as an MP4's B-frame delay
    without an edit list has it, or MPEG-TS recordings often do."""
    clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=3, fps=30)
    return late(clip, tmp_path / "late.mp4", picture_s=seconds)


@pytest.mark.parametrize("per_title", [True, False])
def test_a_ladder_of_a_source_whose_picture_starts_after_its_sound_scores_what_it_holds(
    tmp_path: Path, per_title: bool
) -> None:
    """A ladder's rungs start where the file does, the first frame held until the
    picture starts, in step with the sound. Their score compared each source frame with
    the rung's frame that much earlier: VMAF 17 for a picture 2 s late, 38 for an
    MPEG-TS recording's 23 ms, where the rungs score 96 (``quality._reference``)."""
    result, committed = _per_title_job(tmp_path, _video_late(tmp_path, 1.0), per_title=per_title)
    assert result.outcome == "done", result.reason
    assert committed
    assert result.vmaf is not None
    assert result.vmaf > 85
    if per_title:
        assert result.predicted_vmaf is not None
        assert abs(result.vmaf - result.predicted_vmaf) < 3.0


def _scored_ladder(tmp_path: Path, clip: Path) -> tuple[float, float, int]:
    """A per-title job on ``clip`` that must be done and committed: its top rung's VMAF,
    the VMAF its probes predicted and its CRF."""
    result, committed = _per_title_job(tmp_path, clip)
    assert result.outcome == "done", result.reason
    assert committed
    assert result.vmaf is not None
    assert result.predicted_vmaf is not None
    assert result.crf is not None
    return result.vmaf, result.predicted_vmaf, result.crf


@pytest.mark.parametrize(
    ("clip", "why"),
    [
        ("hdr_clip", "HDR source: quality scores do not apply to HDR"),
        ("tiny_clip", "a 16x16 picture: VMAF measures pictures of 18 pixels a side or more"),
    ],
)
def test_a_source_no_score_applies_to_gets_the_fixed_ladder_without_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clip: str, why: str
) -> None:
    import hevcq.worker.runner as runner_module  # noqa: PLC0415
    from tests.e2e import test_crfsearch  # noqa: PLC0415

    probed: list[object] = []
    monkeypatch.setattr(runner_module, "per_title_rungs", lambda *a: probed.append(a))
    result, committed = _per_title_job(tmp_path, getattr(test_crfsearch, clip)(tmp_path))
    assert result.outcome == "done", result.reason
    assert result.reason == f"{why}; the fixed ladder, not scored"
    assert probed == []
    assert committed


def test_a_slow_motion_clips_ladder_reaches_its_target_at_the_ladders_rate(
    tmp_path: Path,
) -> None:
    """A 240 fps clip's ladder plays at 60. Its probes and its top rung were compared with
    source frames picked on another clock, so a target of 90 was out of reach at any CRF
    and the top rung came out at the lowest, scoring 87 (``quality.aligned``)."""
    clip = make_clip(tmp_path / "slomo.mp4", width=640, height=360, seconds=2, fps=240)
    vmaf, predicted, crf = _scored_ladder(tmp_path, clip)
    assert predicted >= 90
    assert vmaf >= 89
    assert crf > 12


def test_a_fixed_ladder_of_a_pool_with_a_target_is_measured_too(tmp_path: Path) -> None:
    """A target on a ladder that is not per-title still measures every output: the top
    rung's VMAF goes on the result (no CRF or prediction: nothing was searched). It was
    accepted and then ignored."""
    from tests.e2e.test_crfsearch import hdr_clip  # noqa: PLC0415

    clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=4, fps=25)
    result, committed = _per_title_job(tmp_path / "sdr", clip, per_title=False)
    assert result.outcome == "done", result.reason
    assert committed
    assert result.vmaf is not None
    assert 50 < result.vmaf <= 100
    assert result.vmaf_low is not None
    assert result.vmaf_model == "vmaf_v0.6.1"
    assert (result.crf, result.predicted_vmaf, result.reason) == (None, None, None)
    assert result.predicted_bytes is None
    hdr, committed = _per_title_job(tmp_path / "hdr", hdr_clip(tmp_path), per_title=False)
    assert hdr.outcome == "done", hdr.reason
    assert committed
    assert hdr.reason == (
        "HDR source: quality scores do not apply to HDR; the fixed ladder, not scored"
    )
    assert hdr.vmaf is None


def test_a_ladder_pools_preset_makes_its_rungs_and_its_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """x264 writes its settings into the stream: ``subme=0`` is ultrafast's, where the
    ladder's own veryfast writes ``subme=2``. The probes must use the same preset, or
    the CRFs they measure would not be the ladder's."""
    from hevcq.media import pertitle  # noqa: PLC0415
    from tests.fakes import FakeStore  # noqa: PLC0415

    presets: list[str] = []
    real = pertitle.probe_args

    def spy(*args: Any, **kw: Any) -> list[str]:
        presets.append(kw["preset"])
        return real(*args, **kw)

    monkeypatch.setattr(pertitle, "probe_args", spy)
    clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=4, fps=25)
    store = FakeStore()
    result, committed = _per_title_job(tmp_path, clip, store=store, preset="ultrafast")
    assert result.outcome == "done", result.reason
    assert committed
    assert presets
    assert set(presets) == {"ultrafast"}
    written = b"".join(v if isinstance(v, bytes) else b"" for v in store.data.values())
    assert b"x264 - core" in written
    assert b"subme=0 " in written
    assert b"subme=2 " not in written
