"""EndpointGate in front of a stand-in for moto: what reaches it, and what leaves."""

from __future__ import annotations

import io
import time
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from hevcq.emulator.endpointgate import MAX_HASHED_BODY, EndpointGate

KEY, SECRET = "AKIDEXAMPLE", "secret"


class Moto:
    """Answers 200 with moto's CORS header, and remembers what reached it."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Access-Control-Allow-Origin", "*"), ("X-Kept", "1")])
        return [b"ok"]


def _signed_environ(body: bytes, **headers: str) -> dict[str, Any]:
    request = AWSRequest(
        "POST",
        "http://127.0.0.1:1/",
        data=body,
        headers={
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    SigV4Auth(BotoCredentials(KEY, SECRET), "dynamodb", "us-east-1").add_auth(request)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "REQUEST_URI": "/",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "HTTP_HOST": urlsplit(request.url).netloc,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in {**dict(request.headers.items()), **headers}.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return environ


def _call(gate: EndpointGate, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        answer.update(status=status, headers=headers)

    body = b"".join(gate(environ, start_response))
    return answer["status"], answer["headers"], body


def test_a_signed_request_reaches_moto_with_its_body_and_without_cors_headers() -> None:
    moto = Moto()
    status, headers, body = _call(EndpointGate(moto, {KEY: SECRET}), _signed_environ(b"{}"))
    assert (status, body, moto.seen) == ("200 OK", b"ok", [b"{}"])
    assert headers == [("X-Kept", "1")]


def test_a_signed_request_from_a_web_page_is_refused_all_the_same() -> None:
    moto = Moto()
    environ = _signed_environ(b"{}", Origin="http://127.0.0.1:8765")
    status, headers, body = _call(EndpointGate(moto, {KEY: SECRET}), environ)
    assert status.startswith("403")
    assert moto.seen == []
    assert not [h for h, _ in headers if h.lower().startswith("access-control-")]
    assert b"AccessDenied" in body


def test_a_signature_from_an_hour_ago_is_refused() -> None:
    moto = Moto()
    gate = EndpointGate(moto, {KEY: SECRET}, clock=lambda: time.time() + 3600)
    status, _, body = _call(gate, _signed_environ(b"{}"))
    assert (status[:3], b"RequestTimeTooSkewed" in body, moto.seen) == ("403", True, [])


def test_an_unsigned_request_never_reaches_moto() -> None:
    moto = Moto()
    environ = {
        "REQUEST_METHOD": "DELETE",
        "PATH_INFO": "/bucket",
        "REQUEST_URI": "/bucket",
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(b""),
    }
    status, _, _ = _call(EndpointGate(moto, {KEY: SECRET}), environ)
    assert (status[:3], moto.seen) == ("403", [])


def test_a_body_too_large_to_hash_is_refused_unread() -> None:
    moto = Moto()
    environ = _signed_environ(b"{}")
    environ["CONTENT_LENGTH"] = str(MAX_HASHED_BODY + 1)
    status, _, _ = _call(EndpointGate(moto, {KEY: SECRET}), environ)
    assert (status[:3], moto.seen) == ("413", [])
