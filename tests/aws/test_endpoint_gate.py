"""The embedded endpoint answers only the farm: attacks on a real endpoint process.

Raw HTTP without the run's key pair, with another secret, from a browser page (``Origin``),
at moto's own API, and clients that send a request too slowly: each is refused or cut
off, and the farm's own signed clients still work.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hevcq.aws.clients import Clients, error_code
from hevcq.credentials import Credentials
from hevcq.emulator.endpoint import EndpointProcess, start
from hevcq.emulator.readtimes import ReadBounds

NO_RETRY = Config(retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture(scope="module")
def endpoint() -> Iterator[EndpointProcess]:
    ep = start()
    try:
        yield ep
    finally:
        ep.stop()


def _client(
    ep: EndpointProcess, service: str, secret: str | None = None, key: str | None = None
) -> Any:
    creds = ep.credentials
    return boto3.client(
        service,  # type: ignore[call-overload]  # the stubs want a literal service name
        endpoint_url=ep.url,
        region_name="us-east-1",
        config=NO_RETRY,
        aws_access_key_id=key or creds.access_key_id,
        aws_secret_access_key=secret or creds.secret_access_key,
    )


@pytest.fixture
def bucket(endpoint: EndpointProcess) -> str:
    name = f"b{uuid.uuid4().hex[:10]}"
    s3 = _client(endpoint, "s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="TODO/home-video.mp4", Body=b"private")
    return name


def _keys(ep: EndpointProcess, bucket: str) -> list[str]:
    listed = _client(ep, "s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return [o["Key"] for o in listed]


def _raw(ep: EndpointProcess, bucket: str, what: str, **extra: Any) -> httpx.Response:
    """One of the requests a page or another local user would send, unsigned."""
    json_call = {"Content-Type": "application/x-amz-json-1.0"}
    requests: dict[str, tuple[str, str, dict[str, str], bytes]] = {
        "s3 list": ("GET", f"/{bucket}?list-type=2&prefix=TODO/", {}, b""),
        "s3 get": ("GET", f"/{bucket}/TODO/home-video.mp4", {}, b""),
        "s3 put": ("PUT", f"/{bucket}/TODO/planted.mp4", {}, b"planted"),
        "sqs": ("POST", "/", {**json_call, "X-Amz-Target": "AmazonSQS.ListQueues"}, b"{}"),
        "dynamodb": (
            "POST",
            "/",
            {**json_call, "X-Amz-Target": "DynamoDB_20120810.ListTables"},
            b"{}",
        ),
        "sns": (
            "POST",
            "/",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Action=ListTopics&Version=2010-03-31",
        ),
    }
    method, path, headers, body = requests[what]
    return httpx.request(
        method,
        ep.url + path,
        headers={**headers, **extra.pop("headers", {})},
        content=body,
        timeout=10,
        **extra,
    )


REQUESTS = ["s3 list", "s3 get", "s3 put", "sqs", "dynamodb", "sns"]


@pytest.mark.parametrize("what", REQUESTS)
def test_an_unsigned_request_is_refused(endpoint: EndpointProcess, bucket: str, what: str) -> None:
    sent = _raw(endpoint, bucket, what)
    assert sent.status_code == 403
    assert b"private" not in sent.content
    assert "<Code>AccessDenied</Code>" in sent.text or "AccessDenied" in sent.text
    assert _keys(endpoint, bucket) == ["TODO/home-video.mp4"]


@pytest.mark.parametrize("what", REQUESTS)
def test_a_request_signed_with_another_key_pair_is_refused(
    endpoint: EndpointProcess, bucket: str, what: str
) -> None:
    service = what.split(maxsplit=1)[0]
    calls: dict[str, Any] = {
        "s3 list": lambda c: c.list_objects_v2(Bucket=bucket, Prefix="TODO/"),
        "s3 get": lambda c: c.get_object(Bucket=bucket, Key="TODO/home-video.mp4"),
        "s3 put": lambda c: c.put_object(Bucket=bucket, Key="TODO/planted.mp4", Body=b"x"),
        "sqs": lambda c: c.list_queues(),
        "dynamodb": lambda c: c.list_tables(),
        "sns": lambda c: c.list_topics(),
    }
    for client, code in (
        (_client(endpoint, service, secret="not-the-secret"), "SignatureDoesNotMatch"),
        (_client(endpoint, service, key="AKIAOTHERKEY"), "InvalidAccessKeyId"),
    ):
        with pytest.raises(ClientError) as refused:
            calls[what](client)
        assert error_code(refused.value) == code
    assert _keys(endpoint, bucket) == ["TODO/home-video.mp4"]


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "PUT"])
def test_a_request_from_a_web_page_is_refused_without_cors_headers(
    endpoint: EndpointProcess, bucket: str, method: str
) -> None:
    headers = {"Origin": "http://127.0.0.1:9999", "Access-Control-Request-Method": "PUT"}
    sent = httpx.request(
        method,
        f"{endpoint.url}/{bucket}/TODO/planted.mp4",
        headers=headers,
        content=b"planted" if method == "PUT" else b"",
        timeout=10,
    )
    assert sent.status_code == 403
    assert [h for h in sent.headers if h.lower().startswith("access-control-")] == []
    assert _keys(endpoint, bucket) == ["TODO/home-video.mp4"]


def test_the_farm_s_own_answers_carry_no_cors_headers(
    endpoint: EndpointProcess, bucket: str
) -> None:
    answer = _client(endpoint, "s3").list_objects_v2(Bucket=bucket)
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert [h for h in headers if h.startswith("access-control-")] == []
    assert answer["KeyCount"] == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/moto-api/"),
        ("POST", "/moto-api/reset"),
        ("GET", "/moto-api/data.json"),
        ("POST", "//moto-api/reset"),
    ],
)
def test_moto_s_own_api_is_not_served(
    endpoint: EndpointProcess, bucket: str, method: str, path: str
) -> None:
    sent = httpx.request(method, endpoint.url + path, timeout=10)
    assert sent.status_code == 403
    assert _keys(endpoint, bucket) == ["TODO/home-video.mp4"]  # not reset


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as the kernel shows them) that listen on ``port``."""
    found = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_the_endpoint_listens_on_loopback_only(endpoint: EndpointProcess) -> None:
    port = int(endpoint.url.rsplit(":", 1)[1])
    assert _listening(port) == ["0100007F"]  # 127.0.0.1, and nothing else


def test_a_presigned_url_reads_its_object_until_it_expires(
    endpoint: EndpointProcess, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in endpoint.credentials.env().items():
        monkeypatch.setenv(name, value)
    s3 = Clients.create(region="us-east-1", endpoint_url=endpoint.url).s3
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "TODO/home-video.mp4"}, ExpiresIn=2
    )
    assert httpx.get(url, timeout=10).content == b"private"
    tampered = url.replace("home-video.mp4", "home-video.mp4x")
    assert httpx.get(tampered, timeout=10).status_code == 403
    time.sleep(3)
    expired = httpx.get(url, timeout=10)
    assert (expired.status_code, b"private" in expired.content) == (403, False)


def test_the_farm_s_own_clients_work_on_every_service(endpoint: EndpointProcess) -> None:
    name = f"q{uuid.uuid4().hex[:10]}"
    queue = _client(endpoint, "sqs").create_queue(QueueName=name)["QueueUrl"]
    assert _client(endpoint, "sqs").send_message(QueueUrl=queue, MessageBody="m")["MessageId"]
    assert "TableNames" in _client(endpoint, "dynamodb").list_tables()
    assert _client(endpoint, "sns").create_topic(Name=name)["TopicArn"].endswith(name)
    assert _client(endpoint, "sts").get_caller_identity()["Account"]


# --- requests that arrive too slowly --------------------------------------------------

BOUNDS = ReadBounds(header_s=1.5, body_grace_s=1.5, min_body_rate=1024.0)
CUT_OFF_WITHIN_S = 6.0  # the bound plus room for a busy machine


@pytest.fixture(scope="module")
def strict_endpoint() -> Iterator[EndpointProcess]:
    ep = start(credentials=Credentials.generate(), bounds=BOUNDS)
    try:
        yield ep
    finally:
        ep.stop()


def _trickle(ep: EndpointProcess, head: bytes, then: bytes, every_s: float) -> float:
    """Send ``head`` at once, then ``then`` a byte at a time; seconds until the server hangs
    up (or ``CUT_OFF_WITHIN_S`` and a bit, when it never does)."""
    host, port = ep.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        for byte in then:
            if time.monotonic() - started > CUT_OFF_WITHIN_S + 1:
                break
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(every_s)
                if sock.recv(4096) == b"":
                    break  # closed
                break  # an answer: the server is done with this request
            except TimeoutError:
                continue
            except OSError:
                break
    return time.monotonic() - started


def test_headers_trickled_in_are_cut_off(strict_endpoint: EndpointProcess) -> None:
    head = b"GET /bucket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    took = _trickle(strict_endpoint, head, b"X-Slow: " + b"a" * 200, every_s=0.3)
    assert took < CUT_OFF_WITHIN_S


def test_a_body_that_never_completes_is_cut_off(strict_endpoint: EndpointProcess) -> None:
    # A browser upload form: the endpoint reads its body to check the policy.
    head = (
        b"POST /bucket HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n--xyz\r\n"
    )
    took = _trickle(strict_endpoint, head, b"a" * 200, every_s=0.3)
    assert took < CUT_OFF_WITHIN_S


def test_a_prompt_request_still_passes_the_bounds(strict_endpoint: EndpointProcess) -> None:
    s3 = _client(strict_endpoint, "s3")
    name = f"b{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x" * 200_000)
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"x" * 200_000


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_the_key_pair_is_new_each_run_and_never_on_a_command_line(
    endpoint: EndpointProcess,
) -> None:
    creds = endpoint.credentials
    assert Credentials.generate() != creds
    cmdline = Path(f"/proc/{endpoint.pid}/cmdline").read_bytes()
    assert creds.secret_access_key.encode() not in cmdline
    assert creds.secret_access_key not in repr(creds)
