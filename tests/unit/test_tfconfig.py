"""From ``terraform output -json`` to the CLI's env file."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from hevcq.cli.tfconfig import api_addresses, settings_from_outputs, write_env_file
from hevcq.errors import ConfigError
from tests.conftest import run_cli

SETTINGS = {
    "HEVCQ_BUCKET": "hevcq-media-123456789012-eu-west-1",
    "HEVCQ_NAME_PREFIX": "hevcq",
    "HEVCQ_REGION": "eu-west-1",
    "HEVCQ_UPLOADS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:hevcq-uploads",
    "HEVCQ_EVENTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:hevcq-events",
    "HEVCQ_RESULTS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/hevcq-results",
    "HEVCQ_LEDGER_TABLE": "hevcq-ledger",
}


def _wrapped(value: Any) -> dict[str, Any]:
    return {"sensitive": False, "type": "string", "value": value}


def test_reads_the_settings_output() -> None:
    outputs = {"hevcq_settings": _wrapped(SETTINGS), "bucket": _wrapped("ignored")}
    assert settings_from_outputs(outputs) == SETTINGS


def test_api_outputs_stay_out_of_the_settings() -> None:
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com"
    api = {
        "api_url": _wrapped(url),
        "api_function_name": _wrapped("hevcq-api"),
        "cognito_user_pool_id": _wrapped("eu-west-1_AbC"),
        "cognito_client_id": _wrapped("client123"),
    }
    outputs = {"hevcq_settings": _wrapped(SETTINGS), **api}
    assert settings_from_outputs(outputs) == SETTINGS
    assert api_addresses(outputs) == {
        "API": url,
        "Cognito user pool": "eu-west-1_AbC",
        "Cognito app client": "client123",
    }


def test_api_off_or_without_cognito_has_null_outputs() -> None:
    outputs = {
        "hevcq_settings": _wrapped(SETTINGS),
        "api_url": _wrapped("https://abc123.execute-api.eu-west-1.amazonaws.com"),
        "cognito_user_pool_id": _wrapped(None),
        "cognito_client_id": _wrapped(None),
    }
    assert settings_from_outputs(outputs) == SETTINGS
    assert list(api_addresses(outputs)) == ["API"]
    assert api_addresses({"hevcq_settings": _wrapped(SETTINGS), "api_url": _wrapped(None)}) == {}


def test_falls_back_to_single_outputs() -> None:
    singles = {
        "bucket": SETTINGS["HEVCQ_BUCKET"],
        "name_prefix": "hevcq",
        "region": "eu-west-1",
        "uploads_topic_arn": SETTINGS["HEVCQ_UPLOADS_TOPIC_ARN"],
        "events_topic_arn": SETTINGS["HEVCQ_EVENTS_TOPIC_ARN"],
        "results_queue_url": SETTINGS["HEVCQ_RESULTS_QUEUE_URL"],
        "ledger_table": "hevcq-ledger",
    }
    assert settings_from_outputs({k: _wrapped(v) for k, v in singles.items()}) == SETTINGS


def test_missing_values_are_named() -> None:
    with pytest.raises(ConfigError, match="HEVCQ_LEDGER_TABLE"):
        settings_from_outputs({"hevcq_settings": _wrapped(SETTINGS | {"HEVCQ_LEDGER_TABLE": ""})})
    partial = {k: v for k, v in SETTINGS.items() if k != "HEVCQ_REGION"}
    with pytest.raises(ConfigError, match="HEVCQ_REGION"):
        settings_from_outputs({"hevcq_settings": _wrapped(partial)})


@pytest.mark.parametrize(
    "bad",
    [{"BUCKET": "x"}, {"HEVCQ_BUCKET": 3}, {"HEVCQ_BUCKET": None}],
)
def test_rejects_foreign_or_non_string_entries(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        settings_from_outputs({"hevcq_settings": _wrapped(SETTINGS | bad)})


def test_no_outputs_means_not_applied() -> None:
    with pytest.raises(ConfigError, match="applied"):
        settings_from_outputs({})


class _Probe(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEVCQ_", extra="ignore")

    bucket: str
    results_queue_url: str
    uploads_topic_arn: str


def test_env_file_round_trips_through_pydantic_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in SETTINGS:
        monkeypatch.delenv(key, raising=False)
    values = SETTINGS | {"HEVCQ_BUCKET": 'odd "name" with \\ and # hash'}
    path = write_env_file(values, tmp_path / "conf" / "hevcq.env")
    probe = _Probe(_env_file=path)
    assert probe.bucket == values["HEVCQ_BUCKET"]
    assert probe.results_queue_url == SETTINGS["HEVCQ_RESULTS_QUEUE_URL"]
    assert probe.uploads_topic_arn == SETTINGS["HEVCQ_UPLOADS_TOPIC_ARN"]


def test_env_file_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "hevcq.env"
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    write_env_file(SETTINGS, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "OLD" not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["hevcq.env"]


def test_line_breaks_are_refused_and_leave_no_file(tmp_path: Path) -> None:
    path = tmp_path / "hevcq.env"
    with pytest.raises(ConfigError, match="line breaks"):
        write_env_file({"HEVCQ_BUCKET": "a\nHEVCQ_REGION=evil"}, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def _fake_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tf = bin_dir / "terraform"
    tf.write_text("#!/bin/sh\n" + script)
    tf.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


@pytest.mark.parametrize(
    ("script", "says"),
    [
        # terraform's own error, not Python's "returned non-zero exit status 1"
        (
            "cat >&2 <<'E'\nThere are some problems\n\n\u2577\n\u2502 Error: Required plugins"
            " are not installed\n\u2502\nE\nexit 1\n",
            "output -no-color -json failed: Error: Required plugins are not installed",
        ),
        ("echo 'not json'", "(read with: terraform -chdir=my-tf output -no-color -json)"),
        ("echo '{}'", "is the farm applied? (read with: terraform -chdir=my-tf output"),
        ("echo '[1, 2]'", "is the farm applied?"),
    ],
)
def test_from_terraform_says_what_went_wrong_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, says: str
) -> None:
    """It named infra/terraform whatever --tf-dir said, showed Python's exception for
    terraform's error, and a stdout that is not JSON was an internal error."""

    _fake_terraform(tmp_path, monkeypatch, script)
    args = ["config", "from-terraform", "--tf-dir", "my-tf", "--path", str(tmp_path / "x.env")]
    done = run_cli(args)
    assert done.exit_code == 2, done.output
    said = " ".join(done.output.split())  # the console may wrap, as an earlier test set it
    assert said.startswith("error: ")
    assert said.count("error: ") == 1
    assert says in said
    assert not (tmp_path / "x.env").exists()
