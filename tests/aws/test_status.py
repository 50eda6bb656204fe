"""Status views: queue depths, running jobs with progress and age, totals per state."""

from __future__ import annotations

from hevcq.aws.ledger import DynamoLedger
from hevcq.farm.client import Farm
from hevcq.ledger import JobKey, State
from hevcq.web.view import FarmView
from tests.aws.conftest import MotoFarm


def test_queue_depths_count_visible_in_flight_and_dead_letters(moto_farm: MotoFarm) -> None:
    sqs, pools = moto_farm.clients.sqs, moto_farm.refs.pools
    for pr in pools.values():
        sqs.purge_queue(QueueUrl=pr.queue_url)
    sqs.send_message(QueueUrl=pools["hevc"].queue_url, MessageBody="a")
    sqs.send_message(QueueUrl=pools["hevc"].queue_url, MessageBody="b")
    sqs.receive_message(QueueUrl=pools["hevc"].queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
    sqs.send_message(QueueUrl=pools["720p"].dlq_url, MessageBody="c")
    rows = {d.pool: d for d in Farm(moto_farm.clients, moto_farm.refs, label="t").depths()}
    assert (rows["hevc"].visible, rows["hevc"].in_flight, rows["hevc"].dead_letters) == (1, 1, 0)
    assert rows["720p"].dead_letters == 1
    assert rows["1080p"].visible == 0


def test_ledger_view_lists_running_jobs_and_totals(moto_farm: MotoFarm) -> None:
    now = [10_000.0]
    ledger = DynamoLedger(
        moto_farm.clients.dynamodb, moto_farm.refs.ledger_table, clock=lambda: now[0]
    )
    a = JobKey("TODO/a.mp4", "hevc", "e", "h")
    b = JobKey("TODO/b.mp4", "hevc", "e", "h")
    c = JobKey("TODO/c.mp4", "720p", "e", "h")
    leases = {job: ledger.claim(job, "w1", "m", lease_s=300).lease for job in (a, b, c)}
    now[0] += 100
    ledger.renew(leases[a], {"progress": 37.5, "step": "encoding"})
    ledger.renew(leases[c], {"step": "searching", "probe": 2})
    ledger.finish(leases[b], State.DONE, {})
    report = FarmView(Farm(moto_farm.clients, moto_farm.refs, label="t")).status(now=now[0])
    running = report.running
    totals = {(t.pool, t.state): t.jobs for t in report.totals}
    assert sorted((r.key, r.pool, r.progress, round(r.age_s)) for r in running) == [
        ("TODO/a.mp4", "hevc", 37.5, 100),
        ("TODO/c.mp4", "720p", 0.0, 100),
    ]
    assert totals == {("hevc", "running"): 1, ("hevc", "done"): 1, ("720p", "running"): 1}
    assert {r.key: r.step for r in running} == {"TODO/a.mp4": "encoding", "TODO/c.mp4": "searching"}
    # DynamoDB's number comes back as the probe's number
    assert {r.key: r.done for r in running}["TODO/c.mp4"] == "searching, probe 2"
