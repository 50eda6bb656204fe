"""Settings mistakes are one line naming the setting, before anything starts."""

from __future__ import annotations

from pathlib import Path

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


def test_a_blank_value_is_the_default_even_over_the_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`HEVCQ_BUCKET= hevcq ingest` ran against a bucket named "" instead of the embedded
    farm, and a blank HEVCQ_WORK_DIR put the scratch folder in the current directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".hevcq.env").write_text("HEVCQ_BUCKET=from-the-file\nHEVCQ_REGION=\n")
    env = {"HEVCQ_BUCKET": "", "HEVCQ_WORK_DIR": "", "HEVCQ_LOG_LEVEL": " ", "HEVCQ_SLOTS": ""}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(env)
    assert settings.bucket is None
    assert settings.embedded
    assert settings.work_dir is None
    assert settings.region is None
    assert settings.log_level == "info"
    assert settings.slots is None
    monkeypatch.delenv("HEVCQ_BUCKET")
    assert load_settings({}).bucket == "from-the-file"
