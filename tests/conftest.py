"""Shared fixtures: AWS credentials for moto, the real pool files, a tiny farm definition."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from hevcq.pools import Pool, load_farm
from tests.fakes import MemoryLedger

REPO = Path(__file__).resolve().parents[1]
WORKERS_DIR = REPO / "workers"


# pytest 9.2 reads a test's id from a new attribute; pytest-xdist (3.8) groups tests by
# suffixing the old one, so with 9.2 every group silently falls apart.
XDIST_GROUPS_BREAK_AT = (9, 2)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run grouped tests apart. ``make test`` spreads tests over the cores with
    ``--dist loadgroup``; tests marked ``xdist_group`` share one worker because they must
    not run beside each other (timed faults) or share an expensive set-up (Terraform)."""
    if config.getoption("dist", "no") != "loadgroup":
        return
    version = tuple(int(p) for p in pytest.__version__.split(".")[:2])
    if version >= XDIST_GROUPS_BREAK_AT:
        raise pytest.UsageError(
            f"pytest {pytest.__version__} breaks pytest-xdist's test groups; "
            "install the pytest pyproject.toml names (make install)"
        )


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real credentials, endpoints or user settings leak into a test."""
    for var in list(os.environ):
        if var.startswith(("HEVCQ_", "AWS_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Code that configures structlog (an entry point under test) binds the stream pytest
    captured for that test, closed after it: every test starts from the same setup."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def ledger() -> MemoryLedger:
    """The ledger's rules over an in-memory table, one per test."""
    return MemoryLedger()


@pytest.fixture(scope="session")
def farm() -> dict[str, Pool]:
    """The pools as shipped in workers/."""
    return load_farm(WORKERS_DIR)


def fast_pools(tmp: Path, visibility_timeout_s: int = 30, max_receive_count: int = 12) -> Path:
    """A copy of workers/ with the fastest preset and short queue timings, for tests."""
    out = tmp / "workers"
    out.mkdir(parents=True, exist_ok=True)
    for f in WORKERS_DIR.glob("*.yaml"):
        doc = yaml.safe_load(f.read_text())
        doc.setdefault("encode", {})["preset"] = "ultrafast"
        doc.setdefault("queue", {}).update(
            visibility_timeout_s=visibility_timeout_s, max_receive_count=max_receive_count
        )
        (out / f.name).write_text(yaml.safe_dump(doc))
    return out


def run_cli(args: list[str], **env: str) -> Any:
    """``hevcq ARGS`` in this process with typer's test runner (its ``Result``), every
    command registered, in a wide terminal."""
    from typer.testing import CliRunner  # noqa: PLC0415 - the CLI loads typer

    from hevcq.cli.app import app  # noqa: PLC0415
    from hevcq.cli.main import COMMAND_MODULES  # noqa: PLC0415

    assert COMMAND_MODULES  # importing them registers every command on ``app``
    return CliRunner().invoke(app, args, env={"COLUMNS": "300", **env})
