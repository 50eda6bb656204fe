"""A full output disk: `hevcq ingest --out` on a real small filesystem stops at once, with
one `error:` line and its own exit code, and never calls an output `done` that is not there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hevcq.media.samples import make_clip
from tests.e2e.farmkit import pool_dir

pytestmark = pytest.mark.e2e

EXIT_CANNOT_PLACE = 6  # README, "Exit codes"
DISK_KIB = 1024
LEFT_FREE_KIB = 16  # less than any output needs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, nearly full; needs root (CI runs as root), skipped elsewhere."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_KIB}k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a small tmpfs in CI: {made.stderr.strip()}")
        pytest.skip(f"needs root to mount a small tmpfs: {made.stderr.strip()}")
    try:
        (mnt / "filler").write_bytes(b"\0" * ((DISK_KIB - LEFT_FREE_KIB) * 1024))
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_out_disk_stops_the_ingest_with_one_error_line(
    tmp_path: Path, small_disk: Path
) -> None:
    lib = tmp_path / "lib"
    for name, seconds in (("a.mp4", 0.5), ("b.mp4", 0.6)):
        make_clip(lib / name, width=320, height=240, seconds=seconds)
    out = small_disk / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))} | {
        "HEVCQ_WORKERS_DIR": str(pool_dir(tmp_path)),
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "COLUMNS": "200",
    }
    # A run that waits for room instead of stopping ends at --timeout, with exit code 5.
    cmd = [
        sys.executable,
        "-m",
        "hevcq",
        "ingest",
        str(lib),
        "--out",
        str(out),
        "--no-dashboard",
        "--timeout",
        "40",
    ]
    run = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    said = run.stdout + run.stderr
    assert run.returncode == EXIT_CANNOT_PLACE, said[-4000:]
    assert "Traceback" not in said
    assert run.stderr.count("error:") == 1, run.stderr  # errors go to stderr, always
    assert "error:" not in run.stdout
    error = " ".join(run.stderr[run.stderr.index("error:") :].split())  # wrapped to the terminal
    assert f"no space left in {out / 'hevc'}: " in error, error
    assert "free some space" in error
    summary = run.stdout.split("hevcq summary", 1)[-1]
    rows = [ln for ln in summary.splitlines() if any(n in ln for n in ("a.mp4", "b.mp4"))]
    assert rows, summary
    assert not any(" done " in ln for ln in rows), summary  # nothing was placed
    assert not list(small_disk.rglob("*.part"))
    assert not list(small_disk.rglob("*.mp4"))
