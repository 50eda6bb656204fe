"""One settings object, read from ``HEVCQ_*`` variables (and an optional env file)."""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from hevcq.errors import ConfigError
from hevcq.limits import MAX_WAIT_TIME_S

PREFIX = "HEVCQ_"

DEFAULT_SETTINGS_FILE = Path("~/.config/hevcq/hevcq.env").expanduser()


# The levels Python's logging knows, in any case (HEVCQ_LOG_LEVEL=DEBUG works too).
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"],
    BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
]


class Settings(BaseSettings):
    """Everything configurable; built once at an entry point and passed down.

    With no ``bucket`` set, hevcq runs the embedded local farm. AWS credentials, region,
    profiles and ``AWS_ENDPOINT_URL*`` come from boto3's own configuration chain.
    """

    model_config = SettingsConfigDict(
        env_prefix="HEVCQ_",
        env_file=(DEFAULT_SETTINGS_FILE, ".hevcq.env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    bucket: str | None = Field(None, description="The farm's bucket; unset means embedded.")
    name_prefix: str = Field("hevcq", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    region: str | None = None
    workers_dir: Path | None = Field(None, description="Folder of pool definition files.")
    work_dir: Path | None = Field(None, description="Scratch space for downloads and encodes.")
    ffmpeg: str | None = Field(None, description="ffmpeg binary; default: the pinned build.")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: LogLevel = "info"

    poll_wait_s: int = Field(MAX_WAIT_TIME_S, ge=0, le=MAX_WAIT_TIME_S)
    stall_timeout_s: float = Field(120.0, gt=0)
    decode_during_encode: bool = Field(
        True,
        description="Verify by decoding the encoded video while it is encoded (see "
        "docs/decisions/0016-media-policy.md); off: decode the finished output afterwards.",
    )
    shutdown_grace_s: float = Field(60.0, ge=0)
    lease_s: int | None = Field(
        None, ge=10, description="Ledger lease; default: twice the pool's visibility timeout."
    )
    progress_every_s: float = Field(
        10.0,
        ge=1,
        description="How often a running job's progress (percent, fps, speed) reaches the "
        "ledger, by renewing its lease that often; the dashboard and `status` show it.",
    )
    slots: int | None = Field(
        None,
        ge=1,
        description="Embedded farm: encodes at once, one worker process each, every one "
        "taking any pool's work; default from the machine's cores and free memory "
        "(hevcq.cores).",
    )
    encode_threads: int | None = Field(
        None,
        ge=1,
        description="Threads one encode may use; default: all the cores in the cloud (a "
        "task is one encode), the cores divided among the slots on the embedded farm.",
    )
    window: int | None = Field(
        None,
        ge=1,
        description="Embedded farm: sources in the farm at once; default twice the slots "
        "or the pools with work, whichever is more.",
    )
    runs_kept: int = Field(
        10, ge=1, description="Embedded farm: run folders (logs) kept in the state dir."
    )
    dashboard_port: int = Field(
        8765,
        ge=0,
        le=65535,
        description="Embedded farm: the port the ingest's dashboard prefers on 127.0.0.1 "
        "(taken: any free one; 0: always any free one).",
    )
    ecs_agent_uri: str | None = Field(
        None, validation_alias=AliasChoices("ECS_AGENT_URI", "HEVCQ_ECS_AGENT_URI")
    )

    # `hevcq serve`: who may call the API, and what uploads may be.
    api_token: SecretStr | None = Field(None, description="Bearer token for operators and apps.")
    oidc_issuer: str | None = Field(None, description="JWT issuer (a Cognito user pool URL).")
    oidc_audience: str | None = Field(None, description="JWT audience (the app client id).")
    oidc_jwks_url: str | None = Field(
        None, description="JWKS location; default: <issuer>/.well-known/jwks.json."
    )
    oidc_operator_group: str = Field(
        "operators", description="JWT group (cognito:groups) whose members may operate."
    )
    upload_max_bytes: int = Field(
        20 * 1024**3, gt=0, description="Largest upload a presigned POST accepts."
    )
    upload_url_ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    uploads_in_flight: int = Field(
        20, ge=1, description="Per owner: API uploads issued and not yet finished by every pool."
    )
    upload_bytes_in_flight: int = Field(
        100 * 1024**3,
        gt=0,
        description="Per owner: the bytes those uploads may take (each its declared size, "
        "or HEVCQ_UPLOAD_MAX_BYTES when it declared none).",
    )
    raw: Literal["keep", "delete-when-settled"] = Field(
        "keep",
        description="delete-when-settled: remove an API upload's source once every pool "
        "settled it (done or skipped) and the outputs are in place.",
    )
    api_pools: str | None = Field(
        None,
        description="The pools an API upload that names none is made for, comma separated "
        "(e.g. hevc,av1); default: every pool of the farm.",
    )
    play_key: SecretStr | None = Field(
        None,
        description="Signs the API's play links (at least 32 characters); default: a new key "
        "per server process, so links last until it restarts.",
        min_length=32,
    )
    public_base_url: str | None = Field(
        None,
        description="A URL serving the bucket's DONE/ prefix (a CDN): play and poster links "
        "point there instead of through the API.",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
    )

    # Resource identifiers; derived from name_prefix when unset.
    events_topic_arn: str | None = None
    uploads_topic_arn: str | None = None
    results_queue_url: str | None = None
    ledger_table: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        """A blank value (``HEVCQ_BUCKET= hevcq ...``, or ``HEVCQ_BUCKET=`` in an env file)
        is the setting's default, even over the env file: a blank bucket is no bucket, so
        the embedded farm. Read as text, it was a bucket named "" and, for
        ``HEVCQ_WORK_DIR=``, a scratch folder in the current directory."""
        if isinstance(value, str) and not value.strip() and info.field_name is not None:
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @property
    def api_pool_names(self) -> tuple[str, ...] | None:
        """``api_pools`` as names; None when unset."""
        if not self.api_pools:
            return None
        return tuple(sorted({n.strip() for n in self.api_pools.split(",") if n.strip()}))

    @property
    def embedded(self) -> bool:
        """True when no farm is configured and hevcq should run one locally."""
        return self.bucket is None


def known_names() -> list[str]:
    """Every ``HEVCQ_*`` variable a setting reads."""
    names = {f"{PREFIX}{n.upper()}" for n in Settings.model_fields}
    return sorted(names | {"HEVCQ_ECS_AGENT_URI"})


def unknown_names(env: Mapping[str, str]) -> list[str]:
    """``HEVCQ_*`` names in ``env`` that no setting reads, each with a close known name."""
    known = known_names()
    out = []
    for name in sorted(n for n in env if n.upper().startswith(PREFIX)):
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1)
        out.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return out


def settings_file_names() -> dict[str, list[str]]:
    """The ``HEVCQ_*`` names each settings file that exists sets (``Settings``'
    ``env_file``: ``~/.config/hevcq/hevcq.env``, then ``./.hevcq.env``); a ConfigError
    of one line for a file that cannot be read as text."""
    found: dict[str, list[str]] = {}
    for path in (DEFAULT_SETTINGS_FILE, Path(".hevcq.env")):
        if not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the settings file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"the settings file {path} is not UTF-8 text") from None
        names = dotenv_values(stream=io.StringIO(text))
        found[str(path)] = [n for n in names if n.upper().startswith(PREFIX)]
    return found


def load_settings(env: Mapping[str, str]) -> Settings:
    """The settings, or a ConfigError of one line naming what is wrong."""
    unknown = unknown_names(env)
    if unknown:
        raise ConfigError(f"unknown setting {', '.join(unknown)}")
    for path, names in settings_file_names().items():
        unknown = unknown_names(dict.fromkeys(names, ""))
        if unknown:
            raise ConfigError(f"unknown setting {', '.join(unknown)} in the settings file {path}")
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        name = f"{PREFIX}{field.upper()}" if field else "a setting"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f"={value!s}"
        raise ConfigError(f"{name}{shown}: {err['msg']}") from None


def state_dir(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$XDG_STATE_HOME/hevcq`` or ``~/.local/state/hevcq`` (the XDG base-directory rule)."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    if base and Path(base).is_absolute():
        return Path(base) / "hevcq"
    return (home or Path.home()) / ".local" / "state" / "hevcq"
