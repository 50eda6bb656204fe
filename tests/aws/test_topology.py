"""The provisioned topology, the fan-out, the redrive policy and redrive."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from moto import mock_aws

from hevcq.aws.clients import Clients
from hevcq.aws.provision import provision
from hevcq.aws.sqs import ATTR_CLASS, SqsQueue
from hevcq.errors import FailureClass
from hevcq.farm.client import Farm
from hevcq.messages import S3TestEvent, parse_message
from hevcq.pools import Pool
from hevcq.topology import Names
from tests.aws.conftest import MotoFarm


def receive_all(farm: MotoFarm, url: str, visibility: int = 0) -> list[Any]:
    resp = farm.clients.sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=0,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return resp.get("Messages", [])


def attrs(farm: MotoFarm, url: str) -> dict[str, str]:
    got = farm.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    return {str(k): v for k, v in got["Attributes"].items()}


def test_each_pool_has_a_queue_with_a_dead_letter_redrive_policy(moto_farm: MotoFarm) -> None:
    for name, pool in moto_farm.pools.items():
        pr = moto_farm.refs.pools[name]
        q, d = attrs(moto_farm, pr.queue_url), attrs(moto_farm, pr.dlq_url)
        policy = json.loads(q["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == d["QueueArn"]
        assert int(policy["maxReceiveCount"]) == pool.queue.max_receive_count
        assert int(q["VisibilityTimeout"]) == pool.queue.visibility_timeout_s
        assert int(d["MessageRetentionPeriod"]) > int(q["MessageRetentionPeriod"])


def test_subscriptions_use_raw_delivery(moto_farm: MotoFarm) -> None:
    sns = moto_farm.clients.sns
    subs = sns.list_subscriptions_by_topic(TopicArn=moto_farm.refs.uploads_topic_arn)[
        "Subscriptions"
    ]
    assert len(subs) == len(moto_farm.pools)
    for s in subs:
        a = sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])["Attributes"]
        assert a["RawMessageDelivery"] == "true"


def test_one_upload_fans_out_to_every_pool_queue(moto_farm: MotoFarm, tmp_path: Path) -> None:
    s3 = moto_farm.clients.s3
    s3.put_object(Bucket=moto_farm.refs.bucket, Key="TODO/my trip/clip 1.mp4", Body=b"x" * 10)
    s3.put_object(Bucket=moto_farm.refs.bucket, Key="elsewhere/not-watched.mp4", Body=b"y")
    for pr in moto_farm.refs.pools.values():
        parsed = [parse_message(m["Body"]) for m in receive_all(moto_farm, pr.queue_url)]
        # S3 sends a test event when notifications are configured; workers ignore it.
        uploads = [p for p in parsed if not isinstance(p, S3TestEvent)]
        assert len(uploads) == 1, "exactly the TODO/ upload, nothing else"
        (obj,) = uploads[0]  # raw delivery: the S3 event itself
        assert obj.key == "TODO/my trip/clip 1.mp4"
        assert obj.bucket == moto_farm.refs.bucket


def test_a_farm_for_some_pools_sends_upload_events_to_their_queues_only(
    farm: dict[str, Pool],
) -> None:
    """An embedded run's workers read its pools' queues only: the other queues collected an
    event per upload, and moto's cost of each send grew with them (a run slowed as it went)."""
    with mock_aws():
        clients = Clients.create(region="us-east-1")
        names = Names.build("tsub", "tsub-media", sorted(farm))
        refs = provision(clients, names, farm, "us-east-1", subscribed=["hevc"])
        assert set(refs.pools) == set(farm)  # every pool still has its queues
        clients.s3.put_object(Bucket=refs.bucket, Key="TODO/clip.mp4", Body=b"x")
        for name, pr in refs.pools.items():
            got = clients.sqs.receive_message(
                QueueUrl=pr.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            keys = [
                o.key
                for m in got.get("Messages", [])
                if not isinstance(p := parse_message(m["Body"]), S3TestEvent)
                for o in p
            ]
            assert keys == (["TODO/clip.mp4"] if name == "hevc" else []), name


def test_message_reaches_dead_letter_queue_after_max_receive_count(moto_farm: MotoFarm) -> None:
    pool = moto_farm.pools["hevc"]
    pr = moto_farm.refs.pools["hevc"]
    moto_farm.clients.sqs.purge_queue(QueueUrl=pr.queue_url)  # drop the S3 test event
    moto_farm.clients.s3.put_object(Bucket=moto_farm.refs.bucket, Key="TODO/bad.mp4", Body=b"x")
    for _ in range(pool.queue.max_receive_count):
        assert len(receive_all(moto_farm, pr.queue_url)) == 1  # received, not deleted
    assert receive_all(moto_farm, pr.queue_url) == []  # moved by the redrive policy
    dead = receive_all(moto_farm, pr.dlq_url)
    assert len(dead) == 1
    objs = parse_message(dead[0]["Body"])
    assert isinstance(objs, list)
    assert objs[0].key == "TODO/bad.mp4"


def test_redrive_brings_dead_letters_back_one_by_one(moto_farm: MotoFarm) -> None:
    sqs = moto_farm.clients.sqs
    pr = moto_farm.refs.pools["720p"]
    sqs.purge_queue(QueueUrl=pr.queue_url)
    for i in range(13):  # more than one receive batch
        sqs.send_message(QueueUrl=pr.dlq_url, MessageBody=json.dumps({"n": i}))
    moved = Farm(moto_farm.clients, moto_farm.refs, label="t").redrive(["720p"])
    assert moved == {"720p": 13}  # moto has no move tasks: one by one
    assert int(attrs(moto_farm, pr.dlq_url)["ApproximateNumberOfMessages"]) == 0
    bodies = []
    while msgs := receive_all(moto_farm, pr.queue_url, visibility=60):
        bodies += [json.loads(m["Body"])["n"] for m in msgs]
    assert sorted(bodies) == list(range(13))


def test_redrive_by_failure_class_moves_only_that_class(moto_farm: MotoFarm) -> None:
    sqs = moto_farm.clients.sqs
    pr = moto_farm.refs.pools["hevc"]
    q = SqsQueue(sqs, pr.queue_url, pr.dlq_url)
    for i, cls in enumerate(
        [FailureClass.PERMANENT, FailureClass.TRANSIENT, FailureClass.PERMANENT]
    ):
        sqs.send_message(QueueUrl=pr.queue_url, MessageBody=json.dumps({"n": i}))
        msg = q.receive(0)
        assert msg is not None
        q.dead_letter(msg, cls, f"reason {i}")
    farm = Farm(moto_farm.clients, moto_farm.refs, label="t")
    listed = farm.dead_letters("hevc")
    assert sorted((d.failure_class, d.reason) for d in listed) == [
        ("permanent", "reason 0"),
        ("permanent", "reason 2"),
        ("transient", "reason 1"),
    ]
    assert farm.redrive(["hevc"], FailureClass.TRANSIENT) == {"hevc": 1}
    left = receive_all(moto_farm, pr.dlq_url)
    assert sorted(m["MessageAttributes"][ATTR_CLASS]["StringValue"] for m in left) == [
        "permanent",
        "permanent",
    ]


def test_redrive_falls_back_when_move_tasks_are_missing(moto_farm: MotoFarm) -> None:
    # moto answers StartMessageMoveTask with a server error; redrive must still move everything.
    sqs = moto_farm.clients.sqs
    pr = moto_farm.refs.pools["1080p"]
    sqs.purge_queue(QueueUrl=pr.queue_url)
    sqs.send_message(QueueUrl=pr.dlq_url, MessageBody="{}")
    no_retry = Clients.create(region="us-east-1", retries=1)
    farm = Farm(moto_farm.clients, moto_farm.refs, label="t", move_clients=no_retry)
    done = farm.redrive(["1080p"])
    assert done == {"1080p": 1}
    assert len(receive_all(moto_farm, pr.queue_url)) == 1


class MoveTaskSqs:
    """Wraps a client whose endpoint implements message move tasks."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.tasks: list[tuple[str, str]] = []

    def get_queue_attributes(self, **kw: object) -> dict:
        return self.real.get_queue_attributes(**kw)  # type: ignore[attr-defined]

    def start_message_move_task(self, SourceArn: str, DestinationArn: str) -> dict:
        self.tasks.append((SourceArn, DestinationArn))
        return {"TaskHandle": "h"}


def test_redrive_uses_the_move_task_where_supported(moto_farm: MotoFarm) -> None:
    sqs = moto_farm.clients.sqs
    fake = MoveTaskSqs(sqs)
    move_clients = SimpleNamespace(sqs=fake)  # a client of an endpoint with move tasks
    farm = Farm(moto_farm.clients, moto_farm.refs, label="t", move_clients=move_clients)  # type: ignore[arg-type]
    done = farm.redrive(["hevc"])
    pr = moto_farm.refs.pools["hevc"]
    assert done == {"hevc": "move task started"}
    assert fake.tasks == [
        (attrs(moto_farm, pr.dlq_url)["QueueArn"], attrs(moto_farm, pr.queue_url)["QueueArn"])
    ]


def test_bucket_notification_filters_on_todo_prefix(moto_farm: MotoFarm) -> None:
    conf = moto_farm.clients.s3.get_bucket_notification_configuration(Bucket=moto_farm.refs.bucket)
    (topic,) = conf["TopicConfigurations"]
    assert topic["TopicArn"] == moto_farm.refs.uploads_topic_arn
    rules = topic["Filter"]["Key"]["FilterRules"]
    assert {"Name": "Prefix", "Value": "TODO/"} in rules or {
        "Name": "prefix",
        "Value": "TODO/",
    } in rules


def test_provisioning_is_idempotent(moto_farm: MotoFarm) -> None:
    again = provision(moto_farm.clients, moto_farm.refs.names, moto_farm.pools, "us-east-1")
    assert again == moto_farm.refs
    subs = moto_farm.clients.sns.list_subscriptions_by_topic(
        TopicArn=moto_farm.refs.uploads_topic_arn
    )["Subscriptions"]
    assert len(subs) == len(moto_farm.pools)
