"""Entry point of the ``hevcq`` console script: the app with every command registered."""

from __future__ import annotations

from hevcq.cli import farm, library, worker
from hevcq.cli.app import main

COMMAND_MODULES = (farm, library, worker)  # each registers its commands on ``app`` when imported

__all__ = ["COMMAND_MODULES", "main"]
