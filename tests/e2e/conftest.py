"""End-to-end fixtures: real ffmpeg, real worker processes, the embedded stack."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.tfhelpers import TerraformFarms

IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str) -> str:
    """The tool's path; skip without it on a laptop, fail in CI where it must exist."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} not installed")
    return path


@pytest.fixture(scope="session")
def terraform_farms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TerraformFarms]:
    """The farms test_terraform and test_parity read, applied side by side to one moto
    server the first time either is asked for (see ``tfhelpers.terraform_farms``)."""
    from tests.e2e.tfhelpers import terraform_farms  # noqa: PLC0415 - moto loads only when used

    with terraform_farms(tmp_path_factory.mktemp("terraform-farms")) as farms:
        yield farms
