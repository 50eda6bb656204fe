"""Publishing job results to the events topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from hevcq.aws.clients import classify
from hevcq.backoff import retry_transient
from hevcq.messages import JobResult

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

log = structlog.get_logger()


class SnsPublisher:
    """Publishes results as JSON, with outcome and pool as message attributes."""

    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self.topic_arn = topic_arn

    @retry_transient
    def publish(self, result: JobResult) -> None:
        """Publish one result."""
        try:
            self._sns.publish(
                TopicArn=self.topic_arn,
                Message=result.model_dump_json(),
                MessageAttributes={
                    "outcome": {"DataType": "String", "StringValue": result.outcome},
                    "pool": {"DataType": "String", "StringValue": result.pool},
                },
            )
        except Exception as exc:
            raise classify(exc, "publish result") from exc
        log.info("result_published", outcome=result.outcome)
