"""A file name is text from outside: whoever can name a file in the library (another user of
a NAS, a synced phone) must not be able to drive the operator's terminal through hevcq's
output. Each command runs as a real process on a pseudo-terminal, as a person would see it,
and on a pipe, as a script would."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from hevcq.media.samples import make_clip

pytestmark = pytest.mark.e2e

# Each name would, printed as it is: set the window title and turn the screen red; clear
# the screen (a C0 CSI, then a C1 one); show "gpj.mp4" reversed behind a bidi override.
TITLE = "\x1b]0;pwned\x07\x1b[31mred.mp4"
CLEAR = "\x1b[2Jclear.mp4"
C1 = "c1\u009b2J.mp4"
BIDI = "invoice\u202egpj.mp4"
ATTACKS = ("\x1b]0;pwned", "\x1b[2J", "\x9b2J", "\u202e")


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    make_clip(lib / TITLE, width=320, height=240, seconds=0.5)
    for name in (CLEAR, C1, BIDI):
        (lib / name).write_bytes(b"not a video")
    return lib


def _env(tmp: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    base.pop("COLUMNS", None)
    return base | {
        "HOME": str(tmp / "home"),
        "XDG_STATE_HOME": str(tmp / "state"),
        "TERM": "xterm-256color",
    }


def on_a_terminal(tmp: Path, *args: str, timeout_s: float = 180) -> tuple[int, str]:
    """Run ``hevcq *args`` on a pseudo-terminal 200 columns wide: its exit code and all it
    wrote there, as the terminal received it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hevcq", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=tmp,
        env=_env(tmp),
        start_new_session=True,
    )
    os.close(follower)
    got = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError as exc:  # EIO: every writer has closed the terminal
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            got += chunk
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    return rc, got.decode("utf-8", errors="replace")


def on_a_pipe(tmp: Path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hevcq", *args],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=_env(tmp) | {"COLUMNS": "200"},
        timeout=180,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _assert_shown_not_obeyed(written: str) -> None:
    for attack in ATTACKS:
        assert attack not in written, f"{attack!r} reached the terminal:\n{written}"
    assert "Traceback" not in written
    # Each name is still there to find, its controls spelled out.
    assert "\\x1b]0;pwned" in written
    assert "\\x1b[2Jclear.mp4" in written
    assert "c1\\x9b2J.mp4" in written
    assert "invoice\\u202egpj.mp4" in written


def test_a_dry_run_shows_hostile_names_without_obeying_them(tmp_path: Path, lib: Path) -> None:
    rc, written = on_a_terminal(tmp_path, "ingest", str(lib), "--dry-run")
    assert rc == 0, written
    _assert_shown_not_obeyed(written)
    rc, written = on_a_pipe(tmp_path, "ingest", str(lib), "--dry-run")
    assert rc == 0, written
    _assert_shown_not_obeyed(written)
    assert "\x1b" not in written


def test_an_ingest_summary_shows_hostile_names_without_obeying_them(
    tmp_path: Path, lib: Path
) -> None:
    rc, written = on_a_terminal(tmp_path, "ingest", str(lib), "--out", str(tmp_path / "out"))
    # Nothing could be sent: the clip's name has control characters, the rest are not
    # videos. Each is a failed row of the summary, exit 1.
    assert rc == 1, written
    _assert_shown_not_obeyed(written)
    assert "control characters in path" in written
