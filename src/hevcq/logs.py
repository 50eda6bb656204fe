"""structlog set-up, done once at an entry point, and the crash log."""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import structlog

from hevcq.printable import printable
from hevcq.private import open_private

CRASH_LOG = "errors.log"


def configure(fmt: str = "auto", level: str = "info", file: TextIO | None = None) -> None:
    """JSON lines when not on a terminal (containers), readable console output otherwise;
    ``file`` (a run's log in the state dir) takes the lines instead of stderr."""
    out = file or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderers: list[structlog.types.Processor] = (
        [structlog.processors.JSONRenderer()]
        if use_json
        else [printable_values, structlog.dev.ConsoleRenderer(colors=out.isatty())]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def printable_values(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Text values with their control characters escaped (``hevcq.printable``), so a
    file name or key in a console log line can neither drive the terminal nor forge a
    line; a traceback keeps its line breaks. (JSON lines escape them already.)"""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = printable(value, keep="\n" if key == "exception" else "")
    return event


def record_crash(directory: Path) -> Path:
    """Append the exception being handled, with its traceback, to the crash log."""
    path = directory / CRASH_LOG
    with open_private(path, "a") as f:
        f.write(f"--- {datetime.now(UTC).isoformat()} {' '.join(sys.argv)}\n")
        f.write(traceback.format_exc())
    return path
