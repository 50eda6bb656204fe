"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

During a run it shows a job's percent rising, a failed job's reason, and a dead letter
that leaves the dead-letter queue once redriven from the page. Screenshots go to
``artifacts/screenshots/`` (ignored by git) and to the test's tmp folder.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hevcq.aws.embedded import EmbeddedFarm
from hevcq.aws.ledger import DynamoLedger
from hevcq.ledger import Claimed, JobKey, Lease
from tests.e2e.conftest import IN_CI
from tests.e2e.farmkit import WorkerProc, pool_dir, stack, wait_for
from tests.e2e.webkit import served

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
RUNNING_KEY = "TODO/long-film.mov"


def _chromium() -> Path:
    if not CHROMIUM.is_file():
        if IN_CI:
            pytest.fail("chromium is required in CI (`make test` installs it when CI is set)")
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`)")
    return CHROMIUM


class FakeProgress:
    """A job held the way a worker holds it, its progress rising with each renewal."""

    def __init__(self, farm: EmbeddedFarm) -> None:
        assert farm.clients is not None
        assert farm.refs is not None
        self.ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
        self.job = JobKey(RUNNING_KEY, "hevc", "e1", "h")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.lease: Lease | None = None

    def _run(self) -> None:
        pct = 5.0
        while not self.stop.wait(0.5) and pct < 95:
            pct += 0.5  # slow enough to still be rising when a slow browser first looks
            assert self.lease is not None
            self.lease = self.ledger.renew(self.lease, {"progress": pct})

    def __enter__(self) -> FakeProgress:
        claim = self.ledger.claim(self.job, "browser-test-worker", "m-running", 600)
        assert isinstance(claim, Claimed)
        self.lease = claim.lease
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def failed_run(tmp_path: Path) -> Iterator[tuple[EmbeddedFarm, str]]:
    """A farm whose worker has dead-lettered a file that is not a video, then stopped."""
    with stack(tmp_path, pool_dir(tmp_path)) as farm:
        assert farm.clients is not None
        assert farm.refs is not None
        worker = WorkerProc(farm, "hevc", tmp_path / "w.log")
        try:
            farm.clients.s3.put_object(
                Bucket=farm.refs.bucket, Key="TODO/notes.mp4", Body=b"not a video at all"
            )
            ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
            item = lambda: ledger.get("TODO/notes.mp4", "hevc")  # noqa: E731
            failed = lambda: getattr(item(), "state", None) == "failed"  # noqa: E731
            assert wait_for(failed, timeout_s=120, every_s=0.5)
        finally:
            # Stopped, so a redriven message waits in the queue instead of failing again.
            worker.proc.terminate()
            worker.proc.wait(timeout=60)
        reason = str(getattr(ledger.get("TODO/notes.mp4", "hevc"), "reason", ""))
        yield farm, reason


def _dlq_size(farm: EmbeddedFarm, queue: str = "dlq_url") -> int:
    assert farm.clients is not None
    assert farm.refs is not None
    url = getattr(farm.refs.pools["hevc"], queue)
    attrs = farm.clients.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    return path


def test_the_dashboard_follows_a_run_and_redrives_a_dead_letter(
    failed_run: tuple[EmbeddedFarm, str], tmp_path: Path
) -> None:
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    farm, reason = failed_run
    assert wait_for(lambda: _dlq_size(farm) == 1, timeout_s=30)
    with served(farm) as url, FakeProgress(farm), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)
            _shot(page, tmp_path, "dashboard-loaded")
            pct = page.locator("#running tr[data-job] .pct").first
            pct.wait_for(timeout=15_000)
            assert errors == []
            first = float(pct.inner_text().rstrip("%"))
            deadline = time.monotonic() + 15
            while float(pct.inner_text().rstrip("%")) <= first and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            assert float(pct.inner_text().rstrip("%")) > first

            failed_row = page.locator("#recent tr.state-failed").first
            failed_row.wait_for(timeout=15_000)
            assert reason in failed_row.locator(".reason").inner_text()
            group = page.locator(".dlq-group[data-pool=hevc]")
            group.wait_for(timeout=15_000)
            assert "notes.mp4" in group.inner_text()
            _shot(page, tmp_path, "dashboard-running-and-failed")

            page.on("dialog", lambda dialog: dialog.accept())
            group.locator(".redrive-one").first.click()
            page.locator("#dlq p.muted").wait_for(timeout=15_000)  # "none"
            assert _dlq_size(farm) == 0
            assert _dlq_size(farm, "queue_url") == 1
            _shot(page, tmp_path, "dashboard-after-redrive")
        finally:
            browser.close()
