"""How long a command takes to start: a worker, and a command that does not serve.

Each figure runs the real entry point in a new interpreter, side by side with a baseline
that loads what it used to load first, and reports ours / baseline (medians):

- ``hevcq worker --help`` against the same after importing every command (``cli.main``)
  and the web server, which every worker process did before it loaded its own command
  alone;
- ``hevcq status`` (no farm configured: one line, exit 2) against the same after
  importing the web server (FastAPI, uvicorn), which every command did before only
  ``serve`` loaded it.
"""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.harness import Figure, figure, side_by_side

RUNS = 9
QUICK_RUNS = 3
ENTRY = (
    "import sys; sys.argv = ['hevcq', *sys.argv[1:]]; {first}from hevcq.cli import entry; entry()"
)


def _command(args: list[str], first: str = "") -> list[str]:
    return [sys.executable, "-c", ENTRY.format(first=first), *args]


def _run(cmd: list[str], code: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    done = subprocess.run(cmd, capture_output=True, env=env, check=False)
    if done.returncode != code:
        raise RuntimeError(f"{cmd[3:]} exited {done.returncode}: {done.stderr[-300:]!r}")


def _pair(name: str, args: list[str], code: int, before: str, runs: int) -> list[Figure]:
    ours, base, ratios = side_by_side(
        lambda: _run(_command(args), code), lambda: _run(_command(args, before), code), runs
    )
    return [
        figure(f"start-up, {name}", "s", ours),
        figure(f"start-up, {name}, loading as before", "s", base),
        figure(f"start-up, {name} / as before", "x", ratios),
    ]


def run(quick: bool = False) -> list[Figure]:
    """Both pairs, taken in turn (seconds)."""
    runs = QUICK_RUNS if quick else RUNS
    every_command = "import hevcq.cli.main; "
    web_stack = "import hevcq.web.server; "
    return [
        *_pair("hevcq worker --help", ["worker", "--help"], 0, every_command + web_stack, runs),
        *_pair("hevcq status (no farm)", ["status"], 2, web_stack, runs),
    ]
