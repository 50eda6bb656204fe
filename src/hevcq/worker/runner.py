"""Running one job: download, probe, decide, encode, verify, upload. No queue, no boto3."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import structlog

from hevcq.bundle import MASTER, POSTER, attempt_token, relative_master
from hevcq.cores import machine_cores
from hevcq.errors import InterruptedJob, PermanentError, WorkerCannotRun
from hevcq.ledger import ENCODING, SEARCHING, VERIFYING, JobKey
from hevcq.limits import MiB
from hevcq.media import covers
from hevcq.media.crfsearch import (
    DamagedSource,
    Searcher,
    Unreachable,
    find_crf,
    over_the_limit,
)
from hevcq.media.decide import KEPT_ORIGINAL, decide, saves_nothing
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import Watch, run_ffmpeg
from hevcq.media.ladder import PRESET as LADDER_PRESET
from hevcq.media.ladder import (
    build_ladder,
    constant_rate,
    h264_video_bytes,
    read_master,
    read_media_playlist,
)
from hevcq.media.model import EncodePlan, MediaInfo, Skip
from hevcq.media.pertitle import Pick, Prober, per_title_rungs, predicted_video_bytes
from hevcq.media.picshape import main_picture
from hevcq.media.poster import make_poster
from hevcq.media.probe import probe
from hevcq.media.progress import PercentTracker, Progress
from hevcq.media.quality import ScoringError, measure, no_score, shown_under
from hevcq.media.soundshape import changing_sound
from hevcq.media.splice import refuse_moved_picture, straighten
from hevcq.media.streamcheck import StreamCheck, StreamDecoder
from hevcq.media.verify import END_FRAMES, verify_output
from hevcq.messages import JobResult, Outcome
from hevcq.metadata import (
    META_JOB,
    META_MANIFEST_ETAG,
    META_PARTS,
    META_POOL,
    META_SETTINGS,
    META_SOURCE_ETAG,
    META_SOURCE_KEY,
)
from hevcq.objects import ObjectInfo, ObjectStore
from hevcq.pools import Ladder, Pool, VerifyPolicy
from hevcq.procs import pid_alive
from hevcq.worker.fence import stage_bundle
from hevcq.worker.precheck import confirmed_skip

log = structlog.get_logger()

# Scratch space needed: the source, an output that may briefly be 1.2 times as large, the
# raw copy of its video that is decoded during the encode (no larger), and headroom.
SCRATCH_FACTOR = 3.4
SCRATCH_HEADROOM = 64 * MiB
SCRATCH_PREFIX = "job-"
CRF_CACHE = "crf-cache"  # beside the jobs' scratch folders: kept from job to job
# A source no score applies to under a quality target (``quality.no_score``: HDR, whose
# pictures VMAF's models and XPSNR's weighting are not fitted to, or a picture smaller than
# VMAF measures): nothing to search for or to measure; the pool's own settings, and why.
UNSCORED_NOTE = "{why}; encoded at the pool's CRF {crf}, not scored"
UNSCORED_LADDER_NOTE = "{why}; the fixed ladder, not scored"
# A source whose video does not decode cleanly where it is sampled (``DamagedSource``): the
# same, the pool's own settings, unscored, and why.
DAMAGED_NOTE = (
    "damaged source: {why}, and a score would measure the decoder's repairs;"
    " encoded at the pool's CRF {crf}, not scored"
)
COMMIT_POLL_S = 0.1  # how often a running commit looks for a stop
# How long a stopped job waits for its write in flight: well inside the default lease, so
# that the job still holds it when the write ends.
COMMIT_DRAIN_S = 120.0


@dataclass(frozen=True)
class JobSpec:
    """What to do: one source object version in one pool."""

    job: JobKey
    pool: Pool
    bucket: str
    output_key: str
    source_size: int
    source: ObjectInfo | None = None  # the source as the worker found it (HEAD) before claiming


# Makes a verified output the current one: (file, output key, metadata) -> what was written.
Commit = Callable[[Path, str, dict[str, str]], ObjectInfo]
# A file output with parts of its own (its poster): (file, parts folder, key, metadata).
PartsCommit = Callable[[Path, Path, str, dict[str, str]], ObjectInfo]


@dataclass
class JobContext:
    """What the worker lends a running job: a cancel flag, a progress sink and a commit.

    ``commit`` is the worker's fenced write (``hevcq.worker.loop``): it succeeds only while the
    worker holds the job's lease. Without one (tests, tools) the output is uploaded plainly.
    """

    cancel: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[float], None] = lambda _pct: None
    # ffmpeg's frames per second and speed (x real time) as it reports them
    on_rates: Callable[[float | None, float | None], None] = lambda _fps, _speed: None
    # What the job is doing before its encode's progress counts (``LedgerItem.step``)
    on_step: Callable[[str], None] = lambda _step: None
    # A quality search's probe encode starting: its number, from 1 (``LedgerItem.probe``)
    on_probe: Callable[[int], None] = lambda _n: None
    # How much of that probe is done, in percent (``LedgerItem.probe_done``); never the
    # encode's progress, which a stop's grace is measured by (``worker.grace``).
    on_probe_progress: Callable[[float], None] = lambda _pct: None
    commit: Commit | None = None
    # The same for an output of many objects (a folder: ``FencedWriter.put_bundle``).
    commit_bundle: Commit | None = None
    # The same for a file with parts (``FencedWriter.put_with_parts``).
    commit_with_parts: PartsCommit | None = None
    phase: str = "prepare"  # prepare, encode, verify, upload: what a stop would interrupt
    # Wall seconds of the steps done so far (``hevcq.ledger.PHASES``), kept on the item.
    timings: dict[str, float] = field(default_factory=dict)


def job_result(spec: JobSpec, outcome: Outcome, worker_id: str, **kw: Any) -> JobResult:
    """The result message of a job, with the identifying fields filled from its spec."""
    return JobResult(
        job_id=spec.job.job_id,
        pool=spec.pool.name,
        bucket=spec.bucket,
        source_key=spec.job.key,
        source_etag=spec.job.etag,
        outcome=outcome,
        settings_hash=spec.job.settings_hash,
        worker=worker_id,
        **kw,
    )


class Runner(Protocol):
    """Runs one job to a result, or raises a HevcqError saying what went wrong."""

    def run(self, spec: JobSpec, ctx: JobContext) -> JobResult: ...


def output_is_current(existing: ObjectInfo | None, job: JobKey) -> bool:
    """True when an existing output was made from this source version with these settings."""
    if existing is None:
        return False
    m = existing.metadata
    return (
        m.get(META_SOURCE_KEY) == job.key
        and m.get(META_SOURCE_ETAG) == job.etag
        and m.get(META_SETTINGS) == job.settings_hash
    )


def output_metadata(spec: JobSpec) -> dict[str, str]:
    """The metadata every output carries: which source version, settings, pool and job."""
    return {
        META_SOURCE_KEY: spec.job.key,
        META_SOURCE_ETAG: spec.job.etag,
        META_SETTINGS: spec.job.settings_hash,
        META_POOL: spec.pool.name,
        META_JOB: spec.job.job_id,
    }


def check_collision(existing: ObjectInfo | None, job: JobKey, output_key: str) -> None:
    """Refuse to overwrite an output that belongs to another source (``a.mov`` vs ``a.mp4``)."""
    if existing is None:
        return
    owner = existing.metadata.get(META_SOURCE_KEY)
    if owner and owner != job.key:
        raise PermanentError(f"output {output_key} already holds the output of {owner}")


def scratch_need(source_size: int) -> int:
    """Bytes of scratch space a job on a source of ``source_size`` bytes needs free."""
    return int(source_size * SCRATCH_FACTOR) + SCRATCH_HEADROOM


def check_scratch(work_dir: Path, source_size: int, worker_id: str = "this worker") -> None:
    """Refuse to start when the scratch disk cannot hold the job: WorkerCannotRun, since the
    disk is the worker's, not the job's (another worker, or this one later, may have room)."""
    free = shutil.disk_usage(work_dir).free
    need = scratch_need(source_size)
    if free < need:
        log.warning(
            "scratch_too_small",
            work_dir=str(work_dir),
            need_mib=need // MiB,
            have_mib=free // MiB,
            reason="given back for another worker",
        )
        raise WorkerCannotRun(
            f"not enough scratch space on {worker_id}: need {need // MiB} MiB, have {free // MiB}"
        )


def until_cancelled(fn: Callable[[], ObjectInfo], cancel: threading.Event) -> ObjectInfo:
    """Run ``fn`` (a commit) in a thread; when ``cancel`` is set first, wait for it to end.

    boto3 cannot interrupt an upload half-way, and a job settled while its write is still
    on its way would let that write land after a newer version of the source ended without
    an output. So a stopped job waits for its write (no new try starts: the fenced writer
    checks the lease before each) and then stops; the newer version's worker, which claims
    only after this one lets go, removes what landed. A write still hanging after
    ``COMMIT_DRAIN_S`` is abandoned with a log line.
    """
    box: dict[str, ObjectInfo | BaseException] = {}

    def target() -> None:
        try:
            box["out"] = fn()
        except BaseException as exc:
            box["err"] = exc

    t = threading.Thread(target=target, name="commit", daemon=True)
    t.start()
    # Wait on the thread, not on the flag: the job goes on the moment the commit is done,
    # and a stop is seen within one poll.
    t.join(COMMIT_POLL_S)
    while t.is_alive() and not cancel.is_set():
        t.join(COMMIT_POLL_S)
    if cancel.is_set():
        _drain(t, box)
        raise InterruptedJob("stopped during the upload")
    if "err" in box:
        raise box["err"]  # type: ignore[misc]
    return box["out"]  # type: ignore[return-value]


def _drain(t: threading.Thread, box: dict[str, ObjectInfo | BaseException]) -> None:
    """Wait for a stopped job's write to end, and say how it ended."""
    t.join(COMMIT_DRAIN_S)
    if t.is_alive():
        log.warning(
            "upload_abandoned",
            waited_s=COMMIT_DRAIN_S,
            reason="the write did not end; it may still land",
        )
    elif isinstance(out := box.get("out"), ObjectInfo):
        log.info("upload_ended_after_stop", output_key=out.key, output_etag=out.etag)


def _unmade(pool: Pool) -> str:
    """What a pool whose target is out of reach does instead: a pool whose output stands in
    for the original keeps the original; a rendition, a ladder or a copy in another format
    is simply not made (there is no original of its kind to keep)."""
    return "kept the original" if pool.may_replace_originals else "no output made"


def sweep_scratch(work_dir: Path) -> list[Path]:
    """Remove scratch folders left by workers that died (SIGKILL, OOM); returns them.

    Each job's folder is named after its worker's process id; a folder whose process is
    gone belongs to nobody. Anything else in the folder (another program's, or a folder
    not named that way) is left alone.
    """
    removed: list[Path] = []
    if not work_dir.is_dir():
        return removed
    for d in work_dir.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = d.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if d.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _progress_sink(
    ctx: JobContext,
    duration_s: float | None,
    frames: int | None = None,
    *,
    guess_s: float | None = None,
) -> Callable[[Progress], None]:
    """What hears an encode's ffmpeg progress: the percent done (never going back) and
    the rates, passed on to the job's context. A source of no stated length counts its
    percent against ``guess_s``, a bare stream's guessed length, if it has one."""
    guessed = not duration_s and not frames and bool(guess_s)
    tracker = PercentTracker(guess_s if guessed else duration_s, frames, guessed=guessed)

    def progress(p: Progress) -> None:
        pct = tracker.update(p)
        if pct is not None:
            ctx.on_progress(pct)
        ctx.on_rates(p.fps, p.speed)

    return progress


class _Laps:
    """Wall seconds of consecutive steps, each named when it ends."""

    def __init__(self, laps: dict[str, float]) -> None:
        self.laps = laps
        self._last = time.monotonic()

    def __call__(self, name: str) -> float:
        now = time.monotonic()
        took, self._last = now - self._last, now
        self.laps[name] = round(took, 3)
        return took


class JobRunner:
    """Runs jobs in a scratch folder with a given ffmpeg."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        ffmpeg: str,
        work_dir: Path,
        worker_id: str,
        stall_timeout_s: float,
        threads: int | None = None,
        decode_during_encode: bool = True,
        ffmpeg_version: str = "",
    ) -> None:
        self._store = store
        self._ffmpeg = ffmpeg
        self._ffmpeg_version = ffmpeg_version
        self._work_dir = work_dir
        self._worker_id = worker_id
        self._stall_timeout_s = stall_timeout_s
        self._threads = threads
        self._decode_during_encode = decode_during_encode

    def sweep(self) -> None:
        """Remove scratch folders of dead workers (call at start)."""
        for d in sweep_scratch(self._work_dir):
            log.info("scratch_swept", path=str(d), reason="its worker is gone")

    def _result(self, spec: JobSpec, outcome: Outcome, **kw: Any) -> JobResult:
        return job_result(spec, outcome, self._worker_id, ffmpeg=self._ffmpeg_version, **kw)

    def run(self, spec: JobSpec, ctx: JobContext) -> JobResult:
        """Do the job; raises PermanentError, RetryableError or InterruptedJob on failure."""
        existing = self._store.head(spec.output_key)
        check_collision(existing, spec.job, spec.output_key)
        if existing is not None and output_is_current(existing, spec.job):
            log.info("output_already_current", output_key=spec.output_key)
            return self._result(
                spec,
                "done",
                output_key=spec.output_key,
                output_etag=existing.etag,
                output_bytes=existing.size,
                input_bytes=spec.source_size,
                reason="output already up to date",
            )
        self._work_dir.mkdir(parents=True, exist_ok=True)
        check_scratch(self._work_dir, spec.source_size, self._worker_id)
        scratch = Path(
            tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=self._work_dir)
        )
        try:
            return self._run_in(scratch, spec, ctx)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run_in(self, scratch: Path, spec: JobSpec, ctx: JobContext) -> JobResult:
        src, out = scratch / "source", scratch / "output"
        lap = _Laps(ctx.timings)
        skip = confirmed_skip(self._store, spec.job.key, spec.job.etag, spec.pool, head=spec.source)
        if skip:
            return self._result(spec, "skipped", reason=skip.reason, input_bytes=spec.source_size)
        # Exactly the job's version: a newer upload meanwhile makes this job superseded.
        self._store.download(
            spec.job.key,
            src,
            etag=spec.job.etag,
            version_id=spec.job.version_id or None,
            known=spec.source,
        )
        lap("download_s")
        size = src.stat().st_size
        refuse_moved_picture(src)  # streams a broadcast moved to partway: no encode reads them
        straighten(self._ffmpeg, src, stop=ctx.cancel, stall_timeout_s=self._stall_timeout_s)
        info = dataclasses.replace(probe(src), size_bytes=size)  # the size as uploaded
        info = changing_sound(src, info)  # audio that changes shape partway: widest shape
        info = main_picture(src, info)  # a picture that changes size partway: its longest
        decision = decide(info, spec.pool, spec.job.key)
        lap("probe_s")
        if isinstance(decision, Skip):
            log.info("job_skipped", reason=decision.reason)
            return self._result(
                spec, "skipped", reason=decision.reason, input_bytes=info.size_bytes
            )
        if spec.pool.ladder is not None:
            return self._ladder(
                spec, ladder=spec.pool.ladder, ctx=ctx, src=src, info=info, scratch=scratch, lap=lap
            )
        planned = self._planned(scratch, spec, decision, info, ctx=ctx, lap=lap)
        if isinstance(planned, JobResult):
            return planned
        decision, found, scores = planned
        ctx.phase = "encode"
        guess = info.duration_guess_s  # a bare stream's, which its progress counts against
        stream = self._encode(
            src, out, scratch / "stream.hevc", decision, ctx, verify=spec.pool.verify, guess_s=guess
        )
        encode_s = lap("encode_s")
        made = out.stat().st_size
        # Not a failure: the source stays as it is, and a re-run does not try again. An
        # output larger than its source saves nothing; one searched for a target that came
        # out over the search's size limit breaks the limit its samples promised.
        unkept = (
            KEPT_ORIGINAL
            if saves_nothing(spec.pool, made, info.size_bytes)
            else self._over_the_limit(spec.pool, made, info.size_bytes, decision, found)
        )
        if unkept is not None:
            log.info("job_skipped", reason=unkept, input_bytes=info.size_bytes, output_bytes=made)
            return self._result(
                spec,
                "skipped",
                reason=unkept,
                input_bytes=info.size_bytes,
                duration_s=info.duration_s,
                encode_s=round(encode_s, 3),
            )
        ctx.phase = "verify"
        ctx.on_step(VERIFYING)
        out_info = verify_output(out, decision, info, source_path=src, stream=stream)
        scored = self._score(spec.pool, src, out, watch=self._watch(ctx)) if scores else {}
        parts = scratch / "parts"
        if spec.pool.poster:
            parts.mkdir()
            # of the output, as it plays
            make_poster(self._ffmpeg, out, parts / POSTER, watch=self._watch(ctx))
        lap("verify_s")
        if ctx.cancel.is_set():
            raise InterruptedJob("cancelled before upload")
        ctx.phase = "upload"
        meta = output_metadata(spec)
        if spec.pool.poster:
            with_parts = ctx.commit_with_parts or self._plain_with_parts
            uploaded = until_cancelled(
                lambda: with_parts(out, parts, spec.output_key, meta), ctx.cancel
            )
        else:
            commit = ctx.commit or self._store.upload
            uploaded = until_cancelled(lambda: commit(out, spec.output_key, meta), ctx.cancel)
        lap("upload_s")
        log.info("output_uploaded", output_key=spec.output_key, bytes=uploaded.size)
        # Where a job's wall time goes, for the overhead benchmark and for operators.
        log.info("job_timings", **lap.laps)
        return self._result(
            spec,
            "done",
            output_key=spec.output_key,
            output_etag=uploaded.etag,
            input_bytes=info.size_bytes,
            output_bytes=out_info.size_bytes,
            duration_s=info.duration_s,
            encode_s=round(encode_s, 3),
            crf=decision.crf,
            **scored,
            **found,
        )

    def _ladder(
        self,
        spec: JobSpec,
        *,
        ladder: Ladder,
        ctx: JobContext,
        src: Path,
        info: MediaInfo,
        scratch: Path,
        lap: _Laps,
    ) -> JobResult:
        """Encode, check and commit the source's streaming ladder (and its poster) as one
        output of many objects (``hevcq.bundle``). A ladder that fails a check fails the
        job with the check's name (``media.ladder.check_ladder``)."""
        folder = scratch / "ladder"
        rungs = None
        quality = spec.pool.quality
        note = None
        picks: list[Pick] = []
        why = no_score(src, quality.metric) if quality else None
        if why is not None:
            # Neither probes nor the ladder's own score could measure it: the fixed rungs.
            note = UNSCORED_LADDER_NOTE.format(why=why)
            log.info("quality_not_applicable", reason=note)
        elif ladder.per_title and quality is not None:
            ctx.phase = "encode"  # the probes are encodes a stop interrupts alike
            prober = Prober(
                self._ffmpeg,
                scratch,
                threads=self._threads,
                stop=ctx.cancel,
                stall_timeout_s=self._stall_timeout_s,
                preset=ladder.preset or LADDER_PRESET,
                on_probe=ctx.on_probe,
            )
            # a per-title ladder's target is a VMAF (the pool file is refused otherwise)
            ctx.on_step(SEARCHING)
            rungs, picks = per_title_rungs(prober, src, info, quality.target)
            lap("search_s")
            ctx.on_step(ENCODING)
            log.info(
                "per_title_rungs",
                target=quality.target,
                rungs=[(p.short, p.crf, round(p.kbps), round(p.vmaf, 2)) for p in picks],
            )
        ctx.phase = "encode"
        log.info("transcode_started", ladder=True, groups=list(ladder.groups))

        def checking() -> None:
            # Decoding the rungs is the ladder's verification: a stop now gives it the
            # grace a file's verification gets, where the encode's pace says nothing.
            ctx.phase = "verify"
            ctx.on_step(VERIFYING)

        build_ladder(
            self._ffmpeg,
            src,
            folder,
            info,
            threads=self._threads,
            stop=ctx.cancel,
            stall_timeout_s=self._stall_timeout_s,
            groups=ladder.groups,
            rungs=rungs or None,
            on_progress=_progress_sink(ctx, info.duration_s, guess_s=info.duration_guess_s),
            on_check=checking,
            preset=ladder.preset,
        )
        log.info("transcode_finished", ladder=True)
        if ladder.poster:
            watch = self._watch(ctx)
            make_poster(self._ffmpeg, src, folder / POSTER, watch=watch, length_s=info.duration_s)
        encode_s = lap("encode_s")
        scored: dict[str, Any] = {}
        if quality is not None and note is None:
            # Every ladder of a pool with a target is measured, per-title or fixed.
            scored = self._score_top_rung(
                spec.pool, src, folder, scratch, picks, watch=self._watch(ctx)
            )
            lap("verify_s")
        if ctx.cancel.is_set():
            raise InterruptedJob("cancelled before upload")
        total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        if picks and info.duration_s:
            # The H.264 rungs' video as the probes predicted it; the rest (audio, other
            # codec groups, the poster, playlists) as made.
            predicted = predicted_video_bytes(picks, info.duration_s)
            scored["predicted_bytes"] = predicted + total - h264_video_bytes(folder)
        commit = ctx.commit_bundle or self._plain_bundle
        ctx.phase = "upload"
        uploaded = until_cancelled(
            lambda: commit(folder, spec.output_key, output_metadata(spec)), ctx.cancel
        )
        lap("upload_s")
        log.info("output_uploaded", output_key=spec.output_key, bytes=total, ladder=True)
        log.info("job_timings", **lap.laps)
        return self._result(
            spec,
            "done",
            output_key=spec.output_key,
            output_etag=uploaded.etag,
            input_bytes=info.size_bytes,
            output_bytes=total,
            duration_s=info.duration_s,
            encode_s=round(encode_s, 3),
            reason=note,
            **scored,
        )

    def _watch(self, ctx: JobContext) -> Watch:
        """What a score or a poster runs under: the job's stop, and the worker's stall
        limit."""
        return Watch(ctx.cancel, self._stall_timeout_s)

    def _score_top_rung(
        self,
        pool: Pool,
        src: Path,
        folder: Path,
        scratch: Path,
        picks: list[Pick],
        *,
        watch: Watch,
    ) -> dict[str, Any]:
        """A ladder measured as a file output is (``_score``): its top H.264 rung, its init
        segment and segments joined, full length against the source at the source's size
        (as per-title probes are scored); for a per-title ladder (``picks``), with the CRF
        it was encoded at and the VMAF its probes predicted. The rungs below are chosen on
        the same curves, and scoring every rung would cost more than the probes did."""
        variants, _ = read_master(folder / MASTER)
        h264 = [v for v in variants if v.codecs.startswith("avc1")]
        top = max(h264, key=lambda v: v.width * v.height)
        rate = constant_rate(float(top.frame_rate))  # the ladder's, as its master says
        media = read_media_playlist(folder / top.uri)
        joined = scratch / "top-rung.mp4"
        try:
            with joined.open("wb") as f:
                f.write(media.init.read_bytes())
                for _, segment in media.segments:
                    f.write(segment.read_bytes())
            # Without NEG, which would add half again to a score that already costs
            # about what the rungs' encode did (the ladder's x264 is fast); at the
            # ladder's rate, whose frames the source is picked for as the ladder was,
            # from the source file's zero, where the rungs start.
            scored = self._score(
                pool, src, joined, neg=False, made_at=rate, from_zero=True, watch=watch
            )
        finally:
            joined.unlink(missing_ok=True)
        if not scored or not picks:
            return scored
        best = max(picks, key=lambda p: p.short)
        return {**scored, "crf": best.crf, "predicted_vmaf": round(best.vmaf, 3)}

    def _plain_bundle(self, folder: Path, key: str, metadata: dict[str, str]) -> ObjectInfo:
        """A bundle's commit without a lease (tools and tests): staged, then its master."""
        token = attempt_token(f"{self._worker_id}/{time.time_ns()}")
        master = folder.parent / f"{folder.name}.{MASTER}"
        master.write_text(relative_master((folder / MASTER).read_text(), key, token))
        return self._plain_with_parts(master, folder, key, metadata, token)

    def _plain_with_parts(
        self,
        src: Path,
        folder: Path,
        key: str,
        metadata: dict[str, str],
        token: str | None = None,
    ) -> ObjectInfo:
        """A file-with-parts commit without a lease (tools and tests): parts, then ``src``."""
        token = token or attempt_token(f"{self._worker_id}/{time.time_ns()}")
        staged = stage_bundle(self._store, folder, key, metadata, token)
        meta = {**metadata, META_PARTS: token, META_MANIFEST_ETAG: staged.etag}
        return self._store.upload(src, key, meta)

    def _planned(
        self,
        scratch: Path,
        spec: JobSpec,
        plan: EncodePlan,
        info: MediaInfo,
        *,
        ctx: JobContext,
        lap: Callable[[str], float],
    ) -> tuple[EncodePlan, dict[str, Any], bool] | JobResult:
        """The plan to encode, the result fields it brings, and whether its output is
        scored: at the CRF searched for the pool's target (``_search_crf``), or at the
        pool's own, unscored and saying why, for a source no score applies to (HDR, or a
        picture too small: ``quality.no_score``) or whose scores would measure the
        decoder's repairs (damaged: ``DamagedSource``)."""
        src = scratch / "source"
        quality = spec.pool.quality
        why = no_score(src, quality.metric) if quality is not None else None
        if why is not None:
            unscored = UNSCORED_NOTE.format(why=why, crf=plan.crf)
        else:
            try:
                searched = self._search_crf(scratch, spec, plan, info, ctx=ctx, lap=lap)
            except DamagedSource as exc:
                unscored = DAMAGED_NOTE.format(why=exc, crf=plan.crf)
            else:
                if isinstance(searched, JobResult):
                    return searched
                return (*searched, True)
        log.info("quality_not_applicable", reason=unscored)
        return plan, {"reason": unscored}, False

    def _search_crf(
        self,
        scratch: Path,
        spec: JobSpec,
        plan: EncodePlan,
        info: MediaInfo,
        *,
        ctx: JobContext,
        lap: Callable[[str], float],
    ) -> tuple[EncodePlan, dict[str, Any]] | JobResult:
        """The plan at the CRF searched for the pool's quality target, with the result
        fields saying what it predicts (the plan as it is for a pool without a search);
        or a skipped result when no CRF reaches the target within the size limit.

        Probes are cached in ``CRF_CACHE`` by the source's ETag, so a re-run or another
        pool with the same plan encodes none. A probe that cannot be scored raises
        ``ScoringError``: the job fails with that class, never reads it as unreachable.
        """
        target = spec.pool.quality
        if target is None or not target.searches:
            return plan, {}
        searcher = Searcher(
            ffmpeg=self._ffmpeg,
            ffmpeg_version=self._ffmpeg_version,
            scratch=scratch,
            cache_dir=self._work_dir / CRF_CACHE,
            threads=self._threads,
            stop=ctx.cancel,
            stall_timeout_s=self._stall_timeout_s,
            on_probe=ctx.on_probe,
            on_probe_progress=ctx.on_probe_progress,
        )
        ctx.on_step(SEARCHING)
        got = find_crf(
            searcher,
            scratch / "source",
            plan,
            info,
            source_id=spec.job.etag,
            target=target.target,
            max_size_percent=target.max_size_percent,
            metric=target.metric,
            own_size=spec.pool.scored_at_own_size,
        )
        lap("search_s")
        ctx.on_step(ENCODING)
        probes = [(p.crf, p.score) for p in got.probes]
        if isinstance(got, Unreachable):
            reason = f"{_unmade(spec.pool)}: {got.reason}"
            log.info("job_skipped", reason=reason, probes=probes, cached=got.cached)
            return self._result(
                spec,
                "skipped",
                reason=reason,
                input_bytes=info.size_bytes,
                duration_s=info.duration_s,
            )
        log.info(
            "crf_searched",
            crf=got.crf,
            metric=target.metric,
            predicted=got.predicted_score,
            predicted_percent=got.predicted_percent,
            probes=probes,
            cached=got.cached,
        )
        fields = {  # the CRF itself goes on the result from the plan
            f"predicted_{target.metric}": round(got.predicted_score, 3),
            "predicted_bytes": got.predicted_bytes,
        }
        return dataclasses.replace(plan, crf=got.crf), fields

    @staticmethod
    def _over_the_limit(
        pool: Pool, made: int, source: int, plan: EncodePlan, found: dict[str, Any]
    ) -> str | None:
        """Why an output searched for its pool's target is not kept for its size (the
        reason, with what a pool of its kind does instead), or None."""
        target = pool.quality
        if target is None or not target.searches or "predicted_bytes" not in found:
            return None
        why = over_the_limit(
            made,
            source,
            crf=plan.crf,
            predicted_bytes=found["predicted_bytes"],
            target=target.target,
            max_size_percent=target.max_size_percent,
            metric=target.metric,
        )
        return None if why is None else f"{_unmade(pool)}: {why}"

    def _score(
        self,
        pool: Pool,
        src: Path,
        out: Path,
        *,
        neg: bool = True,
        made_at: Fraction | None = None,
        from_zero: bool = False,
        watch: Watch,
    ) -> dict[str, Any]:
        """The output's score in its pool's target metric, VMAF or XPSNR (result fields;
        empty for a pool without a target), with VMAF's NEG beside it unless told not to;
        ``made_at``: the output was made at that constant rate, with ``from_zero`` from the
        source file's zero (a ladder's rung; ``quality.aligned``). Under
        ``verify: quality`` an output below the target less its margin, or one that cannot
        be scored, fails the job for good: the same encode scores the same."""
        target = pool.quality
        if target is None:
            return {}
        metric = target.metric
        try:
            threads = self._threads or machine_cores()  # no slot size: the task's cores
            got = measure(
                self._ffmpeg,
                src,
                out,
                metric,
                phone=target.phone,
                threads=threads,
                own_size=pool.scored_at_own_size,
                neg=neg,
                made_at=made_at,
                from_zero=from_zero,
                watch=watch,
            )
        except ScoringError as exc:
            if pool.verify == "quality":
                raise  # unproven: the job fails with the scoring failure class
            log.warning("quality_not_scored", reason=str(exc))
            return {}
        log.info(
            "quality_scored",
            metric=metric,
            score=got.mean,
            low=got.low,
            model=got.model,
            neg=got.neg_mean,
            target=target.target,
        )
        floor = target.target - target.margin
        if pool.verify == "quality" and got.mean < floor:
            raise PermanentError(
                f"quality: {shown_under(metric, got.mean, floor, 2)} is below the pool's target"
                f" {target.target:g} (at least {floor:g} accepted)"
            )
        fields: dict[str, Any] = {metric: round(got.mean, 3), f"{metric}_low": round(got.low, 3)}
        if metric == "vmaf":
            fields["vmaf_model"] = got.model
            if got.neg_mean is not None:
                fields["vmaf_neg"] = round(got.neg_mean, 3)
        return fields

    def _encode(
        self,
        src: Path,
        out: Path,
        stream: Path,
        plan: EncodePlan,
        ctx: JobContext,
        *,
        verify: VerifyPolicy,
        guess_s: float | None = None,
    ) -> StreamCheck | None:
        """Encode ``src`` to ``out``, reading the encoded video as it is produced when the
        plan allows the tee (None: the output is to be decoded afterwards). Under the
        pool's ``verify: full`` every frame of it is decoded; under ``stream`` it is
        digested and counted, and only its first frames are decoded. ``guess_s``: a bare
        stream's guessed length, which its progress is counted against."""
        teed = stream if plan.tee_safe and self._decode_during_encode else None
        covers.extract(src, plan, out.parent)  # beside the output, where build_args looks
        args = build_args(self._ffmpeg, src, out, plan, threads=self._threads, stream=teed)

        progress = _progress_sink(
            ctx, plan.expected_duration_s, plan.expected_frames, guess_s=guess_s
        )
        log.info(
            "transcode_started",
            width=plan.width,
            height=plan.height,
            ten_bit=plan.ten_bit,
            threads=self._threads,
        )
        limit = None if verify == "full" else END_FRAMES
        decoder = StreamDecoder(stream, frames=limit) if teed else None
        if decoder:
            decoder.start()
        try:
            run_ffmpeg(
                args,
                on_progress=progress,
                stop=ctx.cancel,
                stall_timeout_s=self._stall_timeout_s,
                output=out,
            )
        except BaseException:
            if decoder:
                decoder.abandon()
            raise
        log.info("transcode_finished", teed=bool(decoder))
        return decoder.finish() if decoder else None
