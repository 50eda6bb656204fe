"""The live view: a line per running job, overall totals, names as text, plain off a tty."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from hevcq.cli.live import LiveView, Totals, job_cells, overall_line
from hevcq.library.results import Fetched
from hevcq.messages import JobResult
from hevcq.ops import RunningJob

NAME = "odd [x]/take [/x].mp4"
JOB = RunningJob(f"TODO/{NAME}", "hevc", "w1", 25.0, 30.0, fps=48.0, speed=2.0)


def _done(rel: str) -> Fetched:
    r = JobResult(job_id="j", pool="hevc", bucket="b", source_key=f"TODO/{rel}", outcome="done",
                  input_bytes=4 * 1024**2, output_bytes=1024**2)  # fmt: skip
    return Fetched(rel, "hevc", "placed", path=Path("/out") / rel, result=r)


def test_a_running_job_shows_file_pool_percent_fps_speed_and_eta() -> None:
    assert job_cells(JOB) == (NAME, "hevc", "25%", "48 fps", "2.00x", "1m30s")
    assert job_cells(RunningJob("TODO/a.mp4", "hevc", "w", 0.0, 1.0))[3:] == ("-", "-", "?")


def test_overall_line_counts_jobs_bytes_saved_and_the_library_eta() -> None:
    t = Totals(jobs_done=2, jobs_total=6, bytes_in=8 * 1024**2, bytes_out=2 * 1024**2,
               elapsed_s=60.0)  # fmt: skip
    assert overall_line(t) == (
        "jobs 2/6, in 8.0 MiB -> out 2.0 MiB, saved 6.0 MiB, about 2m00s left"
    )


def test_the_terminal_view_redraws_jobs_and_totals_and_prints_names_as_text() -> None:
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    view = LiveView(console, lambda: [JOB], jobs_total=3)
    view.begin(3, 300)
    view.tick()
    view.result(_done(NAME))
    screen = Console(record=True, width=100, force_terminal=True, color_system=None)
    screen.print(view.renderable())
    view.end()
    printed, shown = console.export_text(), screen.export_text()
    print(shown)
    assert f"placed {NAME} [hevc] -> /out/{NAME}" in printed
    assert shown.splitlines()[1].split() == [*NAME.split(), "hevc", "25%", "48", "fps", "2.00x",
                                             "1m30s"]  # fmt: skip
    assert "jobs 1/3, in 4.0 MiB -> out 1.0 MiB, saved 3.0 MiB" in shown


def test_off_a_terminal_the_view_prints_plain_lines() -> None:
    console = Console(record=True, width=300, force_terminal=False)
    view = LiveView(console, lambda: [JOB], jobs_total=3)
    view.begin(3, 300)
    view.tick()
    view.result(_done(NAME))
    view.end()
    text = console.export_text()
    assert "uploading 3 files" in text
    assert f"jobs 0/3, in 0 B -> out 0 B; running: {NAME} hevc 25% 48 fps 2.00x 1m30s" in text
    assert f"placed {NAME} [hevc] -> /out/{NAME}" in text
    assert "\x1b[" not in text
