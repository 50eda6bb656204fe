"""Markdown tables from results/latest.json: ``python -m benchmarks.report [PATH]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _num(x: float) -> str:
    return f"{x:.4g}"


def figures_table(doc: dict[str, Any]) -> str:
    """Every figure: median, min, max, runs, target and whether it was met."""
    lines = [
        "| bench | figure | median | min | max | runs | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bench, figs in doc["figures"].items():
        for f in figs:
            met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
            lines.append(
                f"| {bench} | {f['name']} | {_num(f['median'])} {f['unit']} | {_num(f['min'])} "
                f"| {_num(f['max'])} | {f['runs']} | {f['target'] or ''} | {met} |"
            )
    return "\n".join(lines)


def cost_table(doc: dict[str, Any]) -> str:
    """USD per output minute per pool: Fargate from the measured speed, managed list prices."""
    cost = doc.get("cost")
    if not cost:
        return ""
    services = [m["service"] for m in cost["managed"]]
    head = ["pool", "speed /vCPU", "task", "Fargate on-demand", "Fargate Spot", *services]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pool, row in cost["pools"].items():
        task = f"{row['task']['vcpu']:g} vCPU / {row['task']['memory_gib']:g} GiB"
        fg = row["fargate_usd_per_min"]
        managed = [f"${row['managed_usd_per_min'][s]:.4f}" for s in services]
        cells = [
            pool,
            _num(row["speed_per_vcpu"]),
            task,
            f"${fg['on-demand']:.4f}",
            f"${fg['Spot']:.4f}",
            *managed,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def library_table(doc: dict[str, Any]) -> str:
    """The example library's cost per pool."""
    cost = doc.get("cost")
    if not cost:
        return ""
    lines: list[str] = []
    for pool, row in cost["pools"].items():
        key = next(k for k in row if k.startswith("library_"))
        lib = row[key]
        if not lines:
            cols = [c for c in lib if c != "task_hours"]
            lines = [
                "| pool | task-hours | " + " | ".join(cols) + " |",
                "|---|---|" + "---|" * len(cols),
            ]
        cells = [f"${lib[c]:,.2f}" for c in lib if c != "task_hours"]
        lines.append(f"| {pool} | {lib['task_hours']:,.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the tables."""
    doc = json.loads(Path(argv[0] if argv else RESULTS).read_text())
    m = doc["machine"]
    load = m["loadavg_at_start"][0]
    print(
        f"Run {doc['date']} at {doc['git_commit'][:12]}, {m['cpus']} vCPU {m['cpu_model']}, "
        f"load {load:.1f} at start; seconds per bench {doc['seconds']}\n"
    )
    print(figures_table(doc), "", cost_table(doc), "", library_table(doc), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
