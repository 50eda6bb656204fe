"""The job ledger on DynamoDB: ``hevcq.ledger``'s rules, each write translated into one
conditional UpdateItem that DynamoDB checks atomically on the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from hevcq.aws.clients import classify, error_code
from hevcq.ledger import (
    Expect,
    LedgerItem,
    PastVersion,
    RuleLedger,
    Write,
    history_json,
    to_attribute,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONDITION_FAILED = "ConditionalCheckFailedException"
BATCH_GET_KEYS = 100  # the most keys one BatchGetItem takes
# A throttled batch returns what it could not read as UnprocessedKeys: asked again this
# many times, a short pause apart, and what is still left is read one item at a time.
BATCH_GET_ROUNDS = 4
BATCH_GET_PAUSE_S = 0.05


def condition(expect: Expect) -> tuple[str, dict[str, object]]:
    """``expect`` as a DynamoDB condition expression and the values it names."""
    if expect.absent:
        return "attribute_not_exists(pk)", {}
    clauses: list[str] = []
    values: dict[str, object] = {}
    if expect.rvn == "":  # an item written before record versions existed
        clauses.append("(attribute_not_exists(#rvn) OR #rvn = :rvn)")
        values["rvn"] = ""
    elif expect.rvn is not None:
        clauses.append("#rvn = :rvn")
        values["rvn"] = expect.rvn
    for name in ("worker", "etag", "state"):
        wanted = getattr(expect, name)
        if wanted is not None:
            clauses.append(f"#{name} = :{name}")
            values[name] = wanted
    return " AND ".join(clauses), values


def stored(value: object) -> dict[str, Any]:
    """A field's value as a DynamoDB attribute value."""
    if isinstance(value, Enum):
        value = value.value
    elif isinstance(value, tuple) and all(isinstance(v, PastVersion) for v in value):
        value = history_json(value)
    return to_attribute(value)


def update(write: Write) -> dict[str, Any]:
    """``write`` as the arguments of one conditional UpdateItem (less the table)."""
    expr = "SET " + ", ".join(f"#{k} = :set_{k}" for k in write.sets)
    if write.adds:
        expr += " ADD " + ", ".join(f"#{k} :add_{k}" for k in write.adds)
    cond, values = condition(write.expect)
    # DynamoDB rejects names that the expressions do not use.
    names = {f"#{k}": k for k in [*write.sets, *write.adds, *values]}
    attr_values = {f":set_{k}": stored(v) for k, v in write.sets.items()}
    attr_values.update({f":add_{k}": stored(v) for k, v in write.adds.items()})
    attr_values.update({f":{k}": stored(v) for k, v in values.items()})
    return {
        "Key": {"pk": {"S": write.key}, "sk": {"S": write.pool}},
        "UpdateExpression": expr,
        "ConditionExpression": cond,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": attr_values,
        "ReturnValues": "ALL_NEW",
    }


@dataclass
class DynamoLedger(RuleLedger):
    """The ledger table (hash key ``pk`` = source key, range key ``sk`` = pool)."""

    ddb: DynamoDBClient
    table: str
    clock: Callable[[], float] = field(default=time.time)

    def _call(self, what: str, fn: Callable[..., Any], **kw: Any) -> Any:
        """One DynamoDB call; transient faults become RetryableError, config faults their own."""
        return self._any_call(what, fn, TableName=self.table, **kw)

    def _any_call(self, what: str, fn: Callable[..., Any], **kw: Any) -> Any:
        try:
            return fn(**kw)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise
            raise classify(exc, what) from exc
        except BotoCoreError as exc:
            raise classify(exc, what) from exc

    def get(self, key: str, pool: str) -> LedgerItem | None:
        """One item, read consistently."""
        resp = self._call(
            "ledger read",
            self.ddb.get_item,
            Key={"pk": {"S": key}, "sk": {"S": pool}},
            ConsistentRead=True,
        )
        return LedgerItem.from_item(resp["Item"]) if "Item" in resp else None

    def write(self, write: Write) -> LedgerItem | None:
        """One conditional UpdateItem: the item after it, or None when its condition failed."""
        try:
            resp = self._call("ledger write", self.ddb.update_item, **update(write))
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return None
            raise
        return LedgerItem.from_item(resp["Attributes"])

    def get_many(self, jobs: Iterable[tuple[str, str]]) -> list[LedgerItem]:
        """The items of these jobs that exist, by BatchGetItem (eventually consistent)."""
        keys = [{"pk": {"S": k}, "sk": {"S": p}} for k, p in dict.fromkeys(jobs)]
        items: list[LedgerItem] = []
        for start in range(0, len(keys), BATCH_GET_KEYS):
            left: list[dict[str, Any]] = keys[start : start + BATCH_GET_KEYS]
            for n in range(BATCH_GET_ROUNDS):
                if n:
                    time.sleep(BATCH_GET_PAUSE_S * n)
                resp = self._any_call(
                    "ledger read",
                    self.ddb.batch_get_item,
                    RequestItems={self.table: {"Keys": left}},
                )
                got = resp.get("Responses", {}).get(self.table, [])
                items.extend(LedgerItem.from_item(i) for i in got)
                left = resp.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if not left:
                    break
            for k in left:
                item = self.get(k["pk"]["S"], k["sk"]["S"])
                if item is not None:
                    items.append(item)
        return items

    def scan_items(self) -> list[LedgerItem]:
        """Every item (status views; the table holds one item per job)."""
        items: list[LedgerItem] = []
        kwargs: dict[str, Any] = {}
        while True:
            resp = self._call("ledger scan", self.ddb.scan, **kwargs)
            items.extend(LedgerItem.from_item(i) for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
