"""Mistakes are one line, exit 2, before any farm starts; never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hevcq import __version__ as hevcq_version
from hevcq.library.catalog import RunLock
from hevcq.media.samples import make_clip

pytestmark = pytest.mark.e2e


def hevcq(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "hevcq", *args],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=base
        | {"HOME": str(tmp / "home"), "XDG_STATE_HOME": str(tmp / "state"), "COLUMNS": "200"}
        | env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    make_clip(tmp_path / "lib" / "a.mp4", width=320, height=240, seconds=0.5)
    return tmp_path / "lib"


# Mistakes in the settings alone.
ENV_CASES = {
    "workers_zero": {"HEVCQ_SLOTS": "0"},
    "typo": {"HEVCQ_BUKET": "b"},
    "not_ffmpeg": {"HEVCQ_FFMPEG": "/bin/true"},
    "bad_value": {"HEVCQ_STALL_TIMEOUT_S": "soon"},
}


def _case(tmp: Path, lib: Path, setup: str) -> tuple[Path, Path, dict[str, str]]:
    target, out, env = lib, tmp / "out", ENV_CASES.get(setup, {})
    if setup == "out_is_file":
        out.write_text("not a folder")
    elif setup == "out_unwritable":
        (tmp / "plain").write_text("a file, not a folder")
        out = tmp / "plain" / "out"
    elif setup == "out_is_library":
        out = lib
    elif setup in ("empty", "no_videos"):
        target = tmp / setup
        target.mkdir()
        if setup == "no_videos":
            (target / "notes.txt").write_text("text")
    elif setup == "no_ffmpeg":
        env = {"HEVCQ_FFMPEG": str(tmp / "ffmpeg")}
    elif setup == "work_dir_unusable":
        (tmp / "plain").write_text("a file, not a folder")
        env = {"HEVCQ_WORK_DIR": str(tmp / "plain" / "work")}
    return target, out, env


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("out_is_file", "is a file; give a folder"),
        ("out_unwritable", "cannot write in"),
        # The next run took the outputs for sources: a 720p of the 1080p output.
        ("out_is_library", "is the library itself: outputs would be scanned as sources"),
        ("empty", "is empty"),
        ("no_videos", "holds no videos"),
        ("workers_zero", "HEVCQ_SLOTS=0: "),
        ("typo", "HEVCQ_BUKET (did you mean HEVCQ_BUCKET?)"),
        # The local workers refused to start and were restarted for ever: the run hung.
        ("no_ffmpeg", "ffmpeg binary not found or not executable"),
        ("not_ffmpeg", "/bin/true does not say it is ffmpeg"),
        # Every job failed after its download, and the file counted as failed for good.
        ("work_dir_unusable", "HEVCQ_WORK_DIR="),
        ("bad_value", "HEVCQ_STALL_TIMEOUT_S=soon: "),
    ],
)
# A dry run and `estimate` stand for the run: what would stop it they name the same way,
# where they used to report a run as fine that then stopped at once (an --out that is a
# file, an ffmpeg that is not one, a scratch folder that cannot be made).
@pytest.mark.parametrize("command", ["ingest", "dry-run", "estimate"])
def test_one_line_error_exit_2_and_no_farm(
    tmp_path: Path, lib: Path, setup, says, command: str
) -> None:
    target, out, env = _case(tmp_path, lib, setup)
    args = {
        "ingest": ["ingest", str(target), "--out", str(out)],
        "dry-run": ["ingest", str(target), "--out", str(out), "--dry-run"],
        "estimate": ["estimate", str(target), "--out", str(out)],
    }[command]
    r = hevcq(tmp_path, *args, **env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "embedded local farm" not in r.stdout
    assert not (tmp_path / "state" / "hevcq" / "runs").exists()
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert says in line


def test_a_setting_mistake_stops_every_command(tmp_path: Path) -> None:
    r = hevcq(tmp_path, "status", HEVCQ_BUKET="b")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "did you mean HEVCQ_BUCKET?" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_serve_on_a_taken_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = hevcq(tmp_path, "serve", "--port", str(port), "--state-dir", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}" in out
    assert "give another --port" in out
    assert "Traceback" not in out
    assert "Dashboard" not in out


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"HEVCQ_OIDC_ISSUER": "https://issuer.test/pool"}, "HEVCQ_OIDC_AUDIENCE is not set"),
        ({"HEVCQ_API_TOKEN": "x"}, "HEVCQ_API_TOKEN must have at least 32 characters"),
    ],
    ids=["oidc-without-audience", "short-token"],
)
def test_serve_refuses_credentials_that_let_in_too_much(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    done = hevcq(
        tmp_path,
        "serve",
        "--host",
        "0.0.0.0",  # noqa: S104
        "--port",
        "0",
        "--state-dir",
        str(tmp_path),
        **env,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out
    assert "Dashboard" not in out
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert says in line


NO_AWS_FILES = {
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}
KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-a-real-secret"}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "no AWS region: set HEVCQ_REGION"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "no AWS credentials: set AWS_PROFILE"),
        (
            {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9", **KEYS},
            "cannot reach the farm",
        ),
    ],
    ids=["no-region", "no-credentials", "unreachable"],
)
def test_a_cloud_set_up_mistake_is_one_line_on_stderr_and_exit_3(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    r = hevcq(tmp_path, "status", "--json", HEVCQ_BUCKET="media", **NO_AWS_FILES, **env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stdout == ""  # `status --json | jq` sees no error text
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert says in line


def test_a_farm_whose_resources_are_missing_is_exit_3(tmp_path: Path) -> None:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        r = hevcq(
            tmp_path,
            "dlq",
            HEVCQ_BUCKET="media",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            **NO_AWS_FILES,
            **KEYS,
        )
    finally:
        server.stop()
    assert r.returncode == 3, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "queue 'hevcq-results'" in line or "hevcq-" in line


def test_version_prints_hevcq_and_its_ffmpeg_one_line_each() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hevcq", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    hevcq_line, ffmpeg_line = r.stdout.splitlines()
    assert hevcq_line == f"hevcq {hevcq_version}"
    assert ffmpeg_line.startswith("ffmpeg n")
    assert r.stderr == ""


def test_an_unknown_log_level_is_refused_naming_the_levels(tmp_path: Path) -> None:
    r = hevcq(tmp_path, "status", HEVCQ_LOG_LEVEL="verbose")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "HEVCQ_LOG_LEVEL=verbose" in r.stderr
    assert "'debug', 'info', 'warning'" in r.stderr
    assert hevcq(tmp_path, "estimate", str(tmp_path), HEVCQ_LOG_LEVEL="WARNING").returncode != 4


def test_a_bad_max_bytes_is_a_usage_error(tmp_path: Path, lib: Path) -> None:
    r = hevcq(tmp_path, "estimate", str(lib), "--max-bytes", "12Q")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "internal error" not in r.stdout + r.stderr
    assert "not a size: '12Q'" in r.stderr


def test_a_second_run_bringing_results_home_to_one_library_is_refused(
    tmp_path: Path, lib: Path
) -> None:
    """Two ingests of one library each uploaded every file, took each other's upload
    records and failed results as orphaned. The lock goes with its holder's process, so
    the refusal ends the moment the holder does, however it ends (here: SIGKILL)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from hevcq.library.catalog import "
            "RunLock; lock = RunLock.take(Path(sys.argv[1]), 'hevcq ingest'); "
            "print('held', flush=True); time.sleep(120)",
            str(lib),
        ],
        env=os.environ | {"XDG_STATE_HOME": str(tmp_path / "state")},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        for args in (["ingest", str(lib)], ["ingest", str(lib), "--dry-run"]):
            r = hevcq(tmp_path, *args, "--out", str(tmp_path / "out"))
            if "--dry-run" in args:  # a plan brings nothing home: it may run beside
                assert r.returncode == 0, r.stdout + r.stderr
                continue
            assert r.returncode == 2, r.stdout + r.stderr
            [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
            assert f"(pid {holder.pid}, hevcq ingest); wait for it to end" in line
            assert "embedded local farm" not in r.stdout
            assert not (tmp_path / "out").exists()
    finally:
        holder.kill()
        holder.wait()
    with RunLock.take(lib, "the next run", directory=tmp_path / "state" / "hevcq"):
        pass  # free again: the killed holder took the lock with it


def test_rollback_with_nothing_in_quarantine_says_so_and_exits_0(tmp_path: Path, lib: Path) -> None:
    (lib / ".hevcq" / "quarantine").mkdir(parents=True)
    for args in (["--all", "--library", str(lib)], [str(lib / "a.mp4"), "--library", str(lib)]):
        r = hevcq(tmp_path, "rollback", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        said = " ".join(r.stdout.split())
        assert said.startswith(f"Nothing to roll back from the quarantine of {lib.resolve()}:")
        assert "conflict" not in r.stdout + r.stderr
        assert r.stderr == ""


def test_quarantine_purge_prints_what_it_purged_and_no_log_line(tmp_path: Path, lib: Path) -> None:
    """It printed a `quarantine_purged` log line above its own answer."""
    (lib / ".hevcq" / "quarantine").mkdir(parents=True)
    r = hevcq(tmp_path, "quarantine", "purge", str(lib))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (r.stdout, r.stderr) == ("0 originals purged\n", "")


def test_sample_never_overwrites_and_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    mine = tmp_path / "videos"
    (mine / "holiday").mkdir(parents=True)
    (mine / "holiday" / "beach.mp4").write_bytes(b"my own beach video")
    (mine / "notes.txt").write_text("mine")
    r = hevcq(tmp_path, "sample", str(mine))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "holds other files (notes.txt" in r.stderr
    assert (mine / "holiday" / "beach.mp4").read_bytes() == b"my own beach video"
    assert sorted(p.name for p in mine.rglob("*") if p.is_file()) == ["beach.mp4", "notes.txt"]


@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_sample_into_a_file_or_below_one_is_one_line(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    r = hevcq(tmp_path, "sample", str(tmp_path / where))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "internal error" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_sample_writes_only_the_names_that_are_free(tmp_path: Path) -> None:
    lib = tmp_path / "sample"
    (lib / "docs").mkdir(parents=True)
    (lib / "docs" / "not-a-video.mp4").write_text("edited by the user")
    r = hevcq(tmp_path, "sample", str(lib))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (lib / "docs" / "not-a-video.mp4").read_text() == "edited by the user"
    assert (lib / "holiday" / "beach.mp4").stat().st_size > 0
    again = hevcq(tmp_path, "sample", str(lib))  # a second `make run` finds its own sample
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize("after_s", [0.1, 0.2, 0.4, 0.8])
def test_ctrl_c_while_the_command_starts_is_quiet(tmp_path: Path, after_s: float) -> None:
    """A Ctrl-C in the first second (while the commands are imported) ends the command
    with 130, as at any other time, and never with a traceback.

    Not earlier than 0.1 s: before that, on a loaded machine, the interpreter may still be
    starting (``site``, its standard streams), where no program's code has run yet and
    Python itself prints the traceback. The guard goes up with the first line of
    ``hevcq.cli``; a Ctrl-C 0.05 s in once landed in its import of ``signal``, before it,
    which is why the guard now uses ``_signal``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("hevcq")), "estimate", str(tmp_path)],
        env=env | {"XDG_STATE_HOME": str(tmp_path / "state")},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in out + err, err
    # 2 when it had already refused the folder. On a quick machine the command may be done
    # when the signal lands: 0 when it had exited, -SIGINT when its interpreter was shutting
    # down (default handlers are back then; a shell shows 130). Never a traceback.
    assert proc.returncode in (130, 2, 0, -signal.SIGINT), out + err


def test_estimate_prints_its_report_and_no_log_lines(tmp_path: Path, lib: Path) -> None:
    r = hevcq(tmp_path, "estimate", str(lib))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == ""
    assert '"event"' not in r.stdout
    assert "a.mp4" in r.stdout


@pytest.mark.parametrize("command", ["dry-run", "estimate"])
def test_a_dry_run_checks_the_folders_a_run_would_make_but_makes_none(
    tmp_path: Path, lib: Path, command: str
) -> None:
    out, work = tmp_path / "new" / "out", tmp_path / "new" / "work"
    args = {
        "dry-run": ["ingest", str(lib), "--out", str(out), "--dry-run"],
        "estimate": ["estimate", str(lib), "--out", str(out)],
    }[command]
    r = hevcq(tmp_path, *args, HEVCQ_WORK_DIR=str(work))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "a.mp4" in r.stdout
    assert not (tmp_path / "new").exists()


def test_a_file_too_big_for_the_scratch_disk_is_one_line_before_any_farm(
    tmp_path: Path, lib: Path
) -> None:
    # The embedded farm's workers share one scratch folder: each gave the job back for
    # another worker that does not exist, and the run waited for hours, saying nothing.
    big = make_clip(lib / "big.mkv", width=320, height=240, seconds=0.5)
    with big.open("r+b") as f:
        f.truncate(4 * 1024**4)  # 4 TiB, sparse: needs 13.6 TiB of scratch space
    r = hevcq(tmp_path, "ingest", str(lib), "--out", str(tmp_path / "out"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "1 file needs more scratch space than" in line
    assert "big.mkv needs 13.6 TiB" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "LIB", "--dry-run"],
        ["ingest", "LIB"],
        ["estimate", "LIB"],
        ["calibrate"],
    ],
    ids=" ".join,
)
def test_an_unusable_state_folder_is_one_line_not_a_traceback(
    tmp_path: Path, lib: Path, args: list[str]
) -> None:
    """With XDG_STATE_HOME (or HOME) where no folder can be made, the catalog crashed, and
    recording that crash in the same folder crashed again: a Python traceback."""
    (tmp_path / "plain").write_text("a file, not a folder")
    argv = [str(lib) if a == "LIB" else a for a in args]
    r = hevcq(tmp_path, *argv, XDG_STATE_HOME=str(tmp_path / "plain" / "state"))
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "cannot use the state folder" in line
    assert "set XDG_STATE_HOME to a folder this user can write" in line


def test_a_name_too_long_for_its_outputs_is_a_failed_row_before_any_encode(
    tmp_path: Path,
) -> None:
    # 252 bytes: the hevc output fits, the 720p one ("<name>.720p.mp4") would not. It was
    # encoded, then refused at its placement with Python's "[Errno 36]" text.
    long = "é" * 124 + ".mp4"
    make_clip(tmp_path / "lib" / long, width=1280, height=720, seconds=0.5)
    r = hevcq(tmp_path, "ingest", str(tmp_path / "lib"), "--out", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "Errno" not in r.stdout
    assert "failed: name too long for its 720p output: 257 bytes" in r.stdout
    assert "Nothing to encode" in r.stdout
    assert not (tmp_path / "out").exists()


# Runs the hevcq command with the library catalog's database unable to grow, as when the
# state folder's disk is full (SQLite's page limit stands in for the disk).
FULL_CATALOG = """
import sys
from hevcq.library import catalog

real_migrate = catalog.Catalog._migrate


def migrate(self):
    self._db.execute("PRAGMA max_page_count=1")
    real_migrate(self)


catalog.Catalog._migrate = migrate
from hevcq.cli import entry

sys.argv = ["hevcq", *sys.argv[1:]]
entry()
"""


def test_a_full_disk_under_the_catalog_is_one_line_not_an_internal_error(
    tmp_path: Path, lib: Path
) -> None:
    # It was "internal error: OperationalError: database or disk is full", exit 4 (a bug).
    shim = tmp_path / "full_catalog.py"
    shim.write_text(FULL_CATALOG)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HEVCQ_", "AWS_"))}
    r = subprocess.run(
        [sys.executable, str(shim), "ingest", str(lib), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=base
        | {
            "HOME": str(tmp_path / "home"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "COLUMNS": "400",  # the one line unwrapped, whatever the terminal pytest had
        },
        timeout=120,
        check=False,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "embedded local farm" not in r.stdout
    [line] = r.stderr.strip().splitlines()
    assert line == (
        f"error: no space left for the library's catalog in {tmp_path / 'state' / 'hevcq'}:"
        " free some space, then run the same command again"
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        # It was ignored: the run went on without the setting the file meant to give.
        (b"HEVCQ_BUKET=my-bucket\n", "error: unknown setting HEVCQ_BUKET (did you mean "),
        # It was "internal error: UnicodeDecodeError", exit 4.
        (b"HEVCQ_SLOTS=2\n\xff\xfe\n", "error: the settings file .hevcq.env is not UTF-8 text"),
        (b"HEVCQ_SLOTS=many\n", "error: HEVCQ_SLOTS=many: "),
    ],
    ids=["misspelt", "not_text", "bad_value"],
)
def test_a_mistake_in_the_settings_file_is_one_line_exit_2(
    tmp_path: Path, content: bytes, says: str
) -> None:
    (tmp_path / ".hevcq.env").write_bytes(content)
    r = hevcq(tmp_path, "status")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.startswith(says), line


def test_an_out_whose_mode_bits_say_yes_but_refuses_writes_stops_the_run_at_once(
    tmp_path: Path, lib: Path
) -> None:
    """A NAS share that maps root to nobody, a read-only bind mount: the folder's mode
    bits allow the write that the file system refuses, and the run encoded the whole
    library before it found it could place nothing. ``/proc`` is such a folder to root
    (and plainly unwritable to anyone else: the same one line)."""
    r = hevcq(tmp_path, "ingest", str(lib), "--out", "/proc/hevcq-out", "--no-dashboard")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "embedded local farm" not in r.stdout
    assert not (tmp_path / "state" / "hevcq" / "runs").exists()
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: --out /proc/hevcq-out: cannot write in /proc")
