"""POST policy evaluation: signature, expiry, conditions, extra fields and sizes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hevcq.emulator.postpolicy import (
    Allowed,
    Refusal,
    _form_boundary,
    evaluate,
    signature,
    size_refusal,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEYS = {"key-id": "secret"}
SCOPE = ["20260102", "us-east-1", "s3", "aws4_request"]


def _form(
    conditions: list[Any], expiration: str = "2026-01-02T04:00:00Z", **fields: str
) -> dict[str, str]:
    policy = base64.b64encode(
        json.dumps({"expiration": expiration, "conditions": conditions}).encode()
    ).decode()
    form = {
        "key": "TODO/a/clip.mp4",
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": "key-id/" + "/".join(SCOPE),
        "x-amz-date": "20260102T030405Z",
        "policy": policy,
        "x-amz-signature": signature("secret", SCOPE, policy),
    }
    return {**form, **fields}


SIGNED = [
    {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
    {"x-amz-credential": "key-id/" + "/".join(SCOPE)},
    {"x-amz-date": "20260102T030405Z"},
]


def _code(outcome: Refusal | Allowed) -> str:
    return outcome.code if isinstance(outcome, Refusal) else "ok"


@pytest.mark.parametrize(
    ("conditions", "extra", "code"),
    [
        ([{"bucket": "b"}, ["starts-with", "$key", "TODO/"]], {}, "ok"),
        ([{"bucket": "b"}, ["starts-with", "$key", "DONE/"]], {}, "AccessDenied"),
        ([{"bucket": "other"}, {"key": "TODO/a/clip.mp4"}], {}, "AccessDenied"),
        ([["eq", "$Key", "TODO/a/clip.mp4"]], {}, "ok"),  # field names ignore case
        ([{"key": "TODO/a/clip.mp4"}], {"x-amz-meta-owner": "me"}, "AccessDenied"),  # extra
        ([{"key": "TODO/a/clip.mp4"}], {"x-ignore-note": "anything"}, "ok"),
        ([{"key": "TODO/a/clip.mp4"}, {"x-amz-meta-owner": "me"}], {}, "AccessDenied"),  # absent
        ([{"key": "TODO/a/clip.mp4"}, ["in", "$key", "x"]], {}, "InvalidPolicyDocument"),
    ],
)
def test_conditions(conditions: list[Any], extra: dict[str, str], code: str) -> None:
    assert _code(evaluate(_form([*SIGNED, *conditions], **extra), "b", NOW, KEYS)) == code


def test_the_length_range_is_what_the_policy_allows() -> None:
    form = _form([*SIGNED, {"key": "TODO/a/clip.mp4"}, ["content-length-range", 1, 1000]])
    allowed = evaluate(form, "b", NOW, KEYS)
    assert allowed == Allowed(1, 1000)
    assert size_refusal(1000, allowed) is None
    too_large = size_refusal(1001, allowed)
    too_small = size_refusal(0, allowed)
    assert too_large is not None
    assert (too_large.status, too_large.code) == (400, "EntityTooLarge")
    assert too_small is not None
    assert (too_small.status, too_small.code) == (400, "EntityTooSmall")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"x-amz-signature": "0" * 64}, "SignatureDoesNotMatch"),
        ({"x-amz-credential": "nobody/" + "/".join(SCOPE)}, "InvalidAccessKeyId"),
        ({"x-amz-algorithm": "AWS4-HMAC-SHA1"}, "InvalidArgument"),
        ({"policy": "not base64!"}, "SignatureDoesNotMatch"),  # the signature covers it
    ],
)
def test_the_signature_is_checked_first(change: dict[str, str], code: str) -> None:
    form = {**_form([*SIGNED, {"key": "TODO/a/clip.mp4"}]), **change}
    assert _code(evaluate(form, "b", NOW, KEYS)) == code


def test_an_expired_or_unreadable_policy_is_refused() -> None:
    expired = evaluate(_form([*SIGNED], expiration="2026-01-02T03:04:05Z"), "b", NOW, KEYS)
    assert isinstance(expired, Refusal)
    assert "Policy expired" in expired.message
    unsigned = {k: v for k, v in _form([]).items() if k != "policy"}
    assert _code(evaluate(unsigned, "b", NOW, KEYS)) == "AccessDenied"


def test_the_error_document_is_s3_s_shape() -> None:
    xml = Refusal(400, "EntityTooLarge", "a < b", {"MaxSizeAllowed": "10"}).xml().decode()
    assert xml.startswith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>EntityTooLarge</Code>'
    )
    assert "<Message>a &lt; b</Message><MaxSizeAllowed>10</MaxSizeAllowed><RequestId>" in xml


def _sigv4(service: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential=k/20260102/us-east-1/{service}/aws4_request, Signature=x"


@pytest.mark.parametrize(
    ("content_type", "auth", "path", "outcome"),
    [
        ("multipart/form-data; boundary=b", "", "/b", b"b"),
        ("Multipart/Form-Data; BOUNDARY=b", "", "/b", b"b"),  # read as werkzeug reads it
        ("multipart/form-data; boundary=a; boundary=b", "", "/b", b"b"),  # werkzeug: the last
        ("multipart/form-data", "", "/b", "MalformedPOSTRequest"),
        ("multipart/form-data; boundary=", "", "/b/", "MalformedPOSTRequest"),
        ("application/x-www-form-urlencoded", "", "/b", "PreconditionFailed"),
        ("application/x-www-form-urlencoded", "", "/", "PreconditionFailed"),
        ("Application/X-WWW-Form-Urlencoded", _sigv4("s3"), "/b", "PreconditionFailed"),
        ("application/x-www-form-urlencoded", "AWS k:sig", "/b", "PreconditionFailed"),  # SigV2
        ("application/x-www-form-urlencoded; charset=utf-8", _sigv4("sns"), "/", None),
        ("application/xml", "", "/b", None),
        ("", "", "/b", None),
        # A POST to a key (CreateMultipartUpload) carries the object's own content type.
        ("multipart/form-data", _sigv4("s3"), "/b/TODO/x.mp4", None),
        ("application/x-www-form-urlencoded", _sigv4("s3"), "/b/TODO/x.mp4", None),
        ("multipart/form-data; boundary=b", "", "/b/TODO/x.mp4", b"b"),
    ],
)
def test_which_posts_the_gate_checks_refuses_or_passes(
    content_type: str, auth: str, path: str, outcome: bytes | str | None
) -> None:
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "HTTP_AUTHORIZATION": auth,
        "PATH_INFO": path,
    }
    got = _form_boundary(environ)
    assert (got.code if isinstance(got, Refusal) else got) == outcome
