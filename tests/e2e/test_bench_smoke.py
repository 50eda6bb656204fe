"""The benchmark entry point in quick mode: the cheapest pieces run and the JSON is complete."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from benchmarks.bench_farm import bracketing

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

FIGURE_KEYS = {"name", "unit", "median", "min", "max", "runs", "target", "met", "notes", "samples"}


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "encode,cost", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    latest = out / "latest.json"
    return proc, json.loads(latest.read_text()) if latest.exists() else {}


def test_quick_run_succeeds(quick_run) -> None:
    proc, doc = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert doc["quick"] is True
    assert doc["errors"] == {}


def test_json_says_when_where_and_on_what(quick_run) -> None:
    _, doc = quick_run
    assert doc["date"]
    assert len(doc["git_commit"]) >= 40
    assert doc["machine"]["cpus"] >= 1
    assert doc["machine"]["ffmpeg"].startswith("ffmpeg version")


def test_every_figure_is_complete(quick_run) -> None:
    _, doc = quick_run
    figs = [f for group in doc["figures"].values() for f in group]
    assert {"encode", "cost"} <= set(doc["figures"])
    assert figs
    for f in figs:
        assert set(f) == FIGURE_KEYS
        assert f["min"] <= f["median"] <= f["max"]
        assert f["runs"] == len(f["samples"]) >= 1


def test_every_pool_gets_a_measured_speed_and_a_cost(quick_run) -> None:
    _, doc = quick_run
    names = {f["name"] for f in doc["figures"]["encode"]}
    for pool in ("hevc", "720p", "1080p"):
        assert f"encode speed {pool}, all content" in names
        costs = doc["cost"]["pools"][pool]
        assert costs["speed_per_vcpu"] > 0
        assert 0 < costs["fargate_usd_per_min"]["Spot"] < costs["fargate_usd_per_min"]["on-demand"]
    assert doc["speeds_source"] == "measured in this run"


def test_the_table_is_printed(quick_run) -> None:
    proc, _ = quick_run
    assert "hevcq benchmarks" in proc.stdout
    assert "encode speed hevc, all content" in proc.stdout


def test_unknown_benchmark_names_are_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr


def test_each_farm_job_is_judged_against_the_bare_runs_either_side() -> None:
    # bare, job, bare, job, bare: a machine slowing down during the run is averaged out.
    assert bracketing([10.0, 12.0, 11.0]) == [11.0, 11.5]
    assert bracketing([10.0]) == []
