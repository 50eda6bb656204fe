"""The live view: a line per running job, overall totals, names as text, plain off a tty."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hevcq.cli.live import LiveView, Totals, job_cells, job_weights, jobs_table, overall_line
from hevcq.jobs import RunningJob
from hevcq.library.estimate import JobWork
from hevcq.library.results import Fetched
from hevcq.messages import JobResult

NAME = "odd [x]/take [/x].mp4"
JOB = RunningJob(
    key=f"TODO/{NAME}", pool="hevc", worker="w1", progress=25.0, age_s=30.0, fps=48.0, speed=2.0
)


def _done(rel: str) -> Fetched:
    r = JobResult(
        job_id="j",
        pool="hevc",
        bucket="b",
        source_key=f"TODO/{rel}",
        outcome="done",
        input_bytes=4 * 1024**2,
        output_bytes=1024**2,
    )
    return Fetched(rel, "hevc", "placed", path=Path("/out") / rel, result=r)


def test_a_running_job_shows_file_pool_percent_fps_speed_and_eta() -> None:
    assert job_cells(JOB) == (NAME, "hevc", "25%", "48 fps", "2.00x", "1m30s")
    assert job_cells(
        RunningJob(key="TODO/a.mp4", pool="hevc", worker="w", progress=0.0, age_s=1.0)
    )[3:] == ("-", "-", "?")


def test_a_job_searching_its_crf_says_so_rather_than_0_percent() -> None:
    searching = RunningJob(
        key="TODO/a.mp4", pool="hevc", worker="w", progress=0.0, age_s=90.0, step="searching"
    )
    assert job_cells(searching)[2:] == ("searching", "-", "-", "?")
    encoding = searching.model_copy(update={"step": "encoding", "progress": 40.0})
    assert job_cells(encoding)[2] == "40%"
    verifying = searching.model_copy(update={"step": "verifying", "progress": 100.0})
    assert job_cells(verifying)[2:] == ("verifying", "-", "-", "?")


def test_overall_line_counts_jobs_bytes_and_the_library_eta() -> None:
    t = Totals(
        jobs_done=2, jobs_total=6, bytes_in=8 * 1024**2, bytes_out=2 * 1024**2, elapsed_s=60.0
    )
    assert overall_line(t) == ("jobs 2/6, in 8.0 MiB -> out 2.0 MiB (all pools), about 2m00s left")


def test_the_terminal_view_redraws_jobs_and_totals_and_prints_names_as_text() -> None:
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    view = LiveView(console, lambda _: [JOB], jobs_total=3)
    view.begin(3, 300)
    view.tick([(JOB.key, JOB.pool)])
    view.result(_done(NAME))
    screen = Console(record=True, width=100, force_terminal=True, color_system=None)
    screen.print(view.renderable())
    view.end()
    printed, shown = console.export_text(), screen.export_text()
    print(shown)
    assert f"placed {NAME} [hevc] -> /out/{NAME}" in printed
    assert shown.splitlines()[1].split() == [
        *NAME.split(),
        "hevc",
        "25%",
        "48",
        "fps",
        "2.00x",
        "1m30s",
    ]
    assert "jobs 1/3, in 4.0 MiB -> out 1.0 MiB (all pools)" in shown


def test_off_a_terminal_the_view_prints_plain_lines() -> None:
    console = Console(record=True, width=300, force_terminal=False)
    view = LiveView(console, lambda _: [JOB], jobs_total=3)
    view.begin(3, 300)
    view.tick([(JOB.key, JOB.pool)])
    view.result(_done(NAME))
    view.end()
    text = console.export_text()
    assert "uploading 3 files" in text
    assert (
        f"jobs 0/3, in 0 B -> out 0 B (all pools); running: {NAME} hevc 25% 48 fps 2.00x 1m30s"
        in text
    )
    assert f"placed {NAME} [hevc] -> /out/{NAME}" in text
    assert "\x1b[" not in text


def test_a_files_input_counts_once_however_many_pools_bring_it_home() -> None:
    view = LiveView(
        Console(record=True, width=300, force_terminal=False), lambda _: [], jobs_total=3
    )
    view.begin(1, 4 * 1024**2)
    for pool in ("hevc", "720p", "1080p"):
        f = _done(NAME)
        view.result(dataclasses.replace(f, pool=pool))
    view.end()
    totals = view.totals()
    assert (totals.jobs_done, totals.bytes_in, totals.bytes_out) == (3, 4 * 1024**2, 3 * 1024**2)


def test_at_60_columns_each_running_job_is_one_line_with_its_name_s_end() -> None:
    long = RunningJob(
        key=f"TODO/holiday/2026 summer in the mountains/{'x' * 40}_HDR.mp4",
        pool="hevc",
        worker="w",
        progress=25.0,
        age_s=30.0,
        fps=48.0,
        speed=2.0,
    )
    screen = Console(record=True, width=60, force_terminal=True, color_system=None)
    screen.print(jobs_table([long, JOB], 60))
    lines = screen.export_text().splitlines()
    assert len(lines) == 3  # the header and one line per job
    assert all(len(ln) <= 60 for ln in lines)
    assert "_HDR.mp4" in lines[1]
    assert "fps" not in lines[0]


def test_the_time_left_is_weighed_by_work_so_a_film_is_not_one_job_among_clips() -> None:
    """Nine one-minute clips home and a two-hour film a quarter encoded: by the count of
    jobs the run is nine tenths done; by their work, about a fifth."""
    film = ("TODO/film.mkv", "hevc")
    clips = [(f"TODO/clip{i}.mp4", "hevc") for i in range(9)]
    work: dict[tuple[str, str], JobWork | None] = {
        film: JobWork(7200.0),
        **{c: JobWork(60.0) for c in clips},
    }
    running = RunningJob(key=film[0], pool="hevc", worker="w", progress=25.0, age_s=600.0)
    view = LiveView(
        Console(record=True, width=300, force_terminal=False), lambda _: [running], 10, work
    )
    view.tick([film])
    for c in clips:
        view.result(dataclasses.replace(_done(c[0][5:]), pool="hevc"))
    view._started -= 1000.0  # the run began 1000 s ago
    t = view.totals()
    assert t.jobs_done == 9
    assert t.work_total == pytest.approx(7740.0)
    assert t.work_done == pytest.approx(540.0 + 1800.0)
    assert t.eta_s == pytest.approx(1000.0 * (7740.0 - 2340.0) / 2340.0, rel=0.01)
    by_count = dataclasses.replace(t, work_total=0.0)
    assert by_count.eta_s == pytest.approx(1000.0 / 9, rel=0.01)
    # A result counts once, even while its job still shows as running.
    view.result(dataclasses.replace(_done("film.mkv"), pool="hevc"))
    assert view.totals().work_done == pytest.approx(7740.0)
    assert view.totals().eta_s is None


def test_a_jobs_unknown_work_weighs_the_mean_of_the_known_and_all_unknown_weigh_one() -> None:
    known = {("a", "hevc"): JobWork(10.0), ("b", "hevc"): JobWork(6.0, search=4.0, score=20.0)}
    assert job_weights({**known, ("c", "hevc"): None}) == {**known, ("c", "hevc"): JobWork(20.0)}
    assert job_weights({("a", "hevc"): None, ("b", "720p"): None}) == {
        ("a", "hevc"): JobWork(1.0),
        ("b", "720p"): JobWork(1.0),
    }


def test_a_quality_jobs_search_and_score_count_in_the_time_left() -> None:
    """A job whose pool has a quality target: its search's probes count as they go, its
    encode by its percent, and its score until its result is home. Found by an ingest
    of one 4-minute clip with a target: the search took 7 minutes, and the run read
    'about 3h50m left' at the encode's 3 % (its whole work was the encode's), then showed
    no time left at all for the 3.5 minutes the output was being scored."""
    ref = ("TODO/a.mp4", "qhevc")
    work = {ref: JobWork(300.0, search=150.0, score=300.0)}
    job = RunningJob(key=ref[0], pool=ref[1], worker="w", progress=0.0, age_s=1.0)
    view = LiveView(Console(record=True, width=300, force_terminal=False), lambda _: [], 1, work)

    def done(**kw: Any) -> float:
        view._jobs = [job.model_copy(update=kw)]
        return view.totals().work_done

    assert view.totals().work_total == pytest.approx(750.0)
    assert done(step="searching", probe=1) == 0.0
    assert done(step="searching", probe=3) == pytest.approx(100.0)
    assert done(step="searching", probe=6) == pytest.approx(150.0)  # more probes than thought
    # The probe under way counts by how much of it is done: no time left that grows
    # while a long source's probe runs.
    assert done(step="searching", probe=2, probe_done=50.0) == pytest.approx(75.0)
    assert done(step="searching", probe=1, probe_done=100.0) == pytest.approx(50.0)
    assert done(step="searching", probe=3, probe_done=400.0) == pytest.approx(150.0)
    assert done(step="encoding", progress=3.0) == pytest.approx(159.0)
    assert done(step="verifying", progress=100.0) == pytest.approx(450.0)
    view._started -= 900.0  # 900 s in, the output being scored: 300 s of work left
    assert view.totals().eta_s == pytest.approx(900.0 * 300.0 / 450.0, rel=0.01)
