"""Text from outside (file names, object keys, failure reasons) made safe to show on a
terminal or in a log line.

A file name may hold any character but ``/`` and NUL. Written to a terminal as it is, a
name carrying ``ESC`` can set the window title, recolour or clear the screen, or (in some
terminals) write to the clipboard; a line break or carriage return forges a row of a table
or a log line; a bidi override shows ``invoice\\u202egpj.exe`` as ``invoiceexe.jpg``.
Whoever can name a file in a library (another user of a NAS, a synced phone) or a key in
a bucket could do that to the operator's terminal. So every such character is shown as
its escape (``\\x1b``, ``\\u202e``), which names it and does nothing.
"""

from __future__ import annotations

import unicodedata

# Unicode's bidirectional controls (UAX #9): they reorder what a name shows, so that
# "invoice\u202egpj.exe" reads as "invoiceexe.jpg".
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Controls (C0, DEL, C1) and the line and paragraph separators: a name is one line of text.
CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


# What a terminal cannot show as itself: the above, and the lone surrogates that stand for
# the bytes of a name that is not UTF-8 (``os.fsdecode``), which no UTF-8 stream can write.
_UNSHOWN_CATEGORIES = CONTROL_CATEGORIES | {"Cs"}


def unprintable(ch: str) -> bool:
    """Whether ``ch`` acts on a terminal or a line, or cannot be written, instead of
    showing as itself."""
    return ch in BIDI_CONTROLS or unicodedata.category(ch) in _UNSHOWN_CATEGORIES


def _escape(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control, line break and bidi control shown as its escape;
    characters in ``keep`` (a multi-line message's ``\\n``) are left as they are.

    Pure ASCII printable text, nearly everything, comes back as the same object.
    """
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(ch) if unprintable(ch) and ch not in keep else ch for ch in text)
