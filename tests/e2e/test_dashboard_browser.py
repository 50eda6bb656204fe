"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

During a run it shows a real worker's job percent rising with its fps, speed and ETA, a failed
job's reason (and its page), and dead letters grouped by class that leave the dead-letter queue
once redriven from the page (one message, then the class), after a confirmation that can be
declined. /docs renders, and nothing is loaded
from anywhere but the server. Without a farm the page says so. Screenshots go to
``artifacts/screenshots/`` (ignored by git) and to the test's tmp folder.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from hevcq.aws.ledger import DynamoLedger
from hevcq.farm.embedded import EmbeddedFarm
from hevcq.ledger import Claimed, JobKey
from hevcq.media.samples import make_clip
from hevcq.web.app import WebConfig
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.server import ServerThread
from tests.e2e.conftest import IN_CI
from tests.e2e.farmkit import WorkerProc, pool_dir, stack, wait_for
from tests.e2e.webkit import LOCAL_TOKEN, served, signed_in

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
RUNNING_KEY = "TODO/long-film.mov"
NOT_VIDEOS = ("TODO/notes.mp4", "TODO/memo.mp4")


def _chromium() -> Path:
    if not CHROMIUM.is_file():
        if IN_CI:
            pytest.fail("chromium is required in CI (`make test` installs it when CI is set)")
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`)")
    return CHROMIUM


@contextmanager
def encoding(farm: EmbeddedFarm, tmp_path: Path) -> Iterator[WorkerProc]:
    """A real 720p worker encoding a 30 s clip at the real preset, caught while it runs.

    Stopped on the way out: the job is released (interrupted), nothing else changes.
    """
    assert farm.clients is not None
    assert farm.refs is not None
    clip = make_clip(tmp_path / "long-film.mov", width=1280, height=720, seconds=30.0)
    farm.clients.s3.upload_file(str(clip), farm.refs.bucket, RUNNING_KEY)
    # No grace on the way out: the encode is cancelled at once, however close to its end
    # a busy machine makes it look (with the default 60 s, the worker may rightly wait).
    worker = WorkerProc(farm, "720p", tmp_path / "w720.log", progress_every_s=1, shutdown_grace_s=0)
    ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
    try:

        def started() -> bool:
            # No item yet, or one whose progress is not yet known (None), has not started.
            item = ledger.get(RUNNING_KEY, "720p")
            return item is not None and (item.progress or 0) > 0

        assert wait_for(started, timeout_s=120, every_s=0.25), "the encode never reported progress"
        yield worker
    finally:
        worker.proc.terminate()
        worker.proc.wait(timeout=60)


@pytest.fixture
def failed_run(tmp_path: Path) -> Iterator[tuple[EmbeddedFarm, str]]:
    """A farm whose worker has dead-lettered two files that are not videos, then stopped."""
    workers = pool_dir(tmp_path, ("hevc", "720p"))
    doc = yaml.safe_load((workers / "720p.yaml").read_text())
    doc["encode"]["preset"] = "medium"  # long enough to be watched encoding
    (workers / "720p.yaml").write_text(yaml.safe_dump(doc))
    with stack(tmp_path, workers) as farm:
        assert farm.clients is not None
        assert farm.refs is not None
        worker = WorkerProc(farm, "hevc", tmp_path / "w.log")
        try:
            for key in NOT_VIDEOS:
                farm.clients.s3.put_object(
                    Bucket=farm.refs.bucket, Key=key, Body=b"not a video at all"
                )
            ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)

            def all_failed() -> bool:
                found = {getattr(ledger.get(k, "hevc"), "state", None) for k in NOT_VIDEOS}
                return found == {"failed"}

            assert wait_for(all_failed, timeout_s=120, every_s=0.5)
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


NUMBER = r"^\d+(\.\d+)?"


def _local_only(page, url: str) -> list[str]:
    """Requests for anything not on ``url`` are refused and listed (there is no network)."""
    elsewhere: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith((url, "data:")):
            r.continue_()
        else:
            elsewhere.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return elsewhere


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
    assert wait_for(lambda: _dlq_size(farm) == 2, timeout_s=30)
    with served(farm) as url, encoding(farm, tmp_path), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            elsewhere = _local_only(page, url)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(signed_in(url))
            _shot(page, tmp_path, "dashboard-loaded")
            # The run's token left the address bar (and so history) for the tab's storage.
            assert "token" not in page.url
            row = page.locator("#running tr[data-job]").first
            pct = row.locator(".pct")
            pct.wait_for(timeout=15_000)
            assert errors == []
            first = float(pct.inner_text().rstrip("%"))
            deadline = time.monotonic() + 15
            while float(pct.inner_text().rstrip("%")) <= first and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            assert float(pct.inner_text().rstrip("%")) > first
            # ffmpeg's rates as the worker records them, and the time left.
            sync_api.expect(row.locator(".fps")).to_have_text(re.compile(NUMBER), timeout=15_000)
            sync_api.expect(row.locator(".speed")).to_have_text(re.compile(NUMBER + "x$"))
            sync_api.expect(row.locator(".eta")).to_have_text(re.compile(NUMBER + " (s|min)$"))
            sync_api.expect(row.locator(".step")).to_have_text("")  # encoding: the percent

            # A job searching its CRF says so, where its percent stays at 0 for minutes.
            searched = JobKey("TODO/searched.mov", "hevc", "e9", "h9")
            ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
            held = ledger.claim(searched, "w-search", "m9", lease_s=600)
            assert isinstance(held, Claimed)
            lease = ledger.renew(held.lease, {"step": "searching", "step_at": time.time()})
            searching = page.locator(f"#running tr[data-job='{searched.job_id}'] .step")
            sync_api.expect(searching).to_have_text("searching", timeout=30_000)
            # and which probe of its search is under way
            ledger.renew(lease, {"step": "searching", "probe": 2})
            sync_api.expect(searching).to_have_text("searching, probe 2", timeout=30_000)

            failed_row = page.locator("#recent tr.state-failed").first
            failed_row.wait_for(timeout=15_000)
            assert reason in failed_row.locator(".reason").inner_text()
            # Dead letters grouped by pool and failure class.
            group = page.locator(".dlq-group[data-pool=hevc][data-class=permanent]")
            group.wait_for(timeout=15_000)
            assert "notes.mp4" in group.inner_text()
            assert "memo.mp4" in group.inner_text()
            _shot(page, tmp_path, "dashboard-running-and-failed")

            asked: list[str] = []

            def answer(accept: bool):  # a one-off dialog handler that notes the question
                def handle(dialog) -> None:
                    asked.append(dialog.message)
                    dialog.accept() if accept else dialog.dismiss()

                return handle

            # One message. Declined first: nothing moves.
            one = group.locator("li", has_text="notes.mp4").locator(".redrive-one")
            page.once("dialog", answer(False))
            one.click()
            page.wait_for_timeout(1500)
            assert asked == ["Send TODO/notes.mp4 back to hevc?"]
            assert _dlq_size(farm) == 2

            # The hevc queue also heard of the clip being encoded (every pool hears of
            # every upload) and has no worker: each redriven message is one more there.
            waiting = _dlq_size(farm, "queue_url")
            page.once("dialog", answer(True))
            one.click()
            sync_api.expect(group.locator("li")).to_have_count(1, timeout=15_000)
            assert "memo.mp4" in group.inner_text()
            assert _dlq_size(farm) == 1
            assert _dlq_size(farm, "queue_url") == waiting + 1

            # The rest of the class.
            page.once("dialog", answer(True))
            group.locator(".redrive-class").click()
            # The 720p worker dead-lettered both too: only the hevc group goes.
            group.wait_for(state="detached", timeout=15_000)
            assert asked[1:] == [
                "Send TODO/notes.mp4 back to hevc?",
                "Send every permanent dead letter of hevc back to its queue?",
            ]
            assert page.locator(".dlq-group[data-pool='720p']").count() == 1
            assert _dlq_size(farm) == 0
            assert _dlq_size(farm, "queue_url") == waiting + 2
            _shot(page, tmp_path, "dashboard-after-redrive")

            # The failed job's own page: its reason and its tries.
            page.locator("#recent tr.state-failed a").first.click()
            facts = page.locator("#facts")
            facts.wait_for(timeout=15_000)
            assert reason in facts.inner_text()
            assert "attempts" in facts.inner_text()
            _shot(page, tmp_path, "job-page")

            # The API's own documentation renders, its script served by the server too.
            # Swagger UI's script is large: on a loaded 2-core machine its first render
            # took over 15 s once.
            page.goto(f"{url}/docs")
            page.get_by_text("/api/uploads").first.wait_for(timeout=45_000)
            page.get_by_text("job-result").first.wait_for(timeout=15_000)
            assert elsewhere == []
            assert errors == []
        finally:
            browser.close()


def test_without_a_farm_the_page_says_so(tmp_path: Path) -> None:
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    reason = "no farm configured (HEVCQ_BUCKET unset) and no embedded farm running"
    auth = Authenticator(AuthConfig(local_token=LOCAL_TOKEN))
    config = WebConfig(None, auth, no_farm_reason=reason)
    with ServerThread(config) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 600})
            elsewhere = _local_only(page, server.url)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(signed_in(server.url))
            banner = page.locator("#banner")
            sync_api.expect(banner).to_have_text(f"No farm to show: {reason}", timeout=15_000)
            _shot(page, tmp_path, "dashboard-no-farm")
            assert (errors, elsewhere) == ([], [])
        finally:
            browser.close()


# A library file named so that it shows as "invoice4pm.jpg" (and reverses the text after it).
BIDI_KEY = "TODO/invoice\u202egpj.mp4"


def test_a_name_with_a_bidi_override_is_shown_escaped_not_reordered(tmp_path: Path) -> None:
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with stack(tmp_path, pool_dir(tmp_path, ("hevc",))) as farm:
        assert farm.clients is not None
        assert farm.refs is not None
        worker = WorkerProc(farm, "hevc", tmp_path / "w.log")
        try:
            farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=BIDI_KEY, Body=b"no video")
            ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
            failed = lambda: getattr(ledger.get(BIDI_KEY, "hevc"), "state", None) == "failed"  # noqa: E731
            assert wait_for(failed, timeout_s=120, every_s=0.5)
        finally:
            worker.proc.terminate()
            worker.proc.wait(timeout=60)
        with served(farm) as url, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(signed_in(url))
                row = page.locator("#recent tr.state-failed").first
                row.wait_for(timeout=15_000)
                group = page.locator(".dlq-group[data-pool=hevc]")
                group.wait_for(timeout=15_000)
                for shown_text in (row.inner_text(), group.inner_text()):
                    assert "invoice\\u202egpj.mp4" in shown_text, shown_text
                    assert "\u202e" not in shown_text
                row.locator("a").first.click()
                title = page.locator("h2").first
                title.wait_for(timeout=15_000)
                assert title.inner_text() == "TODO/invoice\\u202egpj.mp4 · hevc"
                _shot(page, tmp_path, "job-page-bidi-name")
                assert errors == []
            finally:
                browser.close()
