"""Turn ``terraform output -json`` into the CLI's settings file (HEVCQ_* variables)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hevcq.errors import ConfigError

SETTINGS_OUTPUT = "hevcq_settings"
ENV_PREFIX = "HEVCQ_"

# Fallback for state written before the hevcq_settings output existed: output -> variable.
_SINGLE_OUTPUTS = {
    "bucket": "HEVCQ_BUCKET",
    "name_prefix": "HEVCQ_NAME_PREFIX",
    "region": "HEVCQ_REGION",
    "uploads_topic_arn": "HEVCQ_UPLOADS_TOPIC_ARN",
    "events_topic_arn": "HEVCQ_EVENTS_TOPIC_ARN",
    "results_queue_url": "HEVCQ_RESULTS_QUEUE_URL",
    "ledger_table": "HEVCQ_LEDGER_TABLE",
}
REQUIRED = frozenset(_SINGLE_OUTPUTS.values())
# The API's outputs (modules/api): addresses for people and apps, not settings of the CLI,
# so they stay out of the env file. Null when the API or Cognito is off.
API_OUTPUTS = {
    "api_url": "API",
    "cognito_user_pool_id": "Cognito user pool",
    "cognito_client_id": "Cognito app client",
}


def _value(output: Any) -> Any:
    """An output's value, whether given as ``{"value": ...}`` (output -json) or bare."""
    if isinstance(output, Mapping) and "value" in output:
        return output["value"]
    return output


def settings_from_outputs(outputs: Mapping[str, Any]) -> dict[str, str]:
    """The HEVCQ_* settings in a parsed ``terraform output -json``."""
    if SETTINGS_OUTPUT in outputs:
        raw = _value(outputs[SETTINGS_OUTPUT])
        if not isinstance(raw, Mapping):
            raise ConfigError(f"terraform output {SETTINGS_OUTPUT}: expected a map")
        values = dict(raw)
    else:
        values = {
            env: _value(outputs[out]) for out, env in _SINGLE_OUTPUTS.items() if out in outputs
        }
    missing = sorted(REQUIRED - values.keys())
    if missing:
        raise ConfigError(f"terraform outputs lack {', '.join(missing)}: is the farm applied?")
    settings: dict[str, str] = {}
    for key, val in sorted(values.items()):
        if not key.startswith(ENV_PREFIX) or not isinstance(val, str) or not val:
            raise ConfigError(f"terraform output {SETTINGS_OUTPUT}: bad entry {key!r}={val!r}")
        settings[key] = val
    return settings


def api_addresses(outputs: Mapping[str, Any]) -> dict[str, str]:
    """The deployed API's URL and Cognito ids (label -> value), those that are set."""
    values = {label: _value(outputs.get(name)) for name, label in API_OUTPUTS.items()}
    return {label: v for label, v in values.items() if isinstance(v, str) and v}


def _env_line(key: str, value: str) -> str:
    """One dotenv line; double quotes so the reader keeps the value verbatim."""
    if any(ch in value for ch in "\r\n\0"):
        raise ConfigError(f"{key}: a setting cannot contain line breaks")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"\n'


def write_env_file(values: Mapping[str, str], path: Path) -> Path:
    """Write ``values`` as an env file atomically, readable by the owner only (0600)."""
    path = path.expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = "".join(_env_line(k, v) for k, v in sorted(values.items()))
    # mkstemp creates the file 0600 in the target folder, so the rename is atomic and the
    # secret-free but account-identifying values are never world-readable, even briefly.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
