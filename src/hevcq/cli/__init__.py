"""The ``hevcq`` command line: ``app`` (shared), ``farm`` and ``library`` commands, ``main``."""

from __future__ import annotations

import sys

# ``cli.app.EXIT_INTERRUPTED``, which cannot be imported before the commands are.
EXIT_INTERRUPTED = 130


def entry() -> None:
    """The ``hevcq`` command. Importing the commands takes a moment; a Ctrl-C meanwhile
    ends the command quietly, like one at any other time, never with a traceback."""
    try:
        from hevcq.cli.main import main as run  # noqa: PLC0415 - the import is what is guarded
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    run()
