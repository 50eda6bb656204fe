"""Entry point of the ``hevcq`` console script: the app with every command registered."""

from __future__ import annotations

import sys

from hevcq.cli import farm, library
from hevcq.cli.app import EXIT_CONFIG, app, console
from hevcq.errors import HevcqError

COMMAND_MODULES = (farm, library)  # each registers its commands on ``app`` when imported


def main() -> None:
    """Run the ``hevcq`` command; a hevcq error is one line and exit code 2, never a traceback."""
    try:
        app()
    except HevcqError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(EXIT_CONFIG)
