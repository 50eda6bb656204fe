"""The console every command writes with: it never passes a control character that came
from outside (a file name, an object key, a failure reason) to the terminal.

``hevcq.printable`` says why. The console is the one place everything shown passes
through, so no caller has to remember it: a plain ``Text`` (a name in a table cell) is
escaped before it is laid out; anything else is escaped segment by segment as it is
written. A table measures its cells before the console sees them, so table builders put
names in with ``shown``, which escapes first and keeps the columns as wide as what they
show. Rich's own styles and cursor moves are control segments, which pass as they are.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable, Iterable

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from hevcq.printable import printable

# Line breaks and tabs are Rich's to lay out (a break inside a table cell stays inside its
# borders); every other control is escaped.
_KEEP = "\n\t"


def _shown(text: str) -> str:
    return printable(text, keep=_KEEP)


def shown(text: str, style: str = "") -> Text:
    """``text`` (a name, a key, a reason) as a table cell: escaped before the table
    measures it, so its column is as wide as what it shows."""
    return Text(_shown(text), style=style)


class SafeConsole(Console):
    """A ``rich`` console that shows control characters in what it prints as escapes."""

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        if isinstance(renderable, Text) and not renderable.spans:
            plain = renderable.plain
            escaped = _shown(plain)
            if escaped is not plain:
                renderable = renderable.copy()  # its style, justify, overflow and wrapping
                renderable.plain = escaped  # no spans to move: the text is one run
        for segment in super().render(renderable, options):
            if segment.control or not segment.text:
                yield segment
            else:
                shown = _shown(segment.text)
                yield segment if shown is segment.text else Segment(shown, segment.style)


def terminal_gone() -> None:
    """The terminal hung up (SIGHUP: an ssh session dropped, its window closed): what the
    command still writes goes nowhere instead of failing with EIO half-way through its
    stop. Standard output and error that are a terminal, or a pipe whose reader went with
    it, are pointed at the null device; a regular file they were redirected to keeps
    receiving everything."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            try:
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            except OSError:
                continue  # closed already: nothing to point elsewhere
            if not regular:
                os.dup2(null, fd)
    finally:
        os.close(null)


def on_hangup(then: Callable[[], object]) -> None:
    """On SIGHUP, let the dead terminal go (``terminal_gone``), then call ``then``: the
    command's own way to stop, as on SIGTERM."""

    def hung_up(*_: object) -> None:
        terminal_gone()
        then()

    signal.signal(signal.SIGHUP, hung_up)
