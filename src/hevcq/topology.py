"""The farm's resources by name and by address: one convention shared by the embedded
provisioning and Terraform, and the addresses every component is given.

Terraform (``infra/terraform``) builds the same names from ``name_prefix`` and the pool
files; a parity test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PoolNames:
    """Names of one pool's queues."""

    queue: str
    dlq: str


@dataclass(frozen=True)
class Names:
    """Every resource name of a farm."""

    prefix: str
    bucket: str
    uploads_topic: str
    events_topic: str
    results_queue: str
    ledger_table: str
    pools: dict[str, PoolNames]

    @classmethod
    def build(cls, prefix: str, bucket: str, pools: list[str]) -> Names:
        """Derive all names from the prefix, the bucket and the pool names."""
        return cls(
            prefix=prefix,
            bucket=bucket,
            uploads_topic=f"{prefix}-uploads",
            events_topic=f"{prefix}-events",
            results_queue=f"{prefix}-results",
            ledger_table=f"{prefix}-ledger",
            pools={p: PoolNames(queue=f"{prefix}-{p}", dlq=f"{prefix}-{p}-dlq") for p in pools},
        )


EMBEDDED_BUCKET = "hevcq-local"


@dataclass(frozen=True)
class PoolRefs:
    """A pool's queue URLs."""

    queue_url: str
    dlq_url: str


@dataclass(frozen=True)
class FarmRefs:
    """Everything a component needs to address the farm."""

    names: Names
    uploads_topic_arn: str
    events_topic_arn: str
    results_queue_url: str
    ledger_table: str
    pools: dict[str, PoolRefs]

    @property
    def bucket(self) -> str:
        """The farm's bucket."""
        return self.names.bucket

    def to_record(self) -> dict[str, Any]:
        """These addresses as plain JSON values (the embedded farm's farm file)."""
        return {
            "prefix": self.names.prefix,
            "bucket": self.bucket,
            "uploads_topic_arn": self.uploads_topic_arn,
            "events_topic_arn": self.events_topic_arn,
            "results_queue_url": self.results_queue_url,
            "ledger_table": self.ledger_table,
            "pools": {
                n: {"queue_url": p.queue_url, "dlq_url": p.dlq_url} for n, p in self.pools.items()
            },
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> FarmRefs:
        """Addresses read back from ``to_record``'s values; a missing field raises KeyError."""
        pools = {
            str(n): PoolRefs(str(p["queue_url"]), str(p["dlq_url"]))
            for n, p in data["pools"].items()
        }
        return cls(
            names=Names.build(str(data["prefix"]), str(data["bucket"]), sorted(pools)),
            uploads_topic_arn=str(data["uploads_topic_arn"]),
            events_topic_arn=str(data["events_topic_arn"]),
            results_queue_url=str(data["results_queue_url"]),
            ledger_table=str(data["ledger_table"]),
            pools=pools,
        )
