"""Playing a committed output: signed play links, and the ladder served through them.

A ladder in a private bucket cannot be played from one presigned URL: its master names
playlists and segments by relative URIs, which a presigned master's signature does not
cover. So the API hands out a *play grant*: an HMAC-signed capability for exactly one
committed output (source key, pool, output ETag) until a time. A player fetches
``/play/<grant>/master.m3u8`` and then, by the playlists' own relative URIs, every
playlist and segment under the same grant, with no header to set (a native ``<video>``
plays it as well as hls.js).

- **Whole or nothing.** A grant names the output ETag the ledger committed. Every request
  checks that the ledger and the master still name it, and reads the parts of the attempt
  that master names: a player never gets parts of two attempts. Once a newer output is
  committed, the old grant answers 410 and the app asks the API again.
- **Only inside the ladder.** A path must be a plain part path (``hevcq.bundle``) of the
  attempt the master names (its manifest excepted); nothing else in the bucket is
  reachable through a grant.
- **Segments.** On an embedded farm the server streams the bytes itself (the local
  endpoint answers no web page). On a cloud farm it redirects to a presigned GET of the
  part, so the bytes come from S3 (the bucket's CORS rule lets players read ``DONE/``).
- **A public base URL** (``HEVCQ_PUBLIC_BASE_URL``, a CDN in front of the bucket) makes
  grants unnecessary: the stable master key is the play URL.

The key signing grants is ``HEVCQ_PLAY_KEY``; without one, each server process makes its
own at start, so grants last until it restarts (set the key where several API processes,
or Lambda instances, serve one farm).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal

from hevcq.bundle import MANIFEST, MASTER, POSTER, attempt_prefix, check_part_path, check_token
from hevcq.errors import PermanentError
from hevcq.formats import content_type
from hevcq.ledger import LedgerItem, LedgerReader, State
from hevcq.metadata import META_PARTS
from hevcq.web.uploads import RecordStore

PLAY_TTL_S = 6 * 3600  # long enough for a film and its pauses
GRANT_BYTES_MAX = 2048
SegmentMode = Literal["proxy", "presigned"]


class PlayRefused(Exception):
    """A play request that gets no bytes: ``status`` and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PlayPolicy:
    """How outputs are played: the grant key, segments through this server or S3, and a
    public base URL that serves ``DONE/`` directly."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    segments: SegmentMode = "presigned"
    public_base_url: str | None = None
    ttl_s: int = PLAY_TTL_S


@dataclass(frozen=True)
class Grant:
    """What a play link allows: one committed output, until ``expires`` (Unix time)."""

    source_key: str
    pool: str
    etag: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def sign(policy: PlayPolicy, item: LedgerItem, now: float | None = None) -> str:
    """A grant for the output ``item`` committed (``PermanentError`` when it has none)."""
    if item.state is not State.DONE or not item.output_etag:
        raise PermanentError("no committed output to play")
    expires = int((time.time() if now is None else now) + policy.ttl_s)
    body = _b64(json.dumps([item.key, item.pool, item.output_etag, expires]).encode())
    return f"{body}.{_mac(policy.key, body)}"


def verify(policy: PlayPolicy, grant: str, now: float | None = None) -> Grant:
    """The grant a link carries; ``PlayRefused`` (403) for a forged, altered or expired one."""
    body, _, mac = grant.partition(".")
    if len(grant) > GRANT_BYTES_MAX or not mac:
        raise PlayRefused(403, "not a play link")
    if not hmac.compare_digest(mac, _mac(policy.key, body)):
        raise PlayRefused(403, "not a play link")
    try:
        key, pool, etag, expires = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise PlayRefused(403, "not a play link") from exc
    if int(expires) < (time.time() if now is None else now):
        raise PlayRefused(403, "play link expired")
    return Grant(str(key), str(pool), str(etag), int(expires))


@dataclass(frozen=True)
class Served:
    """What a play request gets: bytes with their type, or a redirect."""

    body: bytes = b""
    content_type: str = "application/octet-stream"
    redirect: str | None = None
    status: int = 200
    content_range: str | None = None


def serve(
    store: RecordStore,
    ledger: LedgerReader,
    policy: PlayPolicy,
    grant: Grant,
    path: str,
    *,
    byte_range: str | None = None,
) -> Served:
    """One object of the ladder a grant names, as a player asks for it by ``path``
    (``master.m3u8``, ``v0/index.m3u8``, ``v0/seg_00001.m4s``, ``poster.jpg``)."""
    try:
        check_part_path(path)
    except PermanentError as exc:
        raise PlayRefused(404, "no such part") from exc
    if path == MANIFEST:
        raise PlayRefused(404, "no such part")
    item = ledger.get(grant.source_key, grant.pool)
    if item is None or item.state is not State.DONE or item.output_etag != grant.etag:
        raise PlayRefused(410, "this output was replaced; ask for a new play link")
    key = item.output_key or ""
    master = store.head(key)
    if master is None or master.etag != grant.etag:
        raise PlayRefused(410, "this output was replaced; ask for a new play link")
    try:
        prefix = attempt_prefix(key, check_token(master.metadata.get(META_PARTS, "")))
    except (PermanentError, ValueError) as exc:
        raise PlayRefused(404, "not a ladder") from exc
    part = prefix + path
    kind = content_type(path)
    if path.endswith(".m3u8") or path == POSTER or policy.segments == "proxy":
        if byte_range:
            return _ranged(store, part, byte_range, kind)
        body = store.get_bytes(part)
        if body is None:
            raise PlayRefused(410 if path == MASTER else 404, "no such part")
        return Served(body=body, content_type=kind)
    return Served(redirect=store.presign_get(part, policy.ttl_s), status=307)


def _ranged(store: RecordStore, key: str, header: str, kind: str) -> Served:
    """One ``bytes=a-b`` range of a part (I-frame playlists address segments by range)."""
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    if unit.strip() != "bytes" or not first.isdigit() or (last and not last.isdigit()):
        raise PlayRefused(416, "one bytes=a-b range only")
    info = store.head(key)
    if info is None:
        raise PlayRefused(404, "no such part")
    start = int(first)
    end = min(int(last) if last else info.size - 1, info.size - 1)
    if start > end:
        raise PlayRefused(416, "range outside the part")
    body = store.read_range(key, start, end - start + 1, info.etag)
    return Served(
        body=body, content_type=kind, status=206, content_range=f"bytes {start}-{end}/{info.size}"
    )
