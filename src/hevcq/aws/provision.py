"""The farm's AWS resources: created here for the embedded default, looked up otherwise.

Terraform creates the same resources in the cloud; ``tests/e2e/test_parity.py`` keeps
the two descriptions equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import ClientError

from hevcq.aws.clients import Clients, classify, error_code
from hevcq.errors import ConfigError
from hevcq.keys import TODO_PREFIX
from hevcq.limits import MAX_WAIT_TIME_S
from hevcq.pools import Pool
from hevcq.settings import Settings
from hevcq.topology import FarmRefs, Names, PoolRefs

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = structlog.get_logger()

RESULTS_RETENTION_S = 14 * 24 * 3600


def names_for(settings: Settings, pools: dict[str, Pool], bucket: str) -> Names:
    """The resource names for these settings."""
    return Names.build(settings.name_prefix, bucket, sorted(pools))


def _queue_arn(sqs: SQSClient, url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


def _service_may(sid: str, service: str, action: str, resource: str, source: dict[str, Any]) -> str:
    """A resource policy with one statement: ``service`` may ``action`` on ``resource``,
    for requests from ``source`` (the condition on ``aws:SourceArn``)."""
    statement = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": action,
        "Resource": resource,
        "Condition": source,
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _send_policy(queue_arn: str, topic_arn: str) -> str:
    return _service_may(
        "TopicMayDeliver",
        "sns.amazonaws.com",
        "sqs:SendMessage",
        queue_arn,
        {"ArnEquals": {"aws:SourceArn": topic_arn}},
    )


def _publish_policy(topic_arn: str, bucket: str) -> str:
    return _service_may(
        "BucketMayPublish",
        "s3.amazonaws.com",
        "sns:Publish",
        topic_arn,
        {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
    )


def _subscribe(c: Clients, topic_arn: str, queue_url: str) -> None:
    queue_arn = _queue_arn(c.sqs, queue_url)
    c.sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": _send_policy(queue_arn, topic_arn)}
    )
    c.sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )


def _ensure_queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> str:
    """Create a queue, or bring an existing one's attributes up to date."""
    try:
        return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    except ClientError as exc:
        if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    return url


def _create_pool_queues(
    c: Clients, names: Names, pool: Pool, topic_arn: str, *, subscribed: bool = True
) -> PoolRefs:
    pn = names.pools[pool.name]
    q = pool.queue
    dlq_url = _ensure_queue(
        c.sqs,
        pn.dlq,
        {"MessageRetentionPeriod": str(q.dlq_retention_s), "SqsManagedSseEnabled": "true"},
    )
    redrive = {
        "deadLetterTargetArn": _queue_arn(c.sqs, dlq_url),
        "maxReceiveCount": q.max_receive_count,
    }
    queue_url = _ensure_queue(
        c.sqs,
        pn.queue,
        {
            "VisibilityTimeout": str(q.visibility_timeout_s),
            "MessageRetentionPeriod": str(q.retention_s),
            "ReceiveMessageWaitTimeSeconds": str(MAX_WAIT_TIME_S),
            "RedrivePolicy": json.dumps(redrive),
            "SqsManagedSseEnabled": "true",
        },
    )
    if subscribed:
        _subscribe(c, topic_arn, queue_url)
    return PoolRefs(queue_url=queue_url, dlq_url=dlq_url)


def _create_bucket(c: Clients, bucket: str, region: str) -> None:
    kw = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    try:
        c.s3.create_bucket(Bucket=bucket, **kw)  # type: ignore[arg-type]
    except ClientError as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise
    c.s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _create_ledger(c: Clients, table: str) -> None:
    try:
        c.dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    c.dynamodb.get_waiter("table_exists").wait(TableName=table)


def provision(
    c: Clients,
    names: Names,
    pools: dict[str, Pool],
    region: str,
    *,
    subscribed: Iterable[str] | None = None,
) -> FarmRefs:
    """Create (idempotently) every resource of the farm and return their addresses.

    Every pool gets its queues; only the ``subscribed`` ones (default: all) get the upload
    events. An embedded farm runs workers for the pools its run needs: a queue no worker
    reads would collect an event per upload, and moto's cost of sending to a queue grows
    with the messages in it (it counts them on each send), so a run slowed as it went.
    """
    wanted = set(pools if subscribed is None else subscribed)
    _create_bucket(c, names.bucket, region)
    uploads = c.sns.create_topic(Name=names.uploads_topic)["TopicArn"]
    events = c.sns.create_topic(Name=names.events_topic)["TopicArn"]
    c.sns.set_topic_attributes(
        TopicArn=uploads,
        AttributeName="Policy",
        AttributeValue=_publish_policy(uploads, names.bucket),
    )
    refs = {
        name: _create_pool_queues(c, names, pool, uploads, subscribed=name in wanted)
        for name, pool in pools.items()
    }
    results_url = c.sqs.create_queue(
        QueueName=names.results_queue,
        Attributes={
            "MessageRetentionPeriod": str(RESULTS_RETENTION_S),
            "SqsManagedSseEnabled": "true",
        },
    )["QueueUrl"]
    _subscribe(c, events, results_url)
    _create_ledger(c, names.ledger_table)
    c.s3.put_bucket_notification_configuration(
        Bucket=names.bucket,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "Id": "hevcq-uploads",
                    "TopicArn": uploads,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": TODO_PREFIX}]}},
                }
            ]
        },
    )
    log.info("farm_provisioned", bucket=names.bucket, pools=sorted(pools))
    return FarmRefs(names, uploads, events, results_url, names.ledger_table, refs)


def _topic_arn(c: Clients, explicit: str | None, name: str, region: str) -> str:
    if explicit:
        return explicit
    account = c.sts.get_caller_identity()["Account"]
    return f"arn:aws:sns:{region}:{account}:{name}"


def resolve(c: Clients, settings: Settings, pools: dict[str, Pool], region: str) -> FarmRefs:
    """Address an existing farm from settings, deriving what is unset from the names."""
    if settings.bucket is None:
        raise ConfigError("no farm configured: HEVCQ_BUCKET is not set")
    names = names_for(settings, pools, settings.bucket)

    def url(queue: str) -> str:
        # A missing queue or refused credentials: FarmConfigError; an endpoint that is
        # down or failing: RetryableError, which a worker waits out (outage.until_reachable).
        try:
            return c.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        except ClientError as exc:
            raise classify(exc, f"queue {queue!r}") from exc

    return FarmRefs(
        names=names,
        uploads_topic_arn=_topic_arn(c, settings.uploads_topic_arn, names.uploads_topic, region),
        events_topic_arn=_topic_arn(c, settings.events_topic_arn, names.events_topic, region),
        results_queue_url=settings.results_queue_url or url(names.results_queue),
        ledger_table=settings.ledger_table or names.ledger_table,
        pools={
            p: PoolRefs(queue_url=url(pn.queue), dlq_url=url(pn.dlq))
            for p, pn in names.pools.items()
        },
    )
