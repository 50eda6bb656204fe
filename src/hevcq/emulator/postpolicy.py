"""Browser POST uploads checked against their signed policy, as S3 checks them.

moto's server stores any POST object request whatever its policy says: an expired
policy, a form field the policy does not allow, a file outside ``content-length-range``
and a signature made with another secret all get 204. ``PostPolicyGate`` sits in front of
moto's WSGI app in the endpoint process and refuses those with S3's status and error
code (`evaluate` is the pure part). It reads the form as it arrives: fields into memory
(S3 caps them at 20 KB), the file only counted, the body copied to an unnamed file that
moto then reads instead of the socket.

moto then parses that body again, its own way: it reads fields by their exact name and
takes the first of a repeated one, stores fields that follow the file, keeps the last
file part, and takes an object from a form-encoded POST too. So the gate refuses what
the two could read differently, rather than what S3 refuses alone: a field named twice
(in any case), a field moto reads by name (``MOTO_NAMES``) spelled in another case, any
part after the file, more than one file part, and, posted to a bucket, a multipart type
without a boundary or a form-encoded body not signed for another service. The content
type is read as werkzeug reads it (the type in any case).

The S3 documentation's "POST Policy" and "Authenticating Requests in Browser-Based
Uploads Using POST (AWS Signature Version 4)" are the reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import IO, Any
from xml.sax.saxutils import escape

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.wsgi import ClosingIterator

from hevcq.limits import BODY_CHUNK

SIGV4 = "AWS4-HMAC-SHA256"
# S3: "the total size of the form fields preceding the file must not exceed 20 KB".
MAX_FIELDS_BYTES = 20 * 1024
CHUNK = BODY_CHUNK
# Fields every signed POST carries outside the policy's conditions.
UNCONDITIONED = frozenset({"policy", "x-amz-signature", "file", "awsaccesskeyid", "signature"})
# The request's environ says the gate checked it and the body now comes from a file.
CHECKED = "hevcq.post_policy_checked"
MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"
# Fields moto reads by their exact name: another spelling would be checked here as the
# field and then ignored, or fail, in moto, so only this one is taken.
MOTO_NAMES = frozenset({"key", "file", "acl", "success_action_status", "success_action_redirect"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Refusal:
    """An S3 error answer: HTTP status, error code, message and extra elements."""

    status: int
    code: str
    message: str
    extra: dict[str, str] = field(default_factory=dict)

    def xml(self) -> bytes:
        """The S3 error document."""
        items = {"Code": self.code, "Message": self.message, **self.extra}
        items["RequestId"] = secrets.token_hex(8).upper()
        body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in items.items())
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{body}</Error>'.encode()


@dataclass(frozen=True)
class Allowed:
    """A policy that passed: the file sizes it accepts."""

    min_bytes: int = 0
    max_bytes: int | None = None


def _denied(why: str) -> Refusal:
    return Refusal(403, "AccessDenied", f"Invalid according to Policy: {why}")


def signature(secret: str, credential_scope: list[str], policy_b64: str) -> str:
    """SigV4 over the base64 policy: the signing key from the credential's date, region
    and service, then HMAC-SHA256 of the policy as sent."""
    date, region, service, term = credential_scope
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, term):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()


def evaluate(
    fields: Mapping[str, str], bucket: str, now: datetime, secrets_by_key: Mapping[str, str]
) -> Refusal | Allowed:
    """Check a POST's fields (names lower-cased) against its signed policy."""
    refusal = _check_signature(fields, secrets_by_key)
    if refusal:
        return refusal
    try:
        policy = json.loads(base64.b64decode(fields["policy"], validate=True))
        expires = datetime.fromisoformat(policy["expiration"])
        conditions = list(policy["conditions"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if now >= expires:
        return _denied("Policy expired.")
    return _check_conditions(fields, bucket, conditions)


def _check_signature(
    fields: Mapping[str, str], secrets_by_key: Mapping[str, str]
) -> Refusal | None:
    if "policy" in fields and "signature" in fields and "awsaccesskeyid" in fields:
        return _check_sigv2(fields, secrets_by_key)
    if "policy" not in fields or "x-amz-signature" not in fields:
        return Refusal(403, "AccessDenied", "Access Denied")
    key, *scope = fields.get("x-amz-credential", "").split("/")
    if fields.get("x-amz-algorithm") != SIGV4 or len(scope) != 4 or scope[3] != "aws4_request":
        return Refusal(
            400,
            "InvalidArgument",
            f"x-amz-algorithm must be {SIGV4} and x-amz-credential key/date/region/s3/aws4_request",
        )
    secret = secrets_by_key.get(key)
    if secret is None:
        return _unknown_key()
    if not hmac.compare_digest(
        signature(secret, scope, fields["policy"]), fields["x-amz-signature"]
    ):
        return _mismatch()
    return None


def _check_sigv2(fields: Mapping[str, str], secrets_by_key: Mapping[str, str]) -> Refusal | None:
    """The older form: base64 HMAC-SHA1 of the policy (the signature fields are exempt)."""
    secret = secrets_by_key.get(fields["awsaccesskeyid"])
    if secret is None:
        return _unknown_key()
    mac = hmac.new(secret.encode(), fields["policy"].encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(mac).decode(), fields["signature"]):
        return _mismatch()
    return None


def _unknown_key() -> Refusal:
    return Refusal(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
    )


def _mismatch() -> Refusal:
    return Refusal(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


def _check_conditions(
    fields: Mapping[str, str], bucket: str, conditions: list[Any]
) -> Refusal | Allowed:
    allowed = Allowed()
    covered: set[str] = set()
    shown: Any
    for cond in conditions:
        if isinstance(cond, dict) and len(cond) == 1:
            [(name, want)] = cond.items()
            op, name, shown = "eq", str(name), dict(cond)
        elif isinstance(cond, list) and len(cond) == 3:  # [op, a, b]
            op, name, want = str(cond[0]).lower(), str(cond[1]), cond[2]
            shown = cond
        else:
            return Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: condition {cond}")
        if op == "content-length-range":
            try:
                allowed = Allowed(int(name), int(want))
            except (ValueError, TypeError):
                return Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: condition {cond}")
            continue
        name = name.removeprefix("$").lower()
        covered.add(name)
        have = bucket if name == "bucket" else fields.get(name)
        if op not in ("eq", "starts-with"):
            return Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: condition {cond}")
        ok = have is not None and (have == want if op == "eq" else have.startswith(str(want)))
        if not ok:
            return _denied(f"Policy Condition failed: {json.dumps(shown)}")
    extra = sorted(
        n for n in fields if n not in covered | UNCONDITIONED and not n.startswith("x-ignore-")
    )
    if extra:
        return _denied(f"Extra input fields: {', '.join(extra)}")
    return allowed


def size_refusal(size: int, allowed: Allowed) -> Refusal | None:
    """EntityTooLarge or EntityTooSmall when the file is outside ``content-length-range``."""
    if allowed.max_bytes is not None and size > allowed.max_bytes:
        return Refusal(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            {"ProposedSize": str(size), "MaxSizeAllowed": str(allowed.max_bytes)},
        )
    if size < allowed.min_bytes:
        return Refusal(
            400,
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            {"ProposedSize": str(size), "MinSizeAllowed": str(allowed.min_bytes)},
        )
    return None


class PostPolicyGate:
    """WSGI middleware: a POST object request reaches ``app`` only when its policy holds.

    Other requests pass untouched. A checked request's body is handed on from an unnamed
    file (``CHECKED`` set in its environ), so the socket is read once.
    """

    def __init__(
        self,
        app: WsgiApp,
        secrets_by_key: Mapping[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.secrets_by_key = dict(secrets_by_key)
        self.clock = clock

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Check a POST object request, answer its refusal or pass it on."""
        boundary = _form_boundary(environ)
        if isinstance(boundary, Refusal):
            return _answer(boundary, start_response)
        if boundary is None or not _has_length(environ):
            return self.app(environ, start_response)
        body = tempfile.TemporaryFile()  # noqa: SIM115 - closed after the response or now
        bucket = _bucket(environ)
        now = datetime.fromtimestamp(self.clock(), UTC)
        reader = _FormReader(body, lambda f: evaluate(f, bucket, now, self.secrets_by_key))
        try:
            verdict = reader.read(_chunks(environ), boundary)
        except ValueError:
            verdict = _malformed()
        if isinstance(verdict, Refusal):
            body.close()
            return _answer(verdict, start_response)
        body.seek(0)
        environ.update({"wsgi.input": body, "CONTENT_LENGTH": str(verdict), CHECKED: True})
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        return ClosingIterator(self.app(environ, start_response), [body.close])


class _FormReader:
    """One pass over a multipart body: fields kept, the file counted, the body copied."""

    def __init__(
        self, sink: IO[bytes], check: Callable[[dict[str, str]], Refusal | Allowed]
    ) -> None:
        self.sink, self.check = sink, check
        self.fields: dict[str, str] = {}
        self.allowed: Allowed | None = None
        self.refusal: Refusal | None = None
        self.size = 0  # of the file
        self.copied = 0  # of the body
        self._part: str | None = None
        self._buf: list[bytes] = []
        self._in_file = self._file_done = False
        self._field_bytes = 0
        self._names: set[str] = set()  # lower-cased: S3 compares field names so

    def read(self, chunks: Iterator[bytes], boundary: bytes) -> Refusal | int:
        """The refusal, or the size of the body now in the sink."""
        decoder = MultipartDecoder(boundary)
        for block in itertools.chain(chunks, [None]):
            if block is not None and self._writing():
                self.sink.write(block)
                self.copied += len(block)
            if self.refusal is not None:
                continue  # refused: drain the socket without parsing the rest
            decoder.receive_data(block)
            event = decoder.next_event()
            while not isinstance(event, Epilogue | NeedData):
                self._on(event)
                event = decoder.next_event()
        if self.refusal is not None:
            return self.refusal
        if self.allowed is None or not self._file_done:
            return _not_one_file()
        return size_refusal(self.size, self.allowed) or self.copied

    def _writing(self) -> bool:
        return self.refusal is None and not self._too_large()

    def _too_large(self) -> bool:
        limit = self.allowed.max_bytes if self.allowed else None
        return limit is not None and self.size > limit

    def _on(self, event: Any) -> None:
        if self.refusal is not None:
            return  # the first refusal stands; the rest of the block is not parsed
        if isinstance(event, Field | File):
            self._on_part(event)
        elif isinstance(event, Data):
            self._on_data(event)

    def _on_part(self, event: Field | File) -> None:
        refusal = self._part_refusal(event)
        if refusal is not None:
            self.refusal = refusal
            return
        self._names.add(event.name.lower())
        if isinstance(event, Field):
            self._part, self._buf = event.name.lower(), []
            return
        verdict = self.check(self.fields)
        if isinstance(verdict, Refusal):
            self.refusal = verdict
        else:
            self.allowed = verdict
        self._in_file = True

    def _part_refusal(self, event: Field | File) -> Refusal | None:
        """What refuses a part: moto would read the form otherwise than the gate did."""
        name = event.name
        if isinstance(event, File) and (name != "file" or self._in_file or self._file_done):
            return _not_one_file()
        if self._file_done:  # moto would store what follows the file; S3 ignores it
            return _malformed(" Nothing may follow the file.")
        if name.lower() in self._names:
            return Refusal(400, "InvalidArgument", f"The form field {name} appears twice.")
        if name.lower() in MOTO_NAMES and name != name.lower():
            return Refusal(400, "InvalidArgument", f"The form field {name} must be lower case.")
        return None

    def _on_data(self, event: Data) -> None:
        if self._in_file:
            self.size += len(event.data)
            if not event.more_data:
                self._in_file, self._file_done = False, True
            return
        if self._file_done or self._part is None:
            return
        self._field_bytes += len(event.data)
        if self._field_bytes > MAX_FIELDS_BYTES and self.refusal is None:
            self.refusal = Refusal(
                400,
                "MaxPostPreDataLengthExceeded",
                "Your POST request fields preceding the upload file were too large.",
            )
            return
        self._buf.append(event.data)
        if not event.more_data:
            self.fields.setdefault(self._part, b"".join(self._buf).decode("utf-8", "replace"))


def _form_boundary(environ: Mapping[str, Any]) -> bytes | Refusal | None:
    """A form POST's boundary, a refusal of a form the gate cannot check, or None (not a
    form: passed on). The content type is read as moto's werkzeug reads it."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    mimetype, options = parse_options_header(environ.get("CONTENT_TYPE", ""))
    mimetype = mimetype.lower()
    boundary = options.get("boundary")
    if mimetype == MULTIPART and boundary:
        return boundary.encode()
    # Only a POST to the bucket makes an object of its form; a POST to a key (a multipart
    # upload's start, say) carries the object's own content type, whatever it is.
    if not _to_bucket(environ) or mimetype not in (MULTIPART, URLENCODED):
        return None
    if mimetype == MULTIPART:
        return _malformed()
    if _signed_for_another_service(environ):
        return None
    # moto's S3 would take the key and the bytes from such a form, unchecked.
    return Refusal(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        {"Condition": "Bucket POST must be of the enclosure-type multipart/form-data"},
    )


def _to_bucket(environ: Mapping[str, Any]) -> bool:
    """Path-style ``/bucket``, or ``/`` (a virtual-hosted bucket, or another service)."""
    return "/" not in str(environ.get("PATH_INFO", "")).strip("/")


def _signed_for_another_service(environ: Mapping[str, Any]) -> bool:
    """A SigV4 request for a service other than S3 (SNS, STS: their forms are their API)."""
    scope = str(environ.get("HTTP_AUTHORIZATION", "")).split("Credential=", 1)[-1]
    parts = scope.split(",", 1)[0].strip().split("/")
    return len(parts) == 5 and parts[4] == "aws4_request" and parts[3].lower() != "s3"


def _not_one_file() -> Refusal:
    return Refusal(
        400,
        "IncorrectNumberOfFilesInPostRequest",
        "POST requires exactly one file upload per request.",
    )


def _malformed(why: str = "") -> Refusal:
    return Refusal(
        400,
        "MalformedPOSTRequest",
        f"The body of your POST request is not well-formed multipart/form-data.{why}",
    )


def _has_length(environ: Mapping[str, Any]) -> bool:
    # Without either moto answers 411 itself.
    return bool(environ.get("CONTENT_LENGTH")) or bool(environ.get("wsgi.input_terminated"))


def _chunks(environ: Mapping[str, Any]) -> Iterator[bytes]:
    stream: IO[bytes] = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    left = int(length) if length else None
    while left is None or left > 0:
        block = stream.read(CHUNK if left is None else min(CHUNK, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        yield block


def _bucket(environ: Mapping[str, Any]) -> str:
    """Path-style ``/bucket``, else the first label of a virtual-hosted name."""
    path = str(environ.get("PATH_INFO", "")).strip("/")
    if path:
        return path.split("/", 1)[0]
    return str(environ.get("HTTP_HOST", "")).split(".", 1)[0]


def _answer(refusal: Refusal, start_response: Callable[..., Any]) -> list[bytes]:
    body = refusal.xml()
    status = f"{refusal.status} {HTTPStatus(refusal.status).phrase}"
    start_response(
        status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    )
    return [body]
