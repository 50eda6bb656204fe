"""An encode that saves nothing keeps the original: skipped, not failed, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hevcq.media.decide import KEPT_ORIGINAL
from hevcq.media.samples import make_clip
from tests.e2e.farmkit import pool_dir

pytestmark = pytest.mark.e2e


def test_a_larger_encode_keeps_the_original_and_a_rerun_leaves_it(tmp_path: Path) -> None:
    workers = pool_dir(tmp_path)
    doc = yaml.safe_load((workers / "hevc.yaml").read_text())
    doc["encode"]["crf"] = 0  # lossless: always larger than the lossy source
    (workers / "hevc.yaml").write_text(yaml.safe_dump(doc))
    lib = tmp_path / "lib"
    src = lib / "clip [x].mp4"
    make_clip(src, width=320, height=240, seconds=1.0)
    before = src.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(workers),
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "COLUMNS": "200",
    }
    cmd = [
        sys.executable,
        "-m",
        "hevcq",
        "ingest",
        str(lib),
        "--out",
        str(tmp_path / "out"),
        "--replace",
    ]
    run = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert KEPT_ORIGINAL in run.stdout
    assert "failed" not in run.stdout.split("hevcq summary", 1)[1]
    assert src.read_bytes() == before
    assert not list((tmp_path / "out").rglob("*.mp4")) if (tmp_path / "out").exists() else True
    again = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Nothing to encode" in again.stdout
