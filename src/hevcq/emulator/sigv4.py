"""Signature Version 4 checked on a received request, as AWS checks it.

The embedded endpoint answers only requests signed with its key pair: in the
``Authorization`` header (every boto3 call) or in the query string (presigned URLs). The
canonical request is rebuilt from the request as it arrived: the path and query exactly as
the client sent them (werkzeug's ``REQUEST_URI``), only the headers the signature names.
The reference is the AWS General Reference, "Create a signed AWS API request", and
"Authenticating Requests: Using Query Parameters (AWS Signature Version 4)" for S3.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from botocore.utils import normalize_url_path

from hevcq.emulator.postpolicy import SIGV4, Refusal, signature

# AWS refuses a request signed more than 15 minutes before or after its own clock.
MAX_CLOCK_SKEW = timedelta(minutes=15)
# S3: a presigned URL lives at most seven days (X-Amz-Expires).
MAX_PRESIGNED_EXPIRES_S = 7 * 24 * 3600
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Query parameters that make a request a presigned one (SigV2's ``Signature`` is refused).
_QUERY_SIGNATURE_KEYS = frozenset({"x-amz-signature", "signature", "x-amz-credential"})


@dataclass(frozen=True)
class Signed:
    """What a request says about its signature, parsed but not yet checked."""

    access_key_id: str
    scope: list[str]  # date, region, service, "aws4_request"
    amz_date: str
    signed_headers: list[str]
    signature: str
    presigned_expires_s: int | None = None  # set for query-string signatures

    @property
    def service(self) -> str:
        """The service the request was signed for."""
        return self.scope[2]


def is_signed(environ: Mapping[str, Any]) -> bool:
    """Whether the request carries a signature at all, in a header or in its query."""
    if environ.get("HTTP_AUTHORIZATION"):
        return True
    query = str(environ.get("QUERY_STRING", ""))
    return any(_key(pair).lower() in _QUERY_SIGNATURE_KEYS for pair in query.split("&"))


def parse(environ: Mapping[str, Any]) -> Signed | Refusal:
    """The request's SigV4 fields, from its Authorization header or its query string."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if header:
        return _parse_header(header, str(environ.get("HTTP_X_AMZ_DATE", "")))
    return _parse_query(_query_values(_raw_query(environ)))


def _parse_header(header: str, amz_date: str) -> Signed | Refusal:
    algorithm, _, rest = header.partition(" ")
    if algorithm != SIGV4:
        return _denied("Only AWS4-HMAC-SHA256 signatures are accepted.")
    parts = dict(p.strip().partition("=")[::2] for p in rest.split(","))
    credential, headers, sig = (
        parts.get(k, "") for k in ("Credential", "SignedHeaders", "Signature")
    )
    return _signed(credential, headers, sig, amz_date, None)


def _parse_query(values: Mapping[str, str]) -> Signed | Refusal:
    if values.get("X-Amz-Algorithm") != SIGV4:
        return _denied("Only AWS4-HMAC-SHA256 query signatures are accepted.")
    try:
        expires = int(values.get("X-Amz-Expires", ""))
    except ValueError:
        return _query_error("X-Amz-Expires must be a number of seconds.")
    if not 0 < expires <= MAX_PRESIGNED_EXPIRES_S:
        return _query_error("X-Amz-Expires must be between 1 second and 7 days.")
    return _signed(
        values.get("X-Amz-Credential", ""),
        values.get("X-Amz-SignedHeaders", ""),
        values.get("X-Amz-Signature", ""),
        values.get("X-Amz-Date", ""),
        expires,
    )


def _signed(
    credential: str, headers: str, sig: str, amz_date: str, expires: int | None
) -> Signed | Refusal:
    key, *scope = credential.split("/")
    if len(scope) != 4 or scope[3] != "aws4_request" or not headers or not sig or not key:
        return _denied("The request's Credential, SignedHeaders or Signature is malformed.")
    if not amz_date.startswith(scope[0]):
        return _denied("The credential's date is not the request's X-Amz-Date.")
    return Signed(key, scope, amz_date, headers.lower().split(";"), sig, expires)


def check_time(signed: Signed, now: datetime) -> Refusal | None:
    """The signing time within the clock skew, and a presigned URL not yet expired."""
    try:
        at = datetime.strptime(signed.amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return _denied("X-Amz-Date is not a date such as 20260101T000000Z.")
    if signed.presigned_expires_s is None:
        if abs(now - at) > MAX_CLOCK_SKEW:
            return Refusal(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )
        return None
    if at - now > MAX_CLOCK_SKEW:
        return _denied("Request is not valid yet.")
    if now > at + timedelta(seconds=signed.presigned_expires_s):
        return _denied("Request has expired.")
    return None


def verify(
    environ: Mapping[str, Any], signed: Signed, secret: str, body_sha256: str | None
) -> bool:
    """Whether ``signed.signature`` is the request's signature with ``secret``.

    ``body_sha256`` is the body's hash when the request does not declare one
    (``x-amz-content-sha256``, which the signature covers, is taken as declared).
    """
    canonical = canonical_request(environ, signed, body_sha256)
    to_sign = "\n".join(
        [
            SIGV4,
            signed.amz_date,
            "/".join(signed.scope),
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    return hmac.compare_digest(signature(secret, signed.scope, to_sign), signed.signature)


def needs_body_hash(environ: Mapping[str, Any], signed: Signed) -> bool:
    """Whether checking the signature needs the body's SHA-256 (no declared payload hash)."""
    if environ.get("HTTP_X_AMZ_CONTENT_SHA256"):
        return False
    return not (signed.presigned_expires_s is not None and signed.service == "s3")


def canonical_request(environ: Mapping[str, Any], signed: Signed, body_sha256: str | None) -> str:
    """Method, path, query, the signed headers and the payload hash, one per line."""
    raw = urlsplit(str(environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")))
    path = raw.path or "/"
    if signed.service != "s3":  # S3 signs the path as sent, other services encode it again
        path = quote(normalize_url_path(path), safe="/~")
    headers = "".join(f"{name}:{_header(environ, name)}\n" for name in signed.signed_headers)
    return "\n".join(
        [
            str(environ.get("REQUEST_METHOD", "GET")).upper(),
            path,
            _canonical_query(raw.query, presigned=signed.presigned_expires_s is not None),
            headers,
            ";".join(signed.signed_headers),
            _payload_hash(environ, signed, body_sha256),
        ]
    )


def _payload_hash(environ: Mapping[str, Any], signed: Signed, body_sha256: str | None) -> str:
    declared = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
    if declared:
        return str(declared)
    if signed.presigned_expires_s is not None and signed.service == "s3":
        return UNSIGNED_PAYLOAD
    return body_sha256 or EMPTY_SHA256


def _canonical_query(query: str, *, presigned: bool) -> str:
    """The query's pairs as sent (already percent-encoded), sorted; a presigned URL's
    signature is not part of what it signs."""
    pairs = [p.partition("=")[::2] for p in query.split("&") if p] if query else []
    if presigned:
        pairs = [(k, v) for k, v in pairs if k != "X-Amz-Signature"]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header(environ: Mapping[str, Any], name: str) -> str:
    key = name.upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = f"HTTP_{key}"
    return " ".join(str(environ.get(key, "")).split())


def _raw_query(environ: Mapping[str, Any]) -> str:
    uri = str(environ.get("REQUEST_URI", ""))
    return urlsplit(uri).query if uri else str(environ.get("QUERY_STRING", ""))


def _query_values(query: str) -> dict[str, str]:
    return {unquote(_key(p)): unquote(p.partition("=")[2]) for p in query.split("&") if p}


def _key(pair: str) -> str:
    return pair.partition("=")[0]


def _denied(message: str) -> Refusal:
    return Refusal(403, "AccessDenied", message)


def _query_error(message: str) -> Refusal:
    return Refusal(400, "AuthorizationQueryParametersError", message)


def unknown_key() -> Refusal:
    """The access key is not the endpoint's."""
    return Refusal(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
    )


def mismatch() -> Refusal:
    """The signature is not the one the endpoint's secret gives."""
    return Refusal(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )
