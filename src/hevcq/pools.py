"""The farm definition: one YAML file per worker pool, shared by Python and Terraform; the
settings hash, and which pool may replace originals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hevcq.errors import ConfigError
from hevcq.limits import MAX_RETENTION_S, MAX_VISIBILITY_TIMEOUT_S, MIN_RETENTION_S

X265_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)

PoolName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$")]
# How a worker proves an output before uploading it (hevcq.media.verify; the decision is
# docs/decisions/0016-media-policy.md): "stream": the file's video is the encoder's own
# stream, shapes checked, first and last GOP decoded; "full": every frame decoded.
VerifyPolicy = Literal["stream", "full"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Applies(_Strict):
    """Which sources a pool takes."""

    source_codecs: tuple[str, ...] = Field(min_length=1)
    target_height: int | None = Field(
        None, gt=0, description="Rendition size on the short side; None keeps the source size."
    )


class Encode(_Strict):
    """How a pool encodes: every field here feeds the settings hash stored on outputs."""

    video_codec: Literal["libx265"] = "libx265"
    crf: int = Field(26, ge=0, le=51)
    preset: Literal[X265_PRESETS] = "medium"  # type: ignore[valid-type]
    x265_params: dict[str, str] = Field(default_factory=dict)
    audio_codec: Literal["aac"] = "aac"
    audio_bitrate_kbps: int = Field(160, ge=32, le=512)
    keep_subtitles: bool = True


class QueueSpec(_Strict):
    """The pool's SQS queue and its dead-letter queue."""

    visibility_timeout_s: int = Field(120, ge=10, le=MAX_VISIBILITY_TIMEOUT_S)
    # The retry budget: failed tries of one job version, counted in the ledger. Takeovers,
    # releases on shutdown and waits for another holder do not spend it.
    max_attempts: int = Field(3, ge=1, le=100)
    # SQS's own backstop (the redrive policy's maxReceiveCount): every receive counts,
    # including releases that are not the job's fault, so it sits well above max_attempts.
    # It catches a message that kills its worker before the worker can settle it.
    max_receive_count: int = Field(12, ge=1, le=1000)
    retention_s: int = Field(4 * 24 * 3600, ge=MIN_RETENTION_S, le=MAX_RETENTION_S)
    dlq_retention_s: int = Field(MAX_RETENTION_S, ge=MIN_RETENTION_S, le=MAX_RETENTION_S)

    @model_validator(mode="after")
    def _dlq_outlives_source(self) -> QueueSpec:
        # A DLQ keeps the original enqueue time, so it must retain messages longer than
        # the source queue or a redriven message could expire the moment it lands.
        if self.dlq_retention_s <= self.retention_s:
            raise ValueError("dlq_retention_s must be longer than retention_s")
        if self.max_receive_count <= self.max_attempts:
            raise ValueError("max_receive_count must be larger than max_attempts")
        return self


class Deploy(_Strict):
    """How the pool runs on ECS Fargate."""

    cpu: Literal[256, 512, 1024, 2048, 4096, 8192, 16384] = 2048
    memory_mib: int = Field(4096, ge=512, le=122880)
    min_tasks: int = Field(0, ge=0)
    max_tasks: int = Field(4, ge=1, le=1000)
    spot: bool = True
    backlog_per_task: int = Field(1, ge=1, description="Target messages per running task.")
    ephemeral_storage_gib: int = Field(40, ge=21, le=200)

    @model_validator(mode="after")
    def _min_le_max(self) -> Deploy:
        if self.min_tasks > self.max_tasks:
            raise ValueError("min_tasks must not exceed max_tasks")
        return self


class Pool(_Strict):
    """One worker pool: what it takes, how it encodes, how it is queued and deployed."""

    name: PoolName
    description: str = ""
    output_suffix: str = Field("", description="Appended to output names, e.g. '.720p'.")
    applies: Applies
    encode: Encode = Field(default_factory=Encode)
    queue: QueueSpec = Field(default_factory=QueueSpec)
    deploy: Deploy = Field(default_factory=Deploy)
    verify: VerifyPolicy = "stream"

    @property
    def may_replace_originals(self) -> bool:
        """Only a pool that keeps the source's name and size may take its place.

        Renditions (an ``output_suffix``) go beside it under ``--out``, never over it.
        """
        return not self.output_suffix

    def settings_hash(self) -> str:
        """A short stable hash of everything that changes the encoded bytes.

        ``verify`` is left out: it changes how an output is checked, not its bytes, so
        switching it must not make every existing output look stale and re-encode it.
        """
        material = {"applies": self.applies.model_dump(), "encode": self.encode.model_dump()}
        blob = json.dumps(material, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def replacing_pools(pools: Iterable[Pool]) -> frozenset[str]:
    """The one pool among ``pools`` whose outputs may replace originals (empty when none).

    Two such pools would each swap their output in over the same original: refused.
    """
    names = sorted(p.name for p in pools if p.may_replace_originals)
    if len(names) > 1:
        raise ConfigError(
            f"--replace: pools {', '.join(names)} would each replace the original; "
            "choose one with --pool"
        )
    return frozenset(names)


def primary_pool(pools: Iterable[Pool]) -> Pool | None:
    """The pool whose encode serves another pool making the identical encode (None: none).

    It is the one pool that may replace originals: every worker of the farm names the same
    one, it never waits for another pool, and only renditions wait for it (a pool making
    the same encode as the primary copies its output instead: ``hevcq.worker.shared``).
    """
    candidates = [p for p in pools if p.may_replace_originals]
    return candidates[0] if len(candidates) == 1 else None


def default_workers_dir() -> Path:
    """The pool files shipped with hevcq: inside the wheel, else the source checkout's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "workers", here.parents[1] / "workers"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("no workers/ folder found; set HEVCQ_WORKERS_DIR")


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def load_pool(path: Path) -> Pool:
    """Load one pool file; errors name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read pool definition: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a pool definition must be a mapping")
    raw.setdefault("name", path.stem)
    try:
        pool = Pool.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from exc
    if pool.name != path.stem:
        raise ConfigError(f"{path}: name: must match the file name ({path.stem!r})")
    return pool


def load_farm(workers_dir: Path | None = None) -> dict[str, Pool]:
    """Load every ``*.yaml`` or ``*.yml`` pool file in the folder, keyed by pool name."""
    folder = workers_dir or default_workers_dir()
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise ConfigError(f"{folder}: no pool definition files (*.yaml, *.yml)")
    pools: dict[str, Pool] = {}
    for f in files:
        pool = load_pool(f)
        if pool.name in pools:
            raise ConfigError(f"{f}: pool {pool.name!r} is defined twice (.yaml and .yml)")
        pools[pool.name] = pool
    return pools
