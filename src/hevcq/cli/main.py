"""Entry point of the ``hevcq`` console script: the app with every command registered."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

from rich.text import Text

from hevcq import logs
from hevcq.cli import farm, library
from hevcq.cli.app import (
    EXIT_CONFIG,
    EXIT_FARM_MISCONFIGURED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    app,
    notes,
)
from hevcq.errors import FarmConfigError, HevcqError
from hevcq.procs import bound_malloc
from hevcq.settings import state_dir

COMMAND_MODULES = (farm, library)  # each registers its commands on ``app`` when imported


def main() -> None:
    """Run the ``hevcq`` command; a hevcq error is one line and exit code 2, a bug one line and
    exit code 4 (the traceback in the state dir), never a traceback on the terminal."""
    bound_malloc()  # the ingest, the workers and the dashboard alike
    try:
        app()
    except KeyboardInterrupt:  # before a command's own handling starts
        sys.exit(EXIT_INTERRUPTED)
    except FarmConfigError as exc:  # credentials refused, resources missing
        notes.print(Text.assemble(("error: ", "red"), str(exc)))
        sys.exit(EXIT_FARM_MISCONFIGURED)
    except HevcqError as exc:
        notes.print(Text.assemble(("error: ", "red"), str(exc)))
        sys.exit(EXIT_CONFIG)
    except Exception as exc:  # a bug: one line here, the traceback in the state dir
        notes.print(
            Text.assemble(
                ("internal error: ", "red"), f"{type(exc).__name__}: {exc} ({_saved_traceback()})"
            )
        )
        sys.exit(EXIT_INTERNAL)


def _saved_traceback() -> str:
    """Where the traceback being handled was saved: the state dir's crash log, else a
    private file in the temporary folder (the state dir may be what failed)."""
    try:
        return f"traceback in {logs.record_crash(state_dir())}"
    except OSError:
        pass
    try:
        fd, name = tempfile.mkstemp(prefix="hevcq-crash-", suffix=".log")  # mode 0600
        with os.fdopen(fd, "w") as f:
            f.write(traceback.format_exc())
    except OSError as exc:
        return f"traceback not saved: {exc.strerror or exc}"
    return f"traceback in {name}"
