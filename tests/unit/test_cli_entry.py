"""The ``hevcq`` entry point: a Ctrl-C while the commands load."""

from __future__ import annotations

import os
import signal

import pytest

from hevcq.cli import EXIT_INTERRUPTED, held_interrupt


def test_a_ctrl_c_while_the_commands_load_is_held_until_they_have_loaded() -> None:
    before = signal.getsignal(signal.SIGINT)
    steps: list[int] = []

    def load() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        # Bytecode after the signal: where a raised KeyboardInterrupt would have landed,
        # in the middle of whatever third-party import was running.
        for i in range(10_000):
            steps.append(i)
        return "loaded"

    with pytest.raises(SystemExit) as stop:
        held_interrupt(load)
    assert stop.value.code == EXIT_INTERRUPTED
    assert len(steps) == 10_000
    assert signal.getsignal(signal.SIGINT) is before


def test_without_a_ctrl_c_the_commands_load_and_ctrl_c_is_back_to_normal() -> None:
    before = signal.getsignal(signal.SIGINT)
    assert held_interrupt(lambda: "loaded") == "loaded"
    assert signal.getsignal(signal.SIGINT) is before
