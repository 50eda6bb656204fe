"""Cost per output minute from the measured speeds: Fargate against managed services."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Figure, figure
from benchmarks.prices import MANAGED_PRICES
from hevcq.library.estimate import (
    FARGATE_PRICES,
    FargatePrices,
    TaskSize,
    pool_estimate,
)
from hevcq.library.scan import PoolTotals
from hevcq.pools import load_farm

# Output short side per pool for the managed services' resolution classes, on the
# 1080p sources the speeds were measured with (the hevc pool keeps the source size).
OUTPUT_HEIGHT = {"hevc": 1080, "1080p": 1080, "720p": 720}
LIBRARY_HOURS = 100.0  # an example library of 1080p sources, every pool applied


def cost_per_minute(
    speed: float, task: TaskSize, prices: FargatePrices = FARGATE_PRICES, *, spot: bool
) -> float:
    """USD per minute of video for one Fargate task encoding at ``speed`` per vCPU."""
    task_hours = 60 / (speed * task.vcpu) / 3600
    return task_hours * task.hourly(prices, spot=spot)


def run_costs(speeds: dict[str, list[float]]) -> tuple[list[Figure], dict[str, Any]]:
    """Figures per pool and pricing, and a table (JSON-ready) with the managed prices."""
    farm = load_farm()
    figs: list[Figure] = []
    table: dict[str, Any] = {
        "fargate_prices": FARGATE_PRICES.__dict__,
        "pools": {},
        "managed": [m.__dict__ for m in MANAGED_PRICES],
    }
    for name, samples in speeds.items():
        task = TaskSize.of(farm[name])
        note = (
            f"{task.vcpu:g} vCPU / {task.memory_gib:g} GiB task, {FARGATE_PRICES.region} "
            f"prices as of {FARGATE_PRICES.as_of}, from the measured speed"
        )
        per_min = {}
        for spot in (False, True):
            kind = "Spot" if spot else "on-demand"
            costs = [cost_per_minute(s, task, spot=spot) for s in samples]
            fig = figure(
                f"cost per output minute, {name}, Fargate {kind}", "USD/min", costs, notes=note
            )
            figs.append(fig)
            per_min[kind] = fig.median
        height = OUTPUT_HEIGHT.get(name, 1080)
        speed = sorted(samples)[len(samples) // 2]
        lib = pool_estimate(
            name,
            PoolTotals(1, 0, LIBRARY_HOURS * 3600),
            speed=speed,
            task=task,
            prices=FARGATE_PRICES,
            local_cpus=2,
        )
        table["pools"][name] = {
            "speed_per_vcpu": speed,
            "task": task.__dict__,
            "fargate_usd_per_min": per_min,
            "managed_usd_per_min": {m.service: m.per_minute(height) for m in MANAGED_PRICES},
            f"library_{LIBRARY_HOURS:g}h": {
                "task_hours": lib.task_hours,
                "fargate_on_demand_usd": lib.on_demand_usd,
                "fargate_spot_usd": lib.spot_usd,
                **{
                    m.service + "_usd": m.per_minute(height) * LIBRARY_HOURS * 60
                    for m in MANAGED_PRICES
                },
            },
        }
    return figs, table
