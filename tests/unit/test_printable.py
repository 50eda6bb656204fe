"""Text from outside reaches a terminal or a log line with its control characters shown as
escapes (``hevcq.printable``, the CLI's console, the console log renderer)."""

from __future__ import annotations

import io

import pytest
import structlog
from rich.table import Table
from rich.text import Text

from hevcq import logs
from hevcq.cli.screen import SafeConsole
from hevcq.printable import printable

# Set the window title, turn the text red, clear the screen, a C1 CSI, a forged log line,
# a bidi override.
HOSTILE = "\x1b]0;pwned\x07\x1b[31mred\x1b[2J\u009b1mx\rforged\nline\u202egpj.mp4"
RAW = ("\x1b", "\x07", "\u009b", "\r", "\u202e")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("holiday/beach.mp4", "holiday/beach.mp4"),
        ("été/Ωμέγα 🎬.mp4", "été/Ωμέγα 🎬.mp4"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("a\u009bb", "a\\x9bb"),
        ("a\x7fb", "a\\x7fb"),
        ("one\ntwo", "one\\x0atwo"),
        ("a\u2028b", "a\\u2028b"),
        ("invoice\u202egpj.exe", "invoice\\u202egpj.exe"),
        ("bad\udc9bbyte", "bad\\udc9bbyte"),
        # The joiners emoji and Arabic script need are text, not controls.
        ("👩\u200d💻", "👩\u200d💻"),
    ],
)
def test_controls_are_shown_as_their_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_kept_characters_pass_and_printable_ascii_is_the_same_object() -> None:
    assert printable("one\ntwo\x1b", keep="\n") == "one\ntwo\\x1b"
    plain = "holiday/beach.mp4"
    assert printable(plain) is plain


def _console(*, terminal: bool) -> tuple[SafeConsole, io.StringIO]:
    out = io.StringIO()
    console = SafeConsole(
        file=out, width=200, force_terminal=terminal, color_system="standard" if terminal else None
    )
    return console, out


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_the_console_never_writes_a_control_character_it_was_given(terminal: bool) -> None:
    console, out = _console(terminal=terminal)
    table = Table("file", "why")
    table.add_row(Text(HOSTILE), Text(f"failed: {HOSTILE}", style="red"))
    table.add_row(HOSTILE, "plain str cell")
    console.print(table)
    console.print(Text.assemble(("error: ", "red"), HOSTILE))
    console.print(HOSTILE, markup=False)
    written = out.getvalue()
    # On a terminal the console's own colours are escape sequences; nothing else is.
    if terminal:
        assert "\x1b[31m" in written  # the console's red, still there
    for attack in ("\x1b]0;pwned", "\x1b[2J", "\u009b", "\u202e", "\r"):
        assert attack not in written
    assert "\\x1b]0;pwned" in written
    assert "\\x1b[2J" in written
    assert "\\u202egpj.mp4" in written
    if not terminal:
        assert not any(ch in written for ch in RAW)


def test_an_escaped_name_is_laid_out_at_the_width_it_shows() -> None:
    console, out = _console(terminal=False)
    table = Table("file", "pool")
    table.add_row(Text("a\x1bb.mp4"), "hevc")
    table.add_row(Text("longer-name.mp4"), "720p")
    console.print(table)
    rows = [line for line in out.getvalue().splitlines() if "mp4" in line]
    assert "a\\x1bb.mp4" in rows[0]
    assert len({len(r) for r in rows}) == 1, rows  # the columns still line up


def test_console_log_lines_show_names_escaped_and_stay_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    logs.configure(fmt="console", file=out)
    try:
        structlog.get_logger().warning("upload failed", path=HOSTILE, reason="bad\nline")
    finally:
        structlog.reset_defaults()
    written = out.getvalue()
    assert written.count("\n") == 1, written
    assert not any(ch in written for ch in RAW)
    assert "\\x1b]0;pwned" in written
    assert "bad\\x0aline" in written


def test_a_logged_traceback_keeps_its_lines() -> None:
    event = {"event": "crash", "exception": "Traceback\n  line\x1b[2J\nValueError"}
    shown = logs.printable_values(None, "error", event)
    assert shown["exception"] == "Traceback\n  line\\x1b[2J\nValueError"
