"""Every command's help ends with an example, and shell completion installs for bash and
zsh (typer's own `--install-completion` and `--show-completion`)."""

from __future__ import annotations

import os
import subprocess
import sys
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


assert COMMAND_MODULES  # importing them registers every command on ``app``
COMMANDS = _commands(typer.main.get_group(app))


def test_every_command_is_walked() -> None:
    assert {"ingest", "fetch", "redrive", "status", "sample"} <= {c[-1] for c in COMMANDS}
    assert ("quarantine", "purge") in COMMANDS
    assert ("config", "from-terraform") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
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
