"""One settings object, read from ``HEVCQ_*`` variables (and an optional env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SETTINGS_FILE = Path("~/.config/hevcq/hevcq.env").expanduser()


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
    ffmpeg: str | None = Field(None, description="ffmpeg binary; default: PATH, then bundled.")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "info"

    poll_wait_s: int = Field(20, ge=0, le=20)
    stall_timeout_s: float = Field(120.0, gt=0)
    decode_during_encode: bool = Field(
        True,
        description="Verify by decoding the encoded video while it is encoded (see "
        "docs/architecture.md); off: decode the finished output afterwards.",
    )
    shutdown_grace_s: float = Field(60.0, ge=0)
    lease_s: int | None = Field(
        None, ge=10, description="Ledger lease; default: twice the pool's visibility timeout."
    )
    workers_per_pool: int = Field(1, ge=0, description="Embedded farm: worker processes per pool.")
    window: int | None = Field(
        None,
        ge=1,
        description="Embedded farm: sources in the farm at once; default twice "
        "the worker processes.",
    )
    ecs_agent_uri: str | None = Field(
        None, validation_alias=AliasChoices("ECS_AGENT_URI", "HEVCQ_ECS_AGENT_URI")
    )

    # Resource identifiers; derived from name_prefix when unset.
    events_topic_arn: str | None = None
    uploads_topic_arn: str | None = None
    results_queue_url: str | None = None
    ledger_table: str | None = None

    @property
    def embedded(self) -> bool:
        """True when no farm is configured and hevcq should run one locally."""
        return self.bucket is None
