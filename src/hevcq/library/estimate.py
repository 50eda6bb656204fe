"""How long and how much: encode hours per pool, locally and on Fargate (pure arithmetic)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hevcq.library.calibrate import speed_for
from hevcq.library.scan import PoolTotals, ScanReport
from hevcq.pools import Pool


@dataclass(frozen=True, kw_only=True)
class FargatePrices:
    """Fargate prices per vCPU-hour and GB-hour, on-demand and Spot, with their source."""

    region: str
    as_of: str
    vcpu_hour: float
    gb_hour: float
    spot_vcpu_hour: float
    spot_gb_hour: float
    storage_gb_hour: float  # ephemeral storage beyond the free 20 GB
    source: str = "https://aws.amazon.com/fargate/pricing/"


# AWS Fargate pricing page (https://aws.amazon.com/fargate/pricing/), us-east-1, Linux/x86,
# as listed in January 2025. On-demand rates have been stable for years; Spot rates float
# with supply and demand (the page shows the current ones): these Spot figures are a
# typical reading, about 67% off, and should be refreshed before quoting a budget.
FARGATE_PRICES = FargatePrices(
    region="us-east-1",
    as_of="2025-01",
    vcpu_hour=0.04048,
    gb_hour=0.004445,
    spot_vcpu_hour=0.01334053,
    spot_gb_hour=0.00146489,
    storage_gb_hour=0.000111,
)
FREE_EPHEMERAL_GB = 20


@dataclass(frozen=True)
class TaskSize:
    """A Fargate task size."""

    vcpu: float = 2.0
    memory_gib: float = 4.0
    ephemeral_gib: int = FREE_EPHEMERAL_GB

    @classmethod
    def of(cls, pool: Pool) -> TaskSize:
        """The task size a pool file deploys."""
        d = pool.deploy
        return cls(d.cpu / 1024, d.memory_mib / 1024, d.ephemeral_storage_gib)

    def hourly(self, prices: FargatePrices, *, spot: bool) -> float:
        """Price of one task-hour (Fargate bills memory per GB of the GiB configured)."""
        vcpu, gb = (
            (prices.spot_vcpu_hour, prices.spot_gb_hour)
            if spot
            else (prices.vcpu_hour, prices.gb_hour)
        )
        storage = max(0, self.ephemeral_gib - FREE_EPHEMERAL_GB) * prices.storage_gb_hour
        return self.vcpu * vcpu + self.memory_gib * gb + storage


@dataclass(frozen=True, kw_only=True)
class PoolEstimate:
    """One pool's work and what it costs."""

    pool: str
    files: int
    source_hours: float
    speed: float  # real-time factor per vCPU
    calibrated: bool  # False when ``speed`` is a default
    vcpu_hours: float
    local_hours: float  # wall hours on this machine, every core busy
    task: TaskSize
    task_hours: float  # Fargate task-hours (wall hours with one task)
    on_demand_usd: float
    spot_usd: float


@dataclass(frozen=True)
class Estimate:
    """Per-pool estimates, plus totals."""

    local_cpus: int
    prices: FargatePrices
    pools: Mapping[str, PoolEstimate] = field(default_factory=dict)

    @property
    def local_hours(self) -> float:
        """Wall hours to run every pool on this machine, one after another."""
        return sum(p.local_hours for p in self.pools.values())

    @property
    def on_demand_usd(self) -> float:
        """Fargate on-demand cost of every pool."""
        return sum(p.on_demand_usd for p in self.pools.values())

    @property
    def spot_usd(self) -> float:
        """Fargate Spot cost of every pool."""
        return sum(p.spot_usd for p in self.pools.values())


def pool_estimate(
    name: str,
    totals: PoolTotals,
    *,
    speed: float | None,
    task: TaskSize,
    prices: FargatePrices,
    local_cpus: int,
) -> PoolEstimate:
    """One pool's hours and cost from its source seconds and speed."""
    rtf, calibrated = speed_for(name, {name: speed} if speed else None)
    vcpu_s = totals.seconds / rtf
    task_hours = vcpu_s / task.vcpu / 3600
    return PoolEstimate(
        pool=name,
        files=totals.files,
        source_hours=totals.seconds / 3600,
        speed=rtf,
        calibrated=calibrated,
        vcpu_hours=vcpu_s / 3600,
        local_hours=vcpu_s / max(1, local_cpus) / 3600,
        task=task,
        task_hours=task_hours,
        on_demand_usd=task_hours * task.hourly(prices, spot=False),
        spot_usd=task_hours * task.hourly(prices, spot=True),
    )


def estimate(
    report: ScanReport,
    speeds: Mapping[str, float],
    *,
    task: TaskSize | Mapping[str, TaskSize] | None = None,
    prices: FargatePrices = FARGATE_PRICES,
    local_cpus: int | None = None,
) -> Estimate:
    """Encode hours and cost per pool for the files a scan selected to send."""
    cpus = local_cpus or os.cpu_count() or 1
    out = {}
    for name, totals in report.totals.items():
        size = task.get(name, TaskSize()) if isinstance(task, Mapping) else task or TaskSize()
        out[name] = pool_estimate(
            name, totals, speed=speeds.get(name), task=size, prices=prices, local_cpus=cpus
        )
    return Estimate(cpus, prices, out)
