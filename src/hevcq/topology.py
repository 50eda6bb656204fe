"""The farm's resources by name and by address: one convention shared by the embedded
provisioning and Terraform, and the addresses every component is given.

Terraform (``infra/terraform``) builds the same names from ``name_prefix`` and the pool
files; a parity test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass


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
