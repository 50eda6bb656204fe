"""End-to-end fixtures: real ffmpeg, real worker processes, the embedded stack."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str) -> str:
    """The tool's path; skip without it on a laptop, fail in CI where it must exist."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} not installed")
    return path
