"""Bitmap subtitles for test sources: ffmpeg encodes DVD and DVB subtitles only from
bitmaps and has no PGS encoder, so a PGS stream (a Blu-ray's) is written here by hand.

A PGS (``.sup``) file is a run of segments, each ``PG``, a 90 kHz PTS and DTS, a type
and a length: a display set is a presentation composition (PCS), a window (WDS), a
palette (PDS), an object (ODS, run-length coded) and an end segment; a set whose PCS
lists no object clears the screen.
"""

from __future__ import annotations

import struct
from pathlib import Path

_PCS, _WDS, _PDS, _ODS, _END = 0x16, 0x17, 0x14, 0x15, 0x80
BOX_W, BOX_H = 200, 40  # the caption: a white box with a dark inside


def _segment(pts: int, kind: int, body: bytes) -> bytes:
    return b"PG" + struct.pack(">IIBH", pts, 0, kind, len(body)) + body


def _run(colour: int, n: int) -> bytes:
    """``n`` pixels of palette entry ``colour`` (1 or more), run-length coded."""
    return (
        bytes([0, 0xC0 | (n >> 8), n & 0xFF, colour]) if n >= 64 else bytes([0, 0x80 | n, colour])
    )


def _box() -> bytes:
    rows = []
    for y in range(BOX_H):
        edge = y < 2 or y >= BOX_H - 2
        line = _run(1, BOX_W) if edge else _run(1, 2) + _run(2, BOX_W - 4) + _run(1, 2)
        rows.append(line + b"\x00\x00")  # end of line
    return b"".join(rows)


def _display_set(pts: int, width: int, height: int, number: int, *, show: bool) -> bytes:
    x, y = (width - BOX_W) // 2, height - BOX_H - 20
    objects = struct.pack(">HBBHH", 0, 0, 0, x, y) if show else b""
    pcs = struct.pack(
        ">HHBHBBBB", width, height, 0x10, number, 0x80 if show else 0, 0, 0, int(show)
    )
    out = _segment(pts, _PCS, pcs + objects)
    out += _segment(pts, _WDS, struct.pack(">BBHHHH", 1, 0, x, y, BOX_W, BOX_H))
    if show:
        palette = bytes([0, 0, 1, 235, 128, 128, 255, 2, 16, 128, 128, 200])
        out += _segment(pts, _PDS, palette)
        data = _box()
        head = struct.pack(">HBB", 0, 0, 0xC0) + (len(data) + 4).to_bytes(3, "big")
        out += _segment(pts, _ODS, head + struct.pack(">HH", BOX_W, BOX_H) + data)
    return out + _segment(pts, _END, b"")


def write_pgs(path: Path, width: int, height: int, seconds: float) -> Path:
    """A caption shown for a second every two seconds of ``seconds``, on a picture of
    ``width`` x ``height``."""
    out, number, t = b"", 0, 0.5
    while t + 1 < seconds:
        out += _display_set(round(t * 90_000), width, height, number, show=True)
        out += _display_set(round((t + 1) * 90_000), width, height, number + 1, show=False)
        number, t = number + 2, t + 2
    path.write_bytes(out)
    return path
