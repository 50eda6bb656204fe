"""How the boto3 clients are built: S3 bodies on a loopback endpoint are hashed only once."""

from __future__ import annotations

from typing import Any

import pytest

from hevcq.aws.clients import Clients, on_loopback


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:4566", True),
        ("http://127.3.2.1:80", True),
        ("http://localhost:9000", True),
        ("http://[::1]:9000", True),
        ("https://127.0.0.1:4566", False),  # TLS: botocore already leaves the payload unsigned
        ("http://10.0.0.7:9000", False),
        ("http://objects.example:9000", False),
        ("https://s3.eu-west-1.amazonaws.com", False),
        ("http://", False),
        (None, False),
        ("", False),
    ],
)
def test_loopback_is_plain_http_to_this_machine(url: str | None, expected: bool) -> None:
    assert on_loopback(url) is expected


class _Sent(Exception):
    """Raised by the send hook: the request is captured and never leaves the process."""


def _headers_of_a_put(endpoint_url: str) -> dict[str, str]:
    clients = Clients.create(region="us-east-1", endpoint_url=endpoint_url, retries=1)
    seen: dict[str, str] = {}

    def capture(request: Any, **_: Any) -> None:
        seen.update(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            }
        )
        raise _Sent

    clients.s3.meta.events.register("before-send.s3.PutObject", capture)
    with pytest.raises(_Sent):
        clients.s3.put_object(Bucket="some-bucket", Key="k", Body=b"x" * 100_000)
    return seen


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


def test_a_put_to_the_loopback_endpoint_is_neither_payload_signed_nor_checksummed() -> None:
    headers = _headers_of_a_put("http://127.0.0.1:1")
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert not any(h.startswith("x-amz-checksum-") for h in headers)


def test_a_put_anywhere_else_keeps_botocore_s_protections() -> None:
    headers = _headers_of_a_put("http://objects.example:9000")
    assert headers["x-amz-content-sha256"] not in ("UNSIGNED-PAYLOAD", "")
    assert any(h.startswith("x-amz-checksum-") for h in headers)
