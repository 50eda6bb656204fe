"""Finding a running embedded farm through the farm file it leaves in its state folder.

``<state dir>/farm.json`` (written by the embedded farm while it runs, removed when it
stops) holds its endpoint and every resource address::

    {"endpoint": "http://127.0.0.1:PORT", "pid": 1234,
     "names": {"prefix": ..., "bucket": ..., "uploads_topic": ..., "events_topic": ...,
               "results_queue": ..., "ledger_table": ..., "pools": {"hevc": {"queue": ...,
               "dlq": ...}}},
     "uploads_topic_arn": ..., "events_topic_arn": ..., "results_queue_url": ...,
     "ledger_table": ..., "pools": {"hevc": {"queue_url": ..., "dlq_url": ...}}}
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from hevcq.provision import FarmRefs, PoolRefs
from hevcq.topology import Names, PoolNames

FARM_FILE = "farm.json"


class _PoolNames(BaseModel):
    queue: str
    dlq: str


class _Names(BaseModel):
    prefix: str
    bucket: str
    uploads_topic: str
    events_topic: str
    results_queue: str
    ledger_table: str
    pools: dict[str, _PoolNames]


class _PoolRefs(BaseModel):
    queue_url: str
    dlq_url: str


class FarmFile(BaseModel):
    """The farm file's shape."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str
    pid: int | None = None
    names: _Names
    uploads_topic_arn: str
    events_topic_arn: str
    results_queue_url: str
    ledger_table: str
    pools: dict[str, _PoolRefs]

    def refs(self) -> FarmRefs:
        """The addresses as the rest of hevcq takes them."""
        n = self.names
        names = Names(
            prefix=n.prefix, bucket=n.bucket, uploads_topic=n.uploads_topic,
            events_topic=n.events_topic, results_queue=n.results_queue,
            ledger_table=n.ledger_table,
            pools={p: PoolNames(queue=v.queue, dlq=v.dlq) for p, v in n.pools.items()},
        )  # fmt: skip
        return FarmRefs(
            names=names, uploads_topic_arn=self.uploads_topic_arn,
            events_topic_arn=self.events_topic_arn, results_queue_url=self.results_queue_url,
            ledger_table=self.ledger_table,
            pools={p: PoolRefs(v.queue_url, v.dlq_url) for p, v in self.pools.items()},
        )  # fmt: skip

    @classmethod
    def of(cls, endpoint: str, refs: FarmRefs, pid: int | None = None) -> FarmFile:
        """The file for a farm (the writer side, and tests)."""
        return cls.model_validate(
            {
                "endpoint": endpoint, "pid": pid, "names": asdict(refs.names),
                "uploads_topic_arn": refs.uploads_topic_arn,
                "events_topic_arn": refs.events_topic_arn,
                "results_queue_url": refs.results_queue_url, "ledger_table": refs.ledger_table,
                "pools": {p: asdict(r) for p, r in refs.pools.items()},
            }
        )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_running_farm(state_dir: Path) -> FarmFile | None:
    """The running embedded farm's file, or None (absent, unreadable, or its process is gone)."""
    path = state_dir / FARM_FILE
    try:
        farm = FarmFile.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None
    if farm.pid is not None and not _alive(farm.pid):
        return None
    return farm
