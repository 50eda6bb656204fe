"""The ``hevcq`` command line: ``app`` (shared), ``farm``, ``library`` and ``worker``
commands, ``main``."""

from __future__ import annotations

# The C module under ``signal``, which is built in and imports nothing: ``signal`` itself
# imports enum, functools and collections first (4 ms, many times that on a loaded
# machine), and a Ctrl-C that landed in those was a traceback before the guard was up.
import _signal  # type: ignore[import-not-found]  # no stub: ``signal``'s functions, unwrapped
import sys

# Nothing else is imported at run time before the Ctrl-C guard is in place: importing
# ``typing`` alone takes milliseconds, and a Ctrl-C that landed in it was a traceback.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import TypeVar

    T = TypeVar("T")

# ``cli.app.EXIT_INTERRUPTED``, which cannot be imported before the commands are.
EXIT_INTERRUPTED = 130


def entry() -> None:
    """The ``hevcq`` command. Importing the commands takes a moment; a Ctrl-C meanwhile
    ends the command quietly, like one at any other time, never with a traceback."""
    run = held_interrupt(_commands)
    run()


def _commands() -> Callable[[], None]:
    # The imports are what is guarded. A worker loads its own command alone: it starts
    # often, and the other commands' modules (the web server, the library) double its
    # start-up time.
    if sys.argv[1:2] == ["worker"]:
        from hevcq.cli import worker  # noqa: PLC0415

        return worker.main
    from hevcq.cli.main import main  # noqa: PLC0415

    return main


def held_interrupt(load: Callable[[], T]) -> T:
    """``load()`` with a Ctrl-C held until it returns; then exit 130 if one came.

    No KeyboardInterrupt may be raised inside third-party imports: one that lands while
    CPython builds an ImportError's message (botocore imports a name urllib3 2 no longer
    has, and expects the ImportError) comes out as ``TypeError: expected a message
    argument``, which neither botocore nor a guard for KeyboardInterrupt catches. So while
    ``load`` runs, the handler only notes the Ctrl-C. The imports take under a second.
    """
    pressed: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        pressed.append(signum)

    previous = _signal.signal(_signal.SIGINT, note)
    try:
        loaded = load()
    finally:
        _signal.signal(_signal.SIGINT, previous)
    if pressed:
        sys.exit(EXIT_INTERRUPTED)
    return loaded
