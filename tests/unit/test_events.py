"""S3 event parsing: raw and SNS-wrapped, URL-encoded keys, test events, malformed bodies."""

from __future__ import annotations

import json

import pytest

from hevcq.errors import PermanentError
from hevcq.messages import Notification, S3TestEvent, parse_message, parse_records


def s3_event(key: str, bucket: str = "media", event: str = "ObjectCreated:Put") -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.3",  # a future version must still parse
                "eventSource": "aws:s3",
                "eventName": event,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": 42, "eTag": "abc123", "sequencer": "01"},
                },
            }
        ]
    }


def sns_wrap(doc: dict) -> dict:
    return {"Type": "Notification", "MessageId": "m", "TopicArn": "arn", "Message": json.dumps(doc)}


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("TODO/plain.mp4", "TODO/plain.mp4"),
        ("TODO/my+holiday+video.mp4", "TODO/my holiday video.mp4"),
        ("TODO/a%2Bb.mp4", "TODO/a+b.mp4"),
        ("TODO/dir%2Fsub%2Fclip.mp4", "TODO/dir/sub/clip.mp4"),
        ("TODO/%C3%A9t%C3%A9+%F0%9F%8E%A5.mov", "TODO/été 🎥.mov"),
        ("TODO/100%25+real%23%26.mp4", "TODO/100% real#&.mp4"),
        ("TODO/-leading-dash.mp4", "TODO/-leading-dash.mp4"),
    ],
)
@pytest.mark.parametrize("wrapped", [False, True])
def test_keys_are_url_decoded(encoded: str, decoded: str, wrapped: bool) -> None:
    doc = s3_event(encoded)
    body = json.dumps(sns_wrap(doc) if wrapped else doc)
    objs = parse_message(body)
    assert isinstance(objs, list)
    (obj,) = objs
    assert obj.key == decoded
    assert obj.bucket == "media"
    assert obj.etag == "abc123"
    assert obj.size == 42


@pytest.mark.parametrize("wrapped", [False, True])
def test_s3_test_event_is_recognised(wrapped: bool) -> None:
    doc = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "media", "Time": "t"}
    parsed = parse_message(json.dumps(sns_wrap(doc) if wrapped else doc))
    assert parsed == S3TestEvent(bucket="media")


def test_non_create_events_announce_nothing() -> None:
    assert parse_message(json.dumps(s3_event("TODO/a.mp4", event="ObjectRemoved:Delete"))) == []


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        '"a string"',
        json.dumps({"Records": "nope"}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
        json.dumps({"Type": "Notification", "Message": "{broken"}),
        json.dumps({"hello": "world"}),
    ],
)
def test_malformed_bodies_are_permanent_errors(body: str) -> None:
    with pytest.raises(PermanentError):
        parse_message(body)


DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        json.dumps({"Type": "Notification", "Message": DEEP}),
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": ' + DEEP + "}]}",
        '{"Records": ' + "{" * 5000 + "}" * 5000 + "}",
        json.dumps({"Type": "Notification", "Message": 42}),
        "\x00\xff" * 100_000,
        "{" * 200_000,
    ],
    ids=[
        "deep",
        "deep-in-sns",
        "deep-in-record",
        "deep-objects",
        "sns-number",
        "garbage",
        "open-braces",
    ],
)
def test_any_body_however_deep_or_large_is_only_ever_a_permanent_error(body: str) -> None:
    with pytest.raises(PermanentError) as err:
        parse_message(body)
    assert 0 < len(str(err.value)) < 500


def test_non_create_records_are_reported_with_their_reason() -> None:
    parsed = parse_records(json.dumps(s3_event("TODO/a+b.mp4", event="ObjectRemoved:Delete")))
    assert isinstance(parsed, Notification)
    assert parsed.objects == []
    (ignored,) = parsed.ignored
    assert (ignored.event_name, ignored.key) == ("ObjectRemoved:Delete", "TODO/a b.mp4")
    assert "ObjectCreated" in ignored.reason
