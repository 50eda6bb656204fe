"""After a hangup, what a command still writes goes nowhere instead of failing: standard
output and error that were the terminal (or a pipe) point at the null device, and one
redirected to a regular file keeps receiving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SNIPPET = """
import sys
from hevcq.cli.screen import terminal_gone
print("before", flush=True)
print("before", file=sys.stderr, flush=True)
terminal_gone()
print("after", flush=True)
print("after", file=sys.stderr, flush=True)
"""


def test_a_file_keeps_receiving_and_a_pipe_is_let_go(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with log.open("w") as fh:
        run = subprocess.run(
            [sys.executable, "-c", SNIPPET],
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 0
    assert log.read_text() == "before\nafter\n"
    assert run.stderr == "before\n"
