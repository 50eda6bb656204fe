"""The ingest summary reads at any width: columns go by priority, a file name stays on one
line (shortened in the middle), saved is per pool; off a terminal nothing wraps."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from rich.console import Console

from hevcq.cli.report import summary_table
from hevcq.library.summary import Row, library_input, pool_totals, shorten_middle

NAME = "holiday/2026 summer in the mountains/IMG_20260714_183005_HDR.mp4"
ROWS = [
    Row(NAME, pool, "done", "", 9_600_000, out, 12.5)
    for pool, out in (("hevc", 4_000_000), ("720p", 1_000_000), ("1080p", 4_000_000))
] + [Row("docs/notes.mp4", "hevc", "failed", "not a video: Invalid data found")]


def _render(width: int) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(summary_table(ROWS, width))
    return buf.getvalue()


@pytest.mark.parametrize("width", [60, 80, 100, 200])
def test_the_summary_fits_and_keeps_each_name_on_one_line(width: int) -> None:
    text = _render(width)
    assert max(len(ln) for ln in text.splitlines()) <= width
    rows = [ln for ln in text.splitlines() if "HDR.mp4" in ln]
    assert len(rows) == 3  # one line per pool, the name never folded onto a second line
    assert all("holid" in ln for ln in rows)  # the start of the path stays too


def test_columns_go_by_priority_as_the_terminal_narrows() -> None:
    assert "seconds" in _render(120)
    assert "seconds" not in _render(90)
    assert "input" not in _render(70)
    assert "saved" in _render(60)


def test_saved_is_per_pool_and_the_input_counts_once_per_file() -> None:
    totals = {t.pool: t for t in pool_totals(ROWS)}
    assert totals["hevc"].input_bytes == 9_600_000
    assert totals["720p"].saved == "90%"
    assert library_input(ROWS) == (1, 9_600_000)


def test_shorten_middle_keeps_start_and_end() -> None:
    short = shorten_middle(NAME, 30)
    assert len(short) == 30
    assert short.startswith("holiday/")
    assert short.endswith("_HDR.mp4")
    assert shorten_middle("a.mp4", 30) == "a.mp4"


def test_off_a_terminal_lines_never_wrap() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    code = (
        "from rich.text import Text\n"
        "from hevcq.cli.app import console, notes\n"
        f"console.print(Text('placed ' + {NAME!r} * 3))\n"
        "notes.print(Text('error: ' + 'x' * 300))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert done.stdout.count("\n") == 1
    assert done.stderr.count("\n") == 1


def test_a_file_no_pool_got_is_totalled_as_not_sent() -> None:
    rows = [*ROWS, Row("docs/other.txt.mp4", "-", "failed", "not a media file")]
    labels = [t.file for t in pool_totals(rows)]
    assert labels == ["total (not sent)", "total 1080p", "total 720p", "total hevc"]
