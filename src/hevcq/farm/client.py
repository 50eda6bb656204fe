"""The farm as its clients see it: one object, built once, that owns the adapters.

``build_worker`` wires a worker from settings; ``Farm`` is its twin for everything that
uses a farm from outside (the CLI, an ingest's round trip, the dashboard and the API). It
is built from settings for a configured farm (``Farm.configured``) or from a running
embedded farm's address and key pair (``Farm.embedded``), and it is the only thing that
touches the clients: the bucket (``store``), the ledger (``ledger``), the queues' depths,
dead letters and redrives, the running jobs and the results queue. Like kombu's SQS
``Channel``, it builds and owns its client, and queue administration is its methods.

Whatever botocore raises from a queue call leaves here as one of hevcq's errors
(``hevcq.aws.clients.classify``), so no caller needs to know botocore.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from hevcq.aws.clients import SETUP_ERRORS, Clients, classified, setup_mistake
from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.provision import resolve
from hevcq.aws.s3 import S3Store
from hevcq.aws.sqs import (
    ATTR_CLASS,
    ATTR_REASON,
    SqsInbox,
    counts,
    move,
    peek,
    start_move_task,
)
from hevcq.credentials import EMBEDDED_REGION, Credentials, embedded_env
from hevcq.errors import ConfigError, FailureClass
from hevcq.jobs import DeadLetter, QueueDepth, RunningJob, running_jobs
from hevcq.ledger import LedgerItem
from hevcq.pools import Pool
from hevcq.settings import Settings
from hevcq.topology import FarmRefs, PoolRefs


class Farm:
    """A farm to use from outside: its adapters, its queues and its ledger."""

    def __init__(
        self,
        clients: Clients,
        refs: FarmRefs,
        *,
        label: str,
        move_clients: Clients | None = None,
    ) -> None:
        self.refs = refs
        self.label = label
        self.store = S3Store(clients.s3, refs.bucket)
        self.ledger = DynamoLedger(clients.dynamodb, refs.ledger_table)
        self._sqs = clients.sqs
        # No retries: an endpoint without move tasks is detected at once.
        self._move_sqs = (move_clients or clients.with_retries(1)).sqs

    @classmethod
    def configured(cls, settings: Settings, pools: dict[str, Pool]) -> Farm:
        """The farm the settings name. A settings mistake raises ``ConfigError``; a farm
        that cannot be reached or found raises ``FarmConfigError`` saying what to set."""
        try:
            clients = Clients.create(region=settings.region)
            refs = resolve(clients, settings, pools, clients.region)
            move_clients = Clients.create(region=settings.region, retries=1)
        except ConfigError:
            raise
        except SETUP_ERRORS as exc:
            raise setup_mistake(exc) from exc
        return cls(clients, refs, label=f"farm {settings.bucket}", move_clients=move_clients)

    @classmethod
    def embedded(cls, endpoint: str, refs: FarmRefs, credentials: Credentials) -> Farm:
        """A running embedded farm, reached at ``endpoint`` with its run's key pair.

        The pair goes into this process's environment, as the embedded farm itself sets
        it: presigning clients read it there.
        """
        os.environ.update(embedded_env(credentials))
        clients = Clients.create(region=EMBEDDED_REGION, endpoint_url=endpoint)
        move_clients = Clients.create(region=EMBEDDED_REGION, endpoint_url=endpoint, retries=1)
        return cls(clients, refs, label=f"embedded farm at {endpoint}", move_clients=move_clients)

    @classified("queue depths")
    def depths(self) -> list[QueueDepth]:
        """Per pool: visible, in flight, delayed and dead-lettered messages."""
        rows = []
        for pool, pr in sorted(self.refs.pools.items()):
            q, d = counts(self._sqs, pr.queue_url), counts(self._sqs, pr.dlq_url)
            rows.append(
                QueueDepth(
                    pool=pool,
                    visible=q.get("ApproximateNumberOfMessages", 0),
                    in_flight=q.get("ApproximateNumberOfMessagesNotVisible", 0),
                    delayed=q.get("ApproximateNumberOfMessagesDelayed", 0),
                    dead_letters=sum(d.values()),
                )
            )
        return rows

    def items(self) -> list[LedgerItem]:
        """Every ledger item: the one read every view of the farm's jobs starts from."""
        return self.ledger.scan_items()

    def running(
        self, jobs: Iterable[tuple[str, str]], now: float | None = None
    ) -> list[RunningJob]:
        """Which of these (source key, pool) jobs some worker holds right now, the longest
        running first, read by key.

        A run's own view names its jobs rather than scanning: a scan reads every job the
        ledger ever held, and on the embedded farm it costs about 1.5 ms of CPU per item.
        """
        return running_jobs(self.ledger.get_many(jobs), time.time() if now is None else now)

    @classified("reading dead letters")
    def dead_letters(self, pool: str, *, limit: int = 100, wait_s: int = 1) -> list[DeadLetter]:
        """A pool's dead-letter messages with class and reason; they stay in the queue."""
        return [
            DeadLetter(
                m.message_id,
                m.attributes.get(ATTR_CLASS, "unknown (moved by the redrive policy)"),
                m.attributes.get(ATTR_REASON, "received too many times without finishing"),
                m.body,
            )
            for m in peek(self._sqs, self.refs.pools[pool].dlq_url, limit=limit, wait_s=wait_s)
        ]

    @classified("redrive")
    def redrive(
        self, pools: list[str] | None = None, failure_class: FailureClass | None = None
    ) -> dict[str, int | str]:
        """Redrive the dead letters of the given pools (all by default): with a move task
        where the endpoint has them, one by one otherwise or for one class only."""
        done: dict[str, int | str] = {}
        for pool in pools or sorted(self.refs.pools):
            pr = self.refs.pools[pool]
            if failure_class is None and start_move_task(self._move_sqs, pr.dlq_url, pr.queue_url):
                done[pool] = "move task started"
                continue
            done[pool] = self._redrive_one_by_one(pr, failure_class)
        return done

    def _redrive_one_by_one(self, pr: PoolRefs, failure_class: FailureClass | None) -> int:
        wanted = None if failure_class is None else failure_class.value
        return move(
            self._sqs,
            pr.dlq_url,
            pr.queue_url,
            lambda m: wanted is None or m.attributes.get(ATTR_CLASS) == wanted,
        )

    @classified("redrive")
    def redrive_message(self, pool: str, message_id: str) -> bool:
        """Move one dead letter back to its queue (send, then delete); False when it is
        not there."""
        pr = self.refs.pools[pool]
        moved = move(
            self._sqs,
            pr.dlq_url,
            pr.queue_url,
            lambda m: m.message_id == message_id,
            first_only=True,
            wait_s=0,
        )
        return moved == 1

    def results_inbox(self) -> SqsInbox:
        """The results queue, for its one consumer (``hevcq.library.results.drain``)."""
        return SqsInbox(self._sqs, self.refs.results_queue_url)
