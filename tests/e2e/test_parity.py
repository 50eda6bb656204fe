"""Terraform and the embedded provisioning describe the same farm; a real job runs on it.

Both are created on one moto server under different prefixes, described through the AWS
APIs, and compared with the prefix taken out of every name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hevcq.aws.clients import Clients
from hevcq.aws.provision import provision
from hevcq.aws.s3 import S3Store
from hevcq.library.results import Expected
from hevcq.media.samples import make_clip
from hevcq.metadata import META_SOURCE_KEY
from hevcq.pools import load_farm
from hevcq.topology import FarmRefs, Names
from tests.e2e.farmkit import Collector
from tests.e2e.tfhelpers import PARITY_PREFIX, AppliedFarm, TerraformFarms

# One xdist worker builds the Terraform farms both files read (a session fixture).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("terraform")]
TF_PREFIX, EMB_PREFIX = PARITY_PREFIX, "emb"


@pytest.fixture(scope="module")
def both(terraform_farms: TerraformFarms) -> Iterator[tuple[AppliedFarm, FarmRefs, Path]]:
    tf, wdir = terraform_farms.parity, terraform_farms.parity_workers_dir
    with pytest.MonkeyPatch.context() as mp:
        for k, v in tf.env.items():
            if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL":
                mp.setenv(k, v)
        clients = Clients.create(region=tf.region, endpoint_url=tf.endpoint)
        pools = load_farm(wdir)
        names = Names.build(EMB_PREFIX, f"{EMB_PREFIX}-media", sorted(pools))
        emb = provision(clients, names, pools, tf.region)
        yield tf, emb, wdir


def _name(arn_or_url: str, prefix: str) -> str:
    last = arn_or_url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    assert last.startswith(prefix + "-"), last
    return last[len(prefix) + 1 :]


def describe(c: Clients, prefix: str, bucket: str) -> dict[str, Any]:
    """Everything the parity is about, with the prefix removed from names."""
    queues: dict[str, Any] = {}
    for url in c.sqs.list_queues(QueueNamePrefix=prefix + "-").get("QueueUrls", []):
        a = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(a["RedrivePolicy"]) if "RedrivePolicy" in a else None
        queues[_name(url, prefix)] = {
            "VisibilityTimeout": a["VisibilityTimeout"],
            "MessageRetentionPeriod": a["MessageRetentionPeriod"],
            "ReceiveMessageWaitTimeSeconds": a.get("ReceiveMessageWaitTimeSeconds", "0"),
            "redrive": redrive
            and (_name(redrive["deadLetterTargetArn"], prefix), int(redrive["maxReceiveCount"])),
        }
    subs = set()
    for s in c.sns.list_subscriptions()["Subscriptions"]:
        if not s["TopicArn"].rsplit(":", 1)[-1].startswith(prefix + "-"):
            continue
        got = c.sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])
        sub_attrs: dict[str, str] = dict(got["Attributes"])
        subs.add(
            (
                _name(s["TopicArn"], prefix),
                s["Protocol"],
                _name(s["Endpoint"], prefix),
                sub_attrs.get("RawMessageDelivery"),
                sub_attrs.get("FilterPolicy"),
            )
        )
    note = c.s3.get_bucket_notification_configuration(Bucket=bucket)
    notes = [
        (
            _name(t["TopicArn"], prefix),
            tuple(sorted(t["Events"])),
            tuple(
                sorted((r["Name"].lower(), r["Value"]) for r in t["Filter"]["Key"]["FilterRules"])
            ),
        )
        for t in note.get("TopicConfigurations", [])
    ]
    table = c.dynamodb.describe_table(TableName=f"{prefix}-ledger")["Table"]
    return {
        "queues": queues,
        "subscriptions": subs,
        "notifications": sorted(notes),
        "ledger": (
            sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
            sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]),
        ),
    }


def test_terraform_and_embedded_provisioning_create_the_same_farm(both) -> None:
    tf, emb, _ = both
    c = Clients.create(region=tf.region, endpoint_url=tf.endpoint)
    theirs = describe(c, TF_PREFIX, tf.settings["HEVCQ_BUCKET"])
    ours = describe(c, EMB_PREFIX, emb.bucket)
    assert set(ours["queues"]) == {
        "hevc",
        "hevc-dlq",
        "720p",
        "720p-dlq",
        "1080p",
        "1080p-dlq",
        "results",
    }
    assert theirs == ours


def test_one_real_job_through_the_applied_topology(both, tmp_path: Path) -> None:
    tf, _, wdir = both
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    env |= tf.env | {"HEVCQ_WORKERS_DIR": str(wdir), "HEVCQ_LOG_FORMAT": "json"}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hevcq", "worker", "--pool", "hevc"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        c = Clients.create(region=tf.region, endpoint_url=tf.endpoint)
        bucket = tf.settings["HEVCQ_BUCKET"]
        clip = make_clip(tmp_path / "clip.mp4", width=160, height=90, seconds=0.5, fps=10)
        key = "TODO/through terraform/clip.mp4"
        c.s3.upload_file(str(clip), bucket, key)
        refs = FarmRefs(
            names=Names.build(TF_PREFIX, bucket, ["hevc"]),
            uploads_topic_arn="",
            events_topic_arn="",
            results_queue_url=tf.settings["HEVCQ_RESULTS_QUEUE_URL"],
            ledger_table=tf.settings["HEVCQ_LEDGER_TABLE"],
            pools={},
        )
        col = Collector(c, refs, Expected({(key, "hevc")}))
        assert col.wait(timeout_s=120), log.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    (result,) = col.results.values()
    assert result.outcome == "done", result
    done = S3Store(c.s3, bucket).head("DONE/hevc/through terraform/clip.mp4")
    assert done is not None
    assert done.metadata[META_SOURCE_KEY] == key
