"""The fault proxy itself: each mode does what the worker scenarios rely on."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError, EndpointConnectionError

from hevcq.aws.clients import Clients, error_code
from hevcq.credentials import EMBEDDED_REGION, embedded_env
from hevcq.limits import MiB
from tests.e2e.faultproxy import (
    PROXIED_CREDENTIALS,
    Endpoint,
    FaultProxy,
    endpoint_behind_proxy,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Endpoint, FaultProxy]]:
    os.environ.update(embedded_env(PROXIED_CREDENTIALS))
    with endpoint_behind_proxy(tmp_path_factory.mktemp("proxy")) as (ep, proxy):
        # Every test may run first on its xdist worker: none relies on another's bucket.
        clients(proxy).s3.create_bucket(Bucket="roundtrip")
        yield ep, proxy


@pytest.fixture
def proxy(harness: tuple[Endpoint, FaultProxy]) -> Iterator[FaultProxy]:
    _, p = harness
    p.reset()
    p.accept_again()
    yield p
    p.reset()
    p.accept_again()


def clients(proxy: FaultProxy, retries: int = 1) -> Clients:
    return Clients.create(region=EMBEDDED_REGION, endpoint_url=proxy.url, retries=retries)


def test_pass_through_round_trips_multi_mebibyte_objects_on_kept_alive_connections(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    c = clients(proxy)
    body = os.urandom(3 * MiB + 17)
    c.s3.put_object(Bucket="roundtrip", Key="a", Body=body)
    assert c.s3.get_object(Bucket="roundtrip", Key="a")["Body"].read() == body
    big = tmp_path / "big"
    big.write_bytes(os.urandom(11 * MiB))
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    c.s3.upload_file(str(big), "roundtrip", "b", Config=cfg)
    got = tmp_path / "got"
    c.s3.download_file("roundtrip", "b", str(got), Config=cfg)
    assert got.read_bytes() == big.read_bytes()
    assert c.s3.head_object(Bucket="roundtrip", Key="b")["ContentLength"] == 11 * MiB
    url = c.sqs.create_queue(QueueName="roundtrip")["QueueUrl"]
    c.sqs.send_message(QueueUrl=url, MessageBody="é" * 1000)
    (m,) = c.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert m["Body"] == "é" * 1000


@pytest.mark.parametrize(
    ("mode", "service", "status", "code"),
    [
        ("error", "dynamodb", 500, "InternalServerError"),
        ("error", "s3", 500, "InternalError"),
        ("error", "sqs", 500, "InternalError"),
        ("error", "sns", 500, "InternalError"),
        ("throttle", "dynamodb", 400, "ProvisionedThroughputExceededException"),
        ("throttle", "s3", 503, "SlowDown"),
        ("throttle", "sqs", 400, "RequestThrottled"),
        ("deny", "s3", 403, "InvalidAccessKeyId"),
        ("deny", "sqs", 403, "AccessDenied"),
        ("deny", "dynamodb", 400, "UnrecognizedClientException"),
    ],
)
def test_a_fault_mode_answers_in_the_service_own_error_format(
    proxy: FaultProxy, mode: str, service: str, status: int, code: str
) -> None:
    c = clients(proxy)
    calls: dict[str, Callable[[], object]] = {
        "dynamodb": c.dynamodb.list_tables,
        "s3": lambda: c.s3.list_objects_v2(Bucket="roundtrip"),
        "sqs": c.sqs.list_queues,
        "sns": c.sns.list_topics,
    }
    calls[service]()  # passes first
    proxy.set(service, mode)
    with pytest.raises(ClientError) as err:
        calls[service]()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error_code(err.value) == code
    other = next(s for s in calls if s != service)
    calls[other]()  # only that service is affected
    assert proxy.count(service, mode) >= 1


def test_refusing_gives_connection_errors_until_the_port_listens_again(
    proxy: FaultProxy,
) -> None:
    c = clients(proxy)
    c.sqs.list_queues()  # a kept-alive connection exists now
    proxy.refuse()
    with pytest.raises(EndpointConnectionError):
        c.sqs.list_queues()
    with pytest.raises(EndpointConnectionError):
        c.dynamodb.list_tables()
    proxy.accept_again()
    c.sqs.list_queues()
    c.dynamodb.list_tables()


def test_a_hung_request_goes_on_once_released(proxy: FaultProxy) -> None:
    c = clients(proxy)
    proxy.set("dynamodb", "hang")
    done = threading.Event()

    def call() -> None:
        c.dynamodb.list_tables()
        done.set()

    t = threading.Thread(target=call, daemon=True)
    t.start()
    assert not done.wait(1.5)
    c.sqs.list_queues()  # other services are not held
    proxy.set("dynamodb", "pass")
    assert done.wait(10)
