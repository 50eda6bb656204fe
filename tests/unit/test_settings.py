"""Settings mistakes are one line naming the setting, before anything starts."""

from __future__ import annotations

import pytest

from hevcq.errors import ConfigError
from hevcq.settings import known_names, load_settings, unknown_names


def test_an_unknown_name_says_which_known_name_is_close() -> None:
    assert unknown_names({"HEVCQ_BUKET": "b", "HEVCQ_BUCKET": "b", "PATH": "/"}) == [
        "HEVCQ_BUKET (did you mean HEVCQ_BUCKET?)"
    ]
    assert unknown_names({"HEVCQ_ZZZZZZZZ": "1"}) == ["HEVCQ_ZZZZZZZZ"]


def test_every_documented_name_is_known() -> None:
    names = (
        "HEVCQ_SLOTS",
        "HEVCQ_ENCODE_THREADS",
        "HEVCQ_WINDOW",
        "HEVCQ_RUNS_KEPT",
        "HEVCQ_ECS_AGENT_URI",
        "HEVCQ_DASHBOARD_PORT",
    )
    assert set(names) <= set(known_names())


def test_load_settings_refuses_unknown_names() -> None:
    with pytest.raises(ConfigError, match=r"HEVCQ_BUKET \(did you mean HEVCQ_BUCKET\?\)"):
        load_settings({"HEVCQ_BUKET": "b"})


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("HEVCQ_SLOTS", "0", "HEVCQ_SLOTS=0: "),
        ("HEVCQ_ENCODE_THREADS", "all", "HEVCQ_ENCODE_THREADS=all: "),
        ("HEVCQ_WINDOW", "lots", "HEVCQ_WINDOW=lots: "),
        ("HEVCQ_POLL_WAIT_S", "99", "HEVCQ_POLL_WAIT_S=99: "),
        ("HEVCQ_RUNS_KEPT", "0", "HEVCQ_RUNS_KEPT=0: "),
        ("HEVCQ_LOG_FORMAT", "xml", "HEVCQ_LOG_FORMAT=xml: "),
        ("HEVCQ_DASHBOARD_PORT", "70000", "HEVCQ_DASHBOARD_PORT=70000: "),
    ],
)
def test_invalid_values_are_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings({name: value})
    assert says in str(err.value)
    assert "\n" not in str(err.value)
