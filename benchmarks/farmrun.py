"""Timing jobs through an embedded farm of one pool, and the same encode with bare ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import read_events
from hevcq.aws.s3 import S3Store
from hevcq.aws.sqs import SqsInbox
from hevcq.farm.client import Farm
from hevcq.farm.embedded import EmbeddedFarm
from hevcq.library.results import Expected, dead_letter_results
from hevcq.media.decide import decide
from hevcq.media.ffargs import build_args
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.model import Skip
from hevcq.media.probe import probe
from hevcq.messages import JobResult
from hevcq.objects import ObjectInfo
from hevcq.pools import VerifyPolicy, default_workers_dir, load_farm
from hevcq.settings import Settings

WORKER_READY_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 1800.0
ANNOTATE_TIMEOUT_S = 5.0
STEPS = ("download_s", "probe_s", "encode_s", "verify_s", "upload_s")


@dataclass
class JobRun:
    """One job timed end to end, with the worker's own account of where the time went."""

    key: str
    total_s: float
    uploaded_at: float  # wall clock (epoch seconds), after the source upload returned
    result_at: float  # wall clock, when the result reached the collector
    upload_in_s: float
    download_out_s: float
    result: JobResult
    steps: dict[str, float] = field(default_factory=dict)  # from the worker's job_timings
    claimed_at: float | None = None
    finished_at: float | None = None

    def breakdown(self) -> dict[str, float]:
        """Seconds per phase; ``dispatch_s`` is upload done to job claimed."""
        out = {"upload_in_s": self.upload_in_s}
        if self.claimed_at is not None:
            out["dispatch_s"] = self.claimed_at - self.uploaded_at
        out |= self.steps
        if self.finished_at is not None:
            out["result_s"] = self.result_at - self.finished_at
        out["download_out_s"] = self.download_out_s
        out["other_s"] = self.total_s - sum(out.values())
        return out


def pool_dir(
    dest: Path, pool: str, preset: str | None = None, verify: VerifyPolicy | None = None
) -> Path:
    """A workers dir holding one pool, optionally with another x265 preset or verify policy."""
    dest.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load((default_workers_dir() / f"{pool}.yaml").read_text())
    if preset:
        doc.setdefault("encode", {})["preset"] = preset
    if verify:
        doc["verify"] = verify
    (dest / f"{pool}.yaml").write_text(yaml.safe_dump(doc))
    return dest


def _finished(events: list[dict[str, Any]], key: str) -> bool:
    return any(e.get("key") == key and e.get("event") == "job_finished" for e in events)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class BenchFarm:
    """An embedded farm running one pool's workers; upload sources and time their jobs."""

    def __init__(self, farm: EmbeddedFarm, pool: str, tmp: Path) -> None:
        assert farm.clients is not None
        assert farm.refs is not None
        self.farm, self.pool, self.tmp = farm, pool, tmp
        self.clients, self.refs = farm.clients, farm.refs
        self.store = S3Store(self.clients.s3, self.refs.bucket)

    @property
    def logs(self) -> list[Path]:
        """The worker log files."""
        return sorted((self.farm.state_dir / "logs").glob("worker-*.log"))

    def events(self) -> list[dict[str, Any]]:
        """Every worker's JSON log events."""
        return [e for log in self.logs for e in read_events(log)]

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers."""
        assert self.farm.workers is not None
        return [p.pid for p in self.farm.workers.procs.values()]

    def wait_ready(self) -> None:
        """Wait until every worker has started polling, so no timing includes its start-up."""
        want = len(self.worker_pids())
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            started = sum(1 for e in self.events() if e.get("event") == "worker_started")
            if started >= want:
                return
            time.sleep(0.1)
        raise RuntimeError(f"workers did not start; see {self.farm.state_dir / 'logs'}")

    def new_key(self, src: Path) -> str:
        """A fresh TODO/ key, so the ledger sees a new job every run."""
        return f"TODO/bench/{uuid.uuid4().hex[:12]}/{src.name}"

    def run_job(self, src: Path) -> JobRun:
        """Upload ``src``, wait for its result and download the output: one timed job."""
        key = self.new_key(src)
        start = time.perf_counter()
        self.store.upload(src, key, {})
        upload_in = time.perf_counter() - start
        uploaded_at = time.time()
        collector = Expected({(key, self.pool)})
        if not self._wait(collector):
            raise RuntimeError(f"no result for {key} within {JOB_TIMEOUT_S} s")
        result_at = time.time()
        result = collector.results[(key, self.pool)]
        if result.outcome != "done":
            raise RuntimeError(f"benchmark job {key} {result.outcome}: {result.reason}")
        before = time.perf_counter()
        out = Path(tempfile.mkdtemp(dir=self.tmp))
        assert result.output_key is not None
        # As ``hevcq fetch`` downloads it: pinned to the committed ETag, sized by the result.
        committed = ObjectInfo(
            result.output_key, result.output_bytes or 0, result.output_etag or ""
        )
        self.store.download(
            result.output_key,
            out / Path(result.output_key).name,
            etag=result.output_etag,
            known=committed,
        )
        download_out = time.perf_counter() - before
        total = time.perf_counter() - start
        shutil.rmtree(out, ignore_errors=True)
        run = JobRun(key, total, uploaded_at, result_at, upload_in, download_out, result)
        self._annotate(run)
        return run

    def _wait(self, expected: Expected) -> bool:
        """Read results until every expected job has one; False after JOB_TIMEOUT_S."""
        return expected.wait(
            SqsInbox(self.clients.sqs, self.refs.results_queue_url),
            timeout_s=JOB_TIMEOUT_S,
            dead_letters=lambda: dead_letter_results(Farm(self.clients, self.refs, label="bench")),
        )

    def _annotate(self, run: JobRun) -> None:
        # The worker logs job_finished just after it publishes the result, so the line
        # can reach the file a moment after the result reaches us: wait for it.
        deadline = time.monotonic() + ANNOTATE_TIMEOUT_S
        events = self.events()
        while not _finished(events, run.key) and time.monotonic() < deadline:
            time.sleep(0.05)
            events = self.events()
        for e in events:
            if e.get("key") != run.key:
                continue
            if e.get("event") == "job_claimed":
                run.claimed_at = _epoch(e["timestamp"])
            elif e.get("event") == "job_finished":
                run.finished_at = _epoch(e["timestamp"])
            elif e.get("event") == "job_timings":
                run.steps = {k: float(e[k]) for k in STEPS if k in e}

    def burst(self, src: Path, jobs: int) -> tuple[float, dict[str, JobResult]]:
        """Upload ``jobs`` copies of ``src`` straight to TODO/; seconds until every result."""
        keys = [self.new_key(src) for _ in range(jobs)]
        body = src.read_bytes()
        collector = Expected({(k, self.pool) for k in keys})
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            list(
                ex.map(
                    lambda k: self.clients.s3.put_object(Bucket=self.refs.bucket, Key=k, Body=body),
                    keys,
                )
            )
        if not self._wait(collector):
            raise RuntimeError(f"{len(collector.pending)} of {jobs} burst jobs never finished")
        elapsed = time.perf_counter() - start
        failed = [r for r in collector.results.values() if r.outcome != "done"]
        if failed:
            raise RuntimeError(f"{len(failed)} burst jobs failed: {failed[0].reason}")
        return elapsed, {k: r for (k, _), r in collector.results.items()}


@contextmanager
def bench_farm(
    pool: str,
    *,
    workers: int = 1,
    preset: str | None = None,
    decode_during_encode: bool = True,
    verify: VerifyPolicy | None = None,
) -> Iterator[BenchFarm]:
    """An embedded farm whose workers dir holds only ``pool``, so nothing else competes."""
    with tempfile.TemporaryDirectory(prefix="hevcq-bench-") as tmp_name:
        tmp = Path(tmp_name)
        wdir = pool_dir(tmp / "workers", pool, preset, verify)
        settings = Settings(
            workers_dir=wdir, log_level="info", decode_during_encode=decode_during_encode
        )
        with EmbeddedFarm(settings, load_farm(wdir), tmp / "state", workers) as farm:
            bench = BenchFarm(farm, pool, tmp)
            bench.wait_ready()
            yield bench


def bare_args(src: Path, pool: str, dst: Path, preset: str | None = None) -> list[str]:
    """The exact ffmpeg argument list a worker of ``pool`` would run on ``src``."""
    p = load_farm(pool_dir(dst.parent / f"workers-{pool}", pool, preset))[pool]
    plan = decide(probe(src), p, src.name)
    if isinstance(plan, Skip):
        raise RuntimeError(f"pool {pool} skips {src.name}: {plan.reason}")  # noqa: TRY004
    return build_args(find_ffmpeg(), src, dst, plan)


def bare_ffmpeg(src: Path, pool: str, preset: str | None = None) -> float:
    """Seconds for bare ffmpeg to run the worker's own argument list, file to file."""
    with tempfile.TemporaryDirectory(prefix="hevcq-bare-") as tmp:
        args = bare_args(src, pool, Path(tmp) / "output", preset)
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, timeout=JOB_TIMEOUT_S)
        return time.perf_counter() - start
