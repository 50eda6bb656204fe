"""Every command's help ends with an example, and shell completion installs for bash and
zsh (typer's own `--install-completion` and `--show-completion`)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hevcq.cli.app import app
from hevcq.cli.main import COMMAND_MODULES


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer may carry its own click)
            found += _commands(cmd, (*path, name))
        else:
            found.append((*path, name))
    return found


def _groups(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            found += [(*path, name), *_groups(cmd, (*path, name))]
    return found


assert COMMAND_MODULES  # importing them registers every command on ``app``
COMMANDS = _commands(typer.main.get_group(app))
GROUPS = _groups(typer.main.get_group(app))


def test_every_command_is_walked() -> None:
    assert {"ingest", "fetch", "redrive", "status", "sample"} <= {c[-1] for c in COMMANDS}
    assert ("quarantine", "purge") in COMMANDS
    assert ("config", "from-terraform") in COMMANDS
    assert {("quarantine",), ("config",)} <= set(GROUPS)


@pytest.mark.parametrize("command", COMMANDS + GROUPS, ids=" ".join)
def test_every_commands_help_has_an_example(command: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    [example] = [ln.strip() for ln in shown.output.splitlines() if "Example: hevcq" in ln]
    assert f"hevcq {' '.join(command)}" in example or command[-1] in example


def _hevcq(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEVCQ_")}
    return subprocess.run(
        [str(Path(sys.executable).with_name("hevcq")), *args],
        capture_output=True,
        text=True,
        # typer's own switch: the shell is named on the command line, not detected
        env=env | {"HOME": str(home), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("shell", "says"), [("bash", "complete"), ("zsh", "compdef")])
def test_completion_shows_and_installs_for_bash_and_zsh(
    tmp_path: Path, shell: str, says: str
) -> None:
    shown = _hevcq(tmp_path, "--show-completion", shell)
    assert shown.returncode == 0, shown.stderr
    assert says in shown.stdout
    assert "_HEVCQ_COMPLETE" in shown.stdout
    installed = _hevcq(tmp_path, "--install-completion", shell)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    rc = tmp_path / (".bashrc" if shell == "bash" else ".zshrc")
    assert rc.exists(), installed.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_commands_help_is_one_line_paragraphs_of_plain_text(command: tuple[str, ...]) -> None:
    """The listing of `hevcq --help` shows each command's first paragraph: a line break in
    it broke the listing mid-sentence, and reST markup showed as doubled backquotes."""
    cmd: Any = typer.main.get_command(app)
    for name in command:
        cmd = cmd.commands[name]
    paragraphs = (cmd.help or "").strip().split("\n\n")
    assert paragraphs[0]
    # The help shows a docstring's line breaks as they are: a paragraph wrapped in the
    # source broke mid-sentence on any terminal narrower than the source's lines.
    assert [p for p in paragraphs if "\n" in p] == []
    assert "``" not in (cmd.help or "")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ingest", ".", "--max-files", "-1"], "--max-files"),
        (["ingest", ".", "--keep-days", "-5"], "-5: give a number of at least 0"),
        (["ingest", ".", "--keep-days", "nan"], "nan: give a number of at least 0"),
        (["ingest", ".", "--timeout", "0"], "0: give a number above 0"),
        (["ingest", ".", "--timeout", "inf"], "inf: give a number above 0"),
        (["ingest", ".", "--ext", ""], "'' is not a file extension"),
        (["ingest", ".", "--ext", "*"], "'*' is not a file extension"),
        (["estimate", ".", "--ext", "mp4/x"], "is not a file extension"),
        (["fetch", ".", "--keep-days", "-1"], "--keep-days"),
        (["serve", "--port", "99999"], "--port"),
        (["serve", "--port", "-1"], "--port"),
        (["status", "--watch", "0"], "0: give a number of at least 0.5"),
        (["worker", "--max-jobs", "0"], "--max-jobs"),
        (["calibrate", "--seconds", "0"], "0: give a number of at least 0.5"),
        # Neither a file nor a folder: an internal error (NotADirectoryError) before.
        (["ingest", "/dev/null"], "'/dev/null' is not a folder"),
        (["estimate", "/dev/null"], "'/dev/null' is not a folder"),
        (["fetch", "/dev/null", "--pool", "hevc"], "'/dev/null' is not a folder"),
        (["quarantine", "list", "/dev/null"], "'/dev/null' is not a folder"),
        (["ingest", "/no/such/folder"], "'/no/such/folder' does not exist"),
        # An empty path is the current folder: `--out "$OUT"` with OUT unset wrote every
        # output where the command ran, and `ingest "$DIR"` scanned it.
        (["ingest", ""], "'library': an empty path"),
        (["ingest", ".", "--out", ""], "'--out': an empty path"),
        (["fetch", ".", "--pool", "hevc", "--out", ""], "'--out': an empty path"),
        (["ladder", "a.mp4", "--out", ""], "'--out': an empty path"),
        (["sample", ""], "'dest': an empty path"),
        (["rollback", ""], "'path': an empty path"),
        (["rollback", "--all", "--library", ""], "'--library': an empty path"),
        (["serve", "--state-dir", ""], "'--state-dir': an empty path"),
        (["config", "from-terraform", "--path", ""], "'--path': an empty path"),
        # An empty host listened on every interface and printed http://:8765.
        (["serve", "--host", ""], "'--host': an empty address"),
    ],
)
@pytest.mark.timeout(60)  # were a value let through, a command might run on
def test_a_bad_number_extension_or_folder_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    """Before, a negative --keep-days quarantined originals already past their keep time,
    --timeout 0 gave up at once, --watch 0 was quietly read as 0.5, a port over 65535 was
    an internal error, and --ext '' scanned for files whose names end in a bare dot.

    The library is an empty folder and no farm is configured, so that were a value let
    through, the command would stop at once on the next mistake rather than run."""
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith(("HEVCQ_", "AWS_"))]:
        monkeypatch.delenv(name)
    env = {"COLUMNS": "200", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    done = CliRunner().invoke(app, args, env=env)
    assert done.exit_code == 2, done.output
    assert "Invalid value" in done.output
    assert says in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)


def test_a_crash_whose_state_folder_is_unusable_still_saves_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash log lives in the state folder; when that folder is what failed, recording
    the crash raised again and a traceback reached the terminal."""
    from hevcq.cli import app as main  # noqa: PLC0415

    (tmp_path / "plain").write_text("a file, not a folder")
    monkeypatch.setattr(main, "state_dir", lambda: tmp_path / "plain" / "hevcq")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def bug() -> None:
        raise RuntimeError("a bug")

    try:
        bug()
    except RuntimeError:
        where = main._saved_traceback()
    assert where.startswith(f"traceback in {tmp_path}/hevcq-crash-")
    saved = Path(where.removeprefix("traceback in "))
    assert "RuntimeError: a bug" in saved.read_text()
    assert oct(saved.stat().st_mode & 0o777) == "0o600"


LOADED = """
import atexit, sys
sys.argv = ["hevcq", *sys.argv[1:]]
atexit.register(lambda: print(sorted(m for m in {WATCHED} if m in sys.modules)))
from hevcq.cli import entry
entry()
"""
# What a worker has no use for: the web server, the library's commands.
WATCHED = ("fastapi", "uvicorn", "hevcq.cli.library", "hevcq.cli.farm", "hevcq.web.server")
COMMANDS_ALL = ["hevcq.cli.farm", "hevcq.cli.library"]


@pytest.mark.parametrize(
    ("args", "code", "loaded"),
    [
        (["worker", "--help"], 0, []),
        (["status"], 2, COMMANDS_ALL),  # no farm: one line, exit 2
        (["ingest", "--help"], 0, COMMANDS_ALL),
        (["serve", "--port", "99999"], 2, COMMANDS_ALL),
    ],
)
def test_a_command_loads_what_it_uses(args: list[str], code: int, loaded: list[str]) -> None:
    """Every local worker of every ingest, and each restart, loaded every command first:
    a second of start-up where half of one does. The other commands load the web stack
    (FastAPI, uvicorn) only to serve."""
    program = LOADED.replace("{WATCHED}", repr(WATCHED))
    done = subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == code, done.stderr
    assert done.stdout.splitlines()[-1] == repr(sorted(loaded))


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (OSError(errno.EADDRINUSE, "Address already in use"), "give another --port"),
        (OSError(errno.EACCES, "Permission denied"), "give a --port above 1023"),
        # Not an address of this machine, or not an address at all: the port was blamed.
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "give another --host"),
        (OSError(socket.EAI_NONAME, "Name or service not known"), "give another --host"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "give another --host"),
    ],
)
def test_a_server_that_cannot_listen_says_what_to_change(error: OSError, says: str) -> None:
    from hevcq.cli import farm  # noqa: PLC0415

    assert farm._listen_hint(error).startswith(says)
