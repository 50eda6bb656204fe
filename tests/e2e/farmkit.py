"""Helpers for end-to-end tests that drive worker processes against an embedded stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from benchmarks.harness import read_events

from hevcq.aws.clients import Clients
from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.provision import names_for, provision
from hevcq.aws.s3 import S3Store
from hevcq.aws.sqs import SqsInbox
from hevcq.bundle import MANIFEST, Manifest, attempt_prefix
from hevcq.credentials import EMBEDDED_REGION, Credentials, embedded_env
from hevcq.farm.client import Farm
from hevcq.farm.embedded import EmbeddedFarm, farm_env
from hevcq.ledger import LedgerItem
from hevcq.library.results import Expected, SourcePool, dead_letter_results
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.messages import JobResult
from hevcq.metadata import META_MANIFEST_ETAG, META_PARTS
from hevcq.objects import ObjectInfo
from hevcq.pools import load_farm
from hevcq.settings import Settings
from hevcq.topology import EMBEDDED_BUCKET, FarmRefs
from tests.conftest import WORKERS_DIR
from tests.e2e.faultproxy import PROXIED_CREDENTIALS, Endpoint, FaultProxy, endpoint_behind_proxy


def pool_dir(tmp: Path, pools: tuple[str, ...] = ("hevc",), **queue: int) -> Path:
    """A workers dir with only some pools, the fastest preset and the given queue settings."""
    out = tmp / "workers"
    out.mkdir(parents=True, exist_ok=True)
    for name in pools:
        doc = yaml.safe_load((WORKERS_DIR / f"{name}.yaml").read_text())
        doc.setdefault("encode", {})["preset"] = "ultrafast"
        doc.setdefault("queue", {}).update(queue)
        (out / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return out


def user_env(tmp: Path, workers_dir: Path) -> dict[str, str]:
    """The environment of a user's ``hevcq`` in ``tmp``: no ``HEVCQ_``/``AWS_`` settings
    but the pools of ``workers_dir``, its own home and state folder (a run's logs go under
    ``tmp/state``), and a wide terminal."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(workers_dir),
        "HOME": str(tmp / "home"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "COLUMNS": "200",
    }


def run_hevcq(
    env: dict[str, str], cwd: Path, *args: str, timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    """``hevcq ARGS`` in a process of its own, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "hevcq", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def hevcq_cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``hevcq ARGS`` as a user runs it in ``tmp`` (``user_env``), with the pools of
    ``tmp/workers`` (``pool_dir``)."""
    return run_hevcq(user_env(tmp, tmp / "workers"), tmp, *args)


@contextmanager
def stack(tmp: Path, workers_dir: Path) -> Iterator[EmbeddedFarm]:
    """Endpoint and topology, no workers: the test starts its own."""
    settings = Settings(workers_dir=workers_dir)
    with EmbeddedFarm(settings, load_farm(workers_dir), tmp / "state", slots=0) as f:
        yield f


# A wrapper answers a worker's start-up questions (its version, encoders, decoders and
# filters) at once: only encodes wait.
ASKS = ('*" -version "*', '*" -encoders "*', '*" -decoders "*', '*" -filters "*')
ASKS_PASS = f'case " $* " in {"|".join(ASKS)}) exec "{find_ffmpeg()}" "$@";; esac\n'


def slow_ffmpeg(tmp: Path, delay_s: float) -> Path:
    """An ffmpeg that waits before encoding: a long job without a long clip."""
    script = tmp / f"slow-ffmpeg-{delay_s:g}"
    script.write_text(f'#!/bin/sh\n{ASKS_PASS}sleep {delay_s}\nexec "{find_ffmpeg()}" "$@"\n')
    script.chmod(0o755)
    return script


def _pool_args(pool: str | tuple[str, ...]) -> list[str]:
    return [a for name in ((pool,) if isinstance(pool, str) else pool) for a in ("--pool", name)]


class WorkerProc:
    """One `hevcq worker` process with its own JSON log file."""

    def __init__(
        self,
        farm: EmbeddedFarm | ProxiedFarm,
        pool: str | tuple[str, ...],
        log: Path,
        raw_env: dict[str, str] | None = None,
        **env: str | int | float | Path,
    ) -> None:
        """``env`` are settings by field name (``lease_s=12``); ``raw_env`` as they are;
        several pools make one process that takes any of their work."""
        assert farm.refs is not None
        base = farm_env(farm.refs, farm.endpoint, farm.settings, farm.credentials)
        # Scratch space of its own: the default folder is shared by every process on the host.
        env.setdefault("work_dir", str(log.parent / f"{log.stem}-work"))
        extra = {f"HEVCQ_{k.upper()}": str(v) for k, v in env.items()} | (raw_env or {})
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hevcq", "worker", *_pool_args(pool)],
                env={**os.environ, **base, **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def events(self) -> list[dict]:
        return read_events(self.log)


def children(pid: int) -> set[int]:
    """Every process whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    """The command line of ``pid``, or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def count_events(logs: list[Path], name: str, field: str = "key") -> Counter[str]:
    """How often each key logged the event ``name`` across worker logs."""
    c: Counter[str] = Counter()
    for log in logs:
        for e in read_events(log):
            if e.get("event") == name:
                c[str(e.get(field))] += 1
    return c


def wait_for(pred, timeout_s: float, every_s: float = 0.2) -> bool:
    """Poll ``pred`` until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every_s)
    return bool(pred())


@dataclass
class ProxiedFarm:
    """A farm on an endpoint process; workers reach it through a fault proxy.

    ``clients`` talk to the endpoint directly (the test's own view stays clear of faults);
    ``endpoint`` is the proxy's address, which ``WorkerProc`` hands to workers.
    """

    settings: Settings
    clients: Clients
    refs: FarmRefs
    endpoint: str
    proxy: FaultProxy
    upstream: Endpoint
    credentials: Credentials = PROXIED_CREDENTIALS


@contextmanager
def proxied_stack(tmp: Path, workers_dir: Path) -> Iterator[ProxiedFarm]:
    """Endpoint process, topology provisioned into it, and a fault proxy in front of it."""
    os.environ.update(embedded_env(PROXIED_CREDENTIALS))
    settings = Settings(workers_dir=workers_dir)
    pools = load_farm(workers_dir)
    with endpoint_behind_proxy(tmp) as (ep, proxy):
        clients = Clients.create(region=EMBEDDED_REGION, endpoint_url=ep.url)
        names = names_for(settings, pools, EMBEDDED_BUCKET)
        refs = provision(clients, names, pools, EMBEDDED_REGION)
        yield ProxiedFarm(settings, clients, refs, proxy.url, proxy, ep)


@dataclass
class Collector:
    """The results of a known set of jobs, read through the farm's one results consumer.

    Jobs no worker could report (their message went to a dead-letter queue) count as failed.
    """

    clients: Clients
    refs: FarmRefs
    expected: Expected = field(default_factory=lambda: Expected(set()))

    @property
    def results(self) -> dict[SourcePool, JobResult]:
        return self.expected.results

    @property
    def pending(self) -> set[SourcePool]:
        return self.expected.pending

    def wait(self, timeout_s: float, on_tick: Callable[[], None] | None = None) -> bool:
        """Drain the results queue until every expected job has a result; False on timeout."""
        return self.expected.wait(
            SqsInbox(self.clients.sqs, self.refs.results_queue_url),
            timeout_s=timeout_s,
            dead_letters=lambda: dead_letter_results(Farm(self.clients, self.refs, label="test")),
            on_tick=on_tick,
        )


def collector(farm: EmbeddedFarm | ProxiedFarm, keys: list[str], pool: str = "hevc") -> Collector:
    """A collector for the results of ``keys`` in ``pool``."""
    assert farm.clients is not None
    assert farm.refs is not None
    return Collector(farm.clients, farm.refs, Expected({(k, pool) for k in keys}))


@dataclass(frozen=True)
class Committed:
    """An output of many objects as a reader finds it: the object the ledger names, its
    attempt folder and the manifest listing the parts there."""

    store: S3Store
    output: ObjectInfo
    token: str
    prefix: str
    manifest: Manifest


def committed(farm: EmbeddedFarm, key: str, pool: str, out: str) -> Committed:
    """The committed output ``out`` of ``key`` in ``pool``, checked as a reader would: the
    ledger names the output, the output names its attempt and manifest, and the manifest
    is the one the output's metadata names."""
    store = S3Store(farm.clients.s3, farm.refs.bucket)
    item: LedgerItem | None = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table).get(
        key, pool
    )
    output = store.head(out)
    assert item is not None
    assert output is not None
    assert output.etag == item.output_etag
    token = output.metadata[META_PARTS]
    prefix = attempt_prefix(out, token)
    manifest_obj = store.head(prefix + MANIFEST)
    assert manifest_obj is not None
    assert manifest_obj.etag == output.metadata[META_MANIFEST_ETAG]
    manifest = Manifest.model_validate(json.loads(store.get_bytes(prefix + MANIFEST) or b""))
    return Committed(store, output, token, prefix, manifest)
