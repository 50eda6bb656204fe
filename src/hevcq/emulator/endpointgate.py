"""The embedded endpoint answers only the farm: what stands between a socket and moto.

moto's server takes any credentials, sends CORS headers that let any web page read its
answers, and serves ``/moto-api`` (reset, dashboard). ``EndpointGate`` sits in front of
it in the endpoint process: a request from a browser page (any ``Origin`` header) and
``/moto-api`` are refused; every other request must carry a SigV4 signature made with
the farm's key pair (``hevcq.emulator.sigv4``), or be a browser POST upload whose signed
policy ``PostPolicyGate`` has checked; no ``Access-Control-*`` header ever leaves.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from hevcq.emulator import sigv4
from hevcq.emulator.postpolicy import CHECKED, PostPolicyGate, Refusal, WsgiApp
from hevcq.limits import BODY_CHUNK, MiB

# The largest body hashed to check a signature that does not declare its payload's hash
# (SQS, SNS and DynamoDB requests; DynamoDB's own limit is 16 MB per request).
MAX_HASHED_BODY = 16 * MiB
MOTO_API = "/moto-api"


class EndpointGate:
    """WSGI middleware: only the farm's own signed requests reach ``app``."""

    def __init__(
        self,
        app: WsgiApp,
        secrets_by_key: Mapping[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.secrets_by_key = dict(secrets_by_key)
        self.clock = clock
        # An unsigned request passes only as a browser POST upload with a valid policy.
        self.forms = PostPolicyGate(self._policy_checked, self.secrets_by_key, clock)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Refuse, or pass the request on with no CORS header in its answer."""
        start_response = _without_cors(start_response)
        refusal = _refused_outright(environ)
        if refusal is None and not sigv4.is_signed(environ):
            if _is_form_post(environ):
                return self.forms(environ, start_response)
            refusal = MISSING
        if refusal is None:
            refusal = self._check(environ)
        if refusal is not None:
            return answer(environ, refusal, start_response)
        return self.app(environ, start_response)

    def _check(self, environ: dict[str, Any]) -> Refusal | None:
        signed = sigv4.parse(environ)
        if isinstance(signed, Refusal):
            return signed
        secret = self.secrets_by_key.get(signed.access_key_id)
        if secret is None:
            return sigv4.unknown_key()
        refusal = sigv4.check_time(signed, datetime.fromtimestamp(self.clock(), UTC))
        if refusal is not None:
            return refusal
        body_sha256 = None
        if sigv4.needs_body_hash(environ, signed):
            body_sha256 = _hash_body(environ)
            if body_sha256 is None:
                return Refusal(
                    413, "RequestEntityTooLarge", "The request body is too large to check."
                )
        if not sigv4.verify(environ, signed, secret, body_sha256):
            return sigv4.mismatch()
        return None

    def _policy_checked(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get(CHECKED):
            return self.app(environ, start_response)
        return answer(environ, MISSING, start_response)


# A header signature's credential scope names the service: SNS and STS speak the query
# protocol, whose errors botocore reads from an <ErrorResponse>.
_QUERY_PROTOCOL = re.compile(r"Credential=[^/,]+/[^/,]+/[^/,]+/(sns|sts)/")

MISSING = Refusal(403, "AccessDenied", "Requests must be signed with the farm's key pair.")


def _is_form_post(environ: Mapping[str, Any]) -> bool:
    """A multipart POST, the only unsigned request a browser upload makes."""
    content_type = str(environ.get("CONTENT_TYPE", "")).lstrip().lower()
    return environ.get("REQUEST_METHOD") == "POST" and content_type.startswith("multipart/")


def _refused_outright(environ: Mapping[str, Any]) -> Refusal | None:
    if "HTTP_ORIGIN" in environ:
        # No page in a browser has any business here: the farm's own clients send no Origin.
        return Refusal(403, "AccessDenied", "Cross-origin requests are refused.")
    path = "/" + str(environ.get("PATH_INFO", "")).lstrip("/")  # "//moto-api" is moto's too
    if path == MOTO_API or path.startswith(f"{MOTO_API}/"):
        return Refusal(403, "AccessDenied", "Not served here.")
    return None


def _without_cors(start_response: Callable[..., Any]) -> Callable[..., Any]:
    def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
        return start_response(status, kept, *exc_info)

    return start


def _hash_body(environ: dict[str, Any]) -> str | None:
    """The body's SHA-256, the body then handed on from memory; None when too large (or
    its length is not a number)."""
    length = str(environ.get("CONTENT_LENGTH") or "")
    if length and not length.isdigit():
        return None
    left = int(length) if length else (MAX_HASHED_BODY + 1 if _terminated(environ) else 0)
    if length and left > MAX_HASHED_BODY:
        return None
    stream = environ["wsgi.input"]
    body = bytearray()
    while left > 0:
        block = stream.read(min(BODY_CHUNK, left))
        if not block:
            break
        body += block
        left -= len(block)
    if len(body) > MAX_HASHED_BODY:
        return None
    environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return hashlib.sha256(body).hexdigest()


def _terminated(environ: Mapping[str, Any]) -> bool:
    return bool(environ.get("wsgi.input_terminated"))


def answer(
    environ: Mapping[str, Any], refusal: Refusal, start_response: Callable[..., Any]
) -> list[bytes]:
    """The refusal as the client's protocol reads errors: JSON for the JSON protocols
    (SQS, DynamoDB), the query protocol's XML for SNS and STS, S3's XML otherwise."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": refusal.code, "message": refusal.message}).encode()
        kind = "application/x-amz-json-1.0"
    elif _QUERY_PROTOCOL.search(str(environ.get("HTTP_AUTHORIZATION", ""))):
        body, kind = _error_response(refusal), "text/xml"
    else:
        body, kind = refusal.xml(), "application/xml"
    status = f"{refusal.status} {HTTPStatus(refusal.status).phrase}"
    headers = [("Content-Type", kind), ("Content-Length", str(len(body)))]
    if refusal.status == HTTPStatus.FORBIDDEN and environ.get("HTTP_X_AMZ_TARGET"):
        headers.append(("x-amzn-ErrorType", refusal.code))
    start_response(status, headers)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _error_response(refusal: Refusal) -> bytes:
    error = (
        f"<Type>Sender</Type><Code>{escape(refusal.code)}</Code>"
        f"<Message>{escape(refusal.message)}</Message>"
    )
    return f"<ErrorResponse><Error>{error}</Error><RequestId/></ErrorResponse>".encode()
