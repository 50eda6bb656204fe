"""File names with brackets print as they are: never read as rich markup."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hevcq.cli import app as cli
from hevcq.cli import main as registered  # noqa: F401 - every command on the app
from hevcq.cli.report import BarProgress, LineProgress, fetch_table, summary_table
from hevcq.library.quarantine import DEFAULT_QUARANTINE, swap_in
from hevcq.library.results import Fetched
from hevcq.library.scan import FileEntry
from hevcq.library.summary import Row
from hevcq.library.upload import Uploaded

NAME = "odd [x]/take [/x] [bold]1[/bold].mp4"


def rendered(fn: Callable[[Console], None]) -> str:
    console = Console(record=True, width=300, force_terminal=False)
    fn(console)
    return console.export_text()


def test_the_summary_prints_names_as_they_are() -> None:
    rows = [Row(NAME, "hevc", "failed", "refused: [red]x[/red]", 10, 5, 1.0)]
    text = rendered(lambda c: c.print(summary_table(rows)))
    assert NAME in text
    assert "refused: [red]x[/red]" in text
    assert "total" in text.splitlines()[-2]  # the totals row ends the table


def test_fetch_table_prints_names_as_they_are() -> None:
    item = Fetched(NAME, "hevc", "failed", reason="[/x] went wrong")
    text = rendered(lambda c: c.print(fetch_table([item])))
    assert NAME in text
    assert "[/x] went wrong" in text


def test_progress_lines_print_names_as_they_are() -> None:
    e = FileEntry(rel=NAME, size=10, duration_s=1.0, fingerprint="fp", status="send")
    up = Uploaded(e, "TODO/x", sent=False, error="[/x] broke")

    def show(c: Console) -> None:
        p = LineProgress(c)
        p.begin(1, 10)
        p.file_done(up)
        bar = BarProgress(c)
        bar.begin(1, 10)
        bar.file_done(up)
        bar.end()

    text = rendered(show)
    assert f"[1/1] {NAME}: failed: [/x] broke" in text
    assert f"upload failed {NAME}: [/x] broke" in text


def test_quarantine_list_and_rollback_print_names_as_they_are(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "odd [x]").mkdir(parents=True)
    src = lib / "odd [x]" / "[bold]take.MOV"  # a file name cannot hold "[/x]"; a folder path can
    src.write_bytes(b"original")
    new = tmp_path / "new.mp4"
    new.write_bytes(b"new")
    now = datetime.now(UTC) - timedelta(days=1)
    swap_in(src, new, quarantine_root=lib / DEFAULT_QUARANTINE, keep_days=30, now=now)
    runner = CliRunner()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEVCQ_")} | {"COLUMNS": "300"}
    listed = runner.invoke(cli.app, ["quarantine", "list", str(lib)], env=env)
    assert listed.exit_code == 0, listed.output
    assert "odd [x]/[bold]take.MOV" in listed.output
    back = runner.invoke(cli.app, ["rollback", "--all", "--library", str(lib)], env=env)
    assert back.exit_code == 0, back.output
    assert f"restored {src}" in back.output.replace("\n", "")


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 300)
