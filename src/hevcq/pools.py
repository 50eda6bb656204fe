"""The farm definition: one YAML file per worker pool, shared by Python and Terraform; the
settings hash, and which pool may replace originals."""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hevcq.bundle import MASTER_SUFFIX
from hevcq.errors import ConfigError
from hevcq.formats import (
    AUDIO_ENCODERS,
    AUTO,
    AUTO_CHOICES,
    CONTAINERS,
    VIDEO_CODECS,
    X26X_PRESETS,
    Container,
    VideoCodec,
    audio_codec,
    output_container,
    pair_problem,
)
from hevcq.limits import MAX_RETENTION_S, MAX_VISIBILITY_TIMEOUT_S, MIN_RETENTION_S

# The metrics a quality target may be in (``hevcq.media.quality``).
Metric = Literal["vmaf", "xpsnr"]

PoolName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$")]
# How a worker proves an output before uploading it (hevcq.media.verify; the decision is
# docs/decisions/0016-media-policy.md): "stream": the file's video is the encoder's own
# stream, shapes checked, first and last GOP decoded; "full": every frame decoded;
# "quality": as "stream", and the output's score (VMAF or XPSNR) must reach the pool's
# quality target, less its margin.
VerifyPolicy = Literal["stream", "full", "quality"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Source codecs the shipped pools took up after their settings hashes were fixed
# (decision 0036): they stay out of the hash. Taking sources of one more codec changes no
# output a pool made before, so naming one in a list must not make every existing output
# look stale and re-encode a library. A codec the shipped lists take up later joins them.
UNHASHED_SOURCE_CODECS = frozenset(
    {
        "svq1",
        "cinepak",
        "gif",
        "png",
        "apng",
        "qtrle",
        "dnxhd",
        "cfhd",
        "v210",
        "utvideo",
        "ffv1",
        "huffyuv",
        "ffvhuff",
        "rawvideo",
    }
)


class Applies(_Strict):
    """Which sources a pool takes."""

    source_codecs: tuple[str, ...] = Field(min_length=1)
    target_height: int | None = Field(
        None, gt=0, description="Rendition size on the short side; None keeps the source size."
    )

    @field_validator("source_codecs")
    @classmethod
    def _known_codecs(cls, codecs: tuple[str, ...]) -> tuple[str, ...]:
        """Each name is a video codec as the probe reports it (libavcodec's name): a typo
        such as ``h265`` or ``x264`` made a pool that silently applied to nothing."""
        known = video_codec_names()
        for name in codecs:
            if known and name not in known:
                hint = CODEC_ALIASES.get(name.lower()) or next(
                    iter(difflib.get_close_matches(name.lower(), sorted(known), n=1)), None
                )
                also = f" (did you mean {hint}?)" if hint else ""
                msg = f"{name!r} is not a video codec name as libavcodec gives it{also}"
                raise ValueError(msg)
        return codecs

    def hash_material(self) -> dict[str, Any]:
        """What the settings hash covers: the rendition size, and the codecs taken but
        ``UNHASHED_SOURCE_CODECS``, in the list's order (as the whole model hashed
        before, so that no existing output changes its hash)."""
        codecs = [c for c in self.source_codecs if c not in UNHASHED_SOURCE_CODECS]
        return {"source_codecs": codecs, "target_height": self.target_height}


# What people call a codec, against the name the probe reports (for the error's hint).
CODEC_ALIASES = {
    "h265": "hevc",
    "h.265": "hevc",
    "x265": "hevc",
    "hvc1": "hevc",
    "hev1": "hevc",
    "avc": "h264",
    "avc1": "h264",
    "h.264": "h264",
    "x264": "h264",
    "mpeg2": "mpeg2video",
    "mpeg-2": "mpeg2video",
    "mpeg-4": "mpeg4",
    "xvid": "mpeg4",
    "divx": "mpeg4",
    "vp09": "vp9",
    "av01": "av1",
}


@functools.cache
def video_codec_names() -> frozenset[str]:
    """The names of the video codecs this libavcodec decodes, as the probe reports them
    (``canonical_name``); empty where PyAV is not installed (the API's Lambda), which then
    takes any name."""
    try:
        import av  # noqa: PLC0415 - only the pool check needs it here
    except ImportError:
        return frozenset()
    names = set()
    for name in av.codecs_available:
        try:
            codec = av.Codec(name, "r")
        except (ValueError, av.FFmpegError):
            continue  # an encoder only
        if codec.type == "video":
            names.add(codec.canonical_name)
    return frozenset(names)


class Encode(_Strict):
    """How a pool encodes: every field here feeds the settings hash stored on outputs.

    ``codec`` and ``container`` come from the table in ``hevcq.formats``; a pair it does
    not allow (HEVC or AAC in WebM) is refused when the pool file is loaded.
    """

    codec: str = "hevc"
    # "auto": MKV for Matroska sources (their subtitles and attachments), else MP4.
    container: str = AUTO
    crf: int = Field(26, ge=0, le=63)
    preset: str | None = Field(None, description="The encoder's preset; None: its default.")
    x265_params: dict[str, str] = Field(default_factory=dict)
    # The codec of audio that is re-encoded; None: the container's default (AAC, or Opus
    # in WebM). Audio the container takes as it is is copied.
    audio_codec: str | None = None
    # For a stereo pair: a wider encoded stream gets it for each pair (5.1: three times).
    audio_bitrate_kbps: int = Field(160, ge=32, le=512)
    keep_subtitles: bool = True

    @model_validator(mode="before")
    @classmethod
    def _legacy_encoder_name(cls, data: Any) -> Any:
        # Pool files from before codecs were chosen say ``video_codec: libx265``.
        if isinstance(data, dict) and data.get("video_codec") == "libx265":
            data = {k: v for k, v in data.items() if k != "video_codec"}
            data.setdefault("codec", "hevc")
        return data

    @model_validator(mode="after")
    def _formats_go_together(self) -> Encode:
        problem = pair_problem(self.codec, self.container, self.audio_codec)
        if problem:
            raise ValueError(problem)
        video = self.video
        if self.crf > video.max_crf:
            raise ValueError(f"crf {self.crf} is above {video.label}'s maximum {video.max_crf}")
        if self.preset is not None and self.preset not in video.presets:
            if not video.presets:
                raise ValueError(f"{video.encoder} takes no preset")
            presets = ", ".join(video.presets)
            raise ValueError(f"preset {self.preset!r} is not one of {video.encoder}'s: {presets}")
        if self.x265_params and self.codec != "hevc":
            raise ValueError(f"x265_params apply to hevc only, not {self.codec}")
        return self

    @property
    def video(self) -> VideoCodec:
        """The video codec's entry in the format table."""
        return VIDEO_CODECS[self.codec]

    @property
    def encoders(self) -> frozenset[str]:
        """The ffmpeg encoders this pool's outputs may need (video and audio)."""
        boxes = AUTO_CHOICES if self.container == AUTO else (self.container,)
        audio = {AUDIO_ENCODERS[audio_codec(CONTAINERS[b], self.audio_codec)] for b in boxes}
        return frozenset({self.video.encoder, *audio})

    @property
    def encoder_preset(self) -> str:
        """The preset passed to the encoder: the pool's, else the encoder's default."""
        return self.preset if self.preset is not None else self.video.default_preset

    def container_for(self, source_name: str) -> Container:
        """The container this pool writes for a source of this name."""
        return output_container(self.container, source_name)

    def hash_material(self) -> dict[str, Any]:
        """What the settings hash covers. HEVC pools in an ``auto`` container hash the
        same fields as before codecs and containers were chosen, so their existing outputs
        stay current; anything else adds its codec and container."""
        box = CONTAINERS[AUTO_CHOICES[0] if self.container == AUTO else self.container]
        material: dict[str, Any] = {
            "video_codec": self.video.encoder,
            "crf": self.crf,
            "preset": self.encoder_preset,
            "x265_params": dict(self.x265_params),
            "audio_codec": audio_codec(box, self.audio_codec),
            "audio_bitrate_kbps": self.audio_bitrate_kbps,
            "keep_subtitles": self.keep_subtitles,
        }
        if self.container != AUTO:
            material["container"] = self.container
        return material


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


# The size limit of a search asked for by ``--target-vmaf`` when the pool names none: an
# output above 80 % of its source saves too little to be worth replacing it with.
TARGET_SIZE_PERCENT = 80.0


class Quality(_Strict):
    """A pool's quality target: every output of the pool is scored against its source
    (``hevcq.media.quality``) and its score goes on the job's result.

    The target is one metric: ``vmaf`` (0-100) or ``xpsnr`` (dB); callers read
    ``metric`` and ``target`` instead of the fields.

    With a search (``searches``), the worker chooses each source's CRF for the target
    before encoding it (``hevcq.media.crfsearch``) instead of using ``encode.crf``, which
    is then only the search's first guess; a source that cannot reach the target within
    ``max_size_percent`` of its size keeps its original.
    """

    vmaf: float | None = Field(None, ge=0, le=100, description="The VMAF an output should reach.")
    xpsnr: float | None = Field(
        None, ge=10, le=100, description="The XPSNR (luma, dB) an output should reach."
    )
    # How far below the target ``verify: quality`` still accepts an output.
    margin: float = Field(1.0, ge=0, le=100)
    phone: bool = Field(False, description="Also score with VMAF's phone model.")
    max_size_percent: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="The largest output a search may choose, in % of the source.",
    )
    # None: search exactly when a size limit is set. A target alone keeps meaning what it
    # meant before searches existed: the pool's CRF, scored.
    search: bool | None = None

    @model_validator(mode="after")
    def _one_target_and_a_search_for_a_limit(self) -> Quality:
        if (self.vmaf is None) == (self.xpsnr is None):
            raise ValueError("name exactly one target: vmaf (0-100) or xpsnr (dB)")
        if self.search is False and self.max_size_percent is not None:
            raise ValueError("max_size_percent limits a CRF search, and search is false")
        return self

    @property
    def metric(self) -> Metric:
        """The metric the target is in."""
        return "vmaf" if self.vmaf is not None else "xpsnr"

    @property
    def target(self) -> float:
        """The score an output should reach, in the target's metric."""
        if self.vmaf is not None:
            return self.vmaf
        if self.xpsnr is None:  # the validator names exactly one: never here
            raise ValueError("no quality target")
        return self.xpsnr

    @property
    def searches(self) -> bool:
        """Whether the worker searches the CRF for this target."""
        return self.search if self.search is not None else self.max_size_percent is not None

    def hash_material(self) -> dict[str, Any] | None:
        """What a search adds to the settings hash: the target and the limit decide the
        CRF, and so the bytes (None without a search: a score changes no byte)."""
        if not self.searches:
            return None
        return {self.metric: self.target, "max_size_percent": self.max_size_percent}


# The ladder's preset when its pool names none (``media.ladder.PRESET``, the same value).
LADDER_PRESET = "veryfast"


class Ladder(_Strict):
    """A pool whose output is a streaming ladder (``hevcq.media.ladder``): HLS with CMAF
    segments, H.264 always, and these codec groups beside it. Its output is many objects
    committed as one (``hevcq.bundle``)."""

    groups: tuple[Literal["hevc", "av1"], ...] = ()
    poster: bool = True
    # Rungs, CRFs and caps from the source's own rate-quality curves for the pool's
    # quality target (``hevcq.media.pertitle``) instead of the fixed table.
    per_title: bool = False
    # The x264 and x265 preset of the H.264 and HEVC rungs (and of a per-title ladder's
    # probes); None: ``media.ladder.PRESET``, veryfast. A slower one spends more CPU for
    # a better picture at the same CRF (docs/benchmarks.md, "Ladder"; decision 0035).
    preset: str | None = None

    @field_validator("preset")
    @classmethod
    def _a_x26x_preset(cls, preset: str | None) -> str | None:
        if preset is not None and preset not in X26X_PRESETS:
            raise ValueError(f"{preset!r} is not an x264/x265 preset: {', '.join(X26X_PRESETS)}")
        return preset

    def hash_material(self, quality: Quality | None) -> dict[str, Any]:
        """What the ladder adds to the settings hash. A fixed ladder hashes as it did
        before per-title ladders and presets existed; a per-title one adds its target, a
        preset other than the default itself (naming the default changes no byte)."""
        default = self.preset in (None, LADDER_PRESET)
        unset = {"per_title"} | ({"preset"} if default else set())
        material = self.model_dump(mode="json", exclude=unset)
        if self.per_title and quality is not None:
            material["per_title_vmaf"] = quality.vmaf
        return material

    @property
    def encoders(self) -> frozenset[str]:
        """The ffmpeg encoders the ladder needs."""
        extra = {"hevc": "libx265", "av1": "libsvtav1"}
        return frozenset({"libx264", "aac", *(extra[g] for g in self.groups)})


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
    # Scored on every output when set; ``verify: quality`` fails an output below it.
    quality: Quality | None = None
    # Whether an ingest that names no pools (``--pools``) uses this one. A pool that is
    # off by default still has its queue and workers; an upload that did not choose it
    # is skipped by them at once (``hevcq.metadata.client_chose``).
    default: bool = True
    # A streaming ladder instead of one file (``encode`` then does not apply).
    ladder: Ladder | None = None
    # A poster (``hevcq.media.poster``) stored with each file output, for apps: a part of
    # the output's own attempt (``hevcq.bundle``), named by the output's metadata. Not in
    # the settings hash: it changes no encoded byte. A ladder has its own (``ladder.poster``).
    poster: bool = False

    @model_validator(mode="after")
    def _quality_policy_has_a_target(self) -> Pool:
        if self.verify == "quality" and self.quality is None:
            raise ValueError("verify: quality needs a quality target (quality: {vmaf: 95})")
        if self.ladder is not None and self.poster:
            raise ValueError("a ladder's poster is set by ladder.poster, not poster")
        if self.ladder is not None and self.verify == "quality":
            raise ValueError("a ladder is checked by its own rules; verify: quality is for files")
        if self.ladder is not None and self.ladder.per_title and self.quality is None:
            raise ValueError("ladder.per_title needs a quality target (quality: {vmaf: 93})")
        per_title = self.ladder is not None and self.ladder.per_title
        if per_title and self.quality is not None and self.quality.metric != "vmaf":
            raise ValueError("ladder.per_title picks its rungs by VMAF: give quality.vmaf")
        return self

    @property
    def encoders(self) -> frozenset[str]:
        """The ffmpeg encoders this pool's outputs may need."""
        return self.ladder.encoders if self.ladder is not None else self.encode.encoders

    @property
    def may_replace_originals(self) -> bool:
        """Only a pool that keeps the source's name and size may take its place.

        Renditions (an ``output_suffix``) go beside it under ``--out``, never over it, and so
        does an output in a container the pool names (a WebM copy is not the original's
        stand-in).
        """
        return not self.output_suffix and self.encode.container == AUTO and self.ladder is None

    @property
    def scored_at_own_size(self) -> bool:
        """A rendition's quality is measured at its own size (``quality.compared_size``):
        scored against its source at the source's size, a 720p rendition of sharp 1080p
        footage stays near VMAF 90 at any CRF, and a target of 95 either made none at all
        or spent CRF 10 trying to put back what the downscale left out."""
        return self.applies.target_height is not None and self.ladder is None

    @property
    def fixed_extension(self) -> str | None:
        """The extension of every output of this pool; None when it follows the source
        (an ``auto`` container: ``hevcq.keys.output_extension``). A ladder's output is its
        master playlist (``hevcq.bundle``)."""
        if self.ladder is not None:
            return MASTER_SUFFIX
        box = self.encode.container
        return None if box == AUTO else CONTAINERS[box].extension

    def with_target(self, vmaf: float) -> Pool:
        """This pool as one run with ``--target-vmaf`` uses it: a file pool searches its CRF
        for ``vmaf`` (keeping its own size limit, or ``TARGET_SIZE_PERCENT``, its margin and
        models); a ladder is encoded by its own table and is left as it is.

        The client and the workers both derive the pool this way (the target rides on the
        upload, ``metadata.META_TARGET_VMAF``), so both compute the same settings hash: an
        output made for a target is current for that target only.
        """
        if self.ladder is not None:
            return self
        own = self.quality
        quality = Quality(
            vmaf=vmaf,
            margin=own.margin if own is not None else 1.0,
            phone=own.phone if own is not None else False,
            max_size_percent=(
                own.max_size_percent
                if own is not None and own.max_size_percent is not None
                else TARGET_SIZE_PERCENT
            ),
            search=True,
        )
        return self.model_copy(update={"quality": quality})

    def settings_hash(self) -> str:
        """A short stable hash of everything that changes the encoded bytes.

        ``verify`` and a quality target that is only scored are left out: they change how
        an output is checked, not its bytes, so switching them must not make every
        existing output look stale and re-encode it. A target the CRF is searched for
        changes the bytes, and is in.
        """
        material: dict[str, Any] = {
            "applies": self.applies.hash_material(),
            "encode": self.encode.hash_material(),
        }
        if self.ladder is not None:
            material["ladder"] = self.ladder.hash_material(self.quality)
        search = self.quality.hash_material() if self.quality is not None else None
        if search is not None:
            if self.scored_at_own_size:
                search = {**search, "scored_at": "own size"}
            material["crf_search"] = search
        blob = json.dumps(material, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def choose_pools(farm: dict[str, Pool], names: str | None) -> dict[str, Pool]:
    """The pools a run uses: ``names`` (comma separated, as ``--pools`` takes them), or
    every pool that is on by default. Raises ``ConfigError`` naming what is wrong."""
    if names is None:
        chosen = [n for n, p in farm.items() if p.default]
        if not chosen:
            raise ConfigError("no pool is on by default; choose some with --pools")
    else:
        chosen = [n.strip() for n in names.split(",") if n.strip()]
        unknown = sorted(set(chosen) - set(farm))
        if unknown:
            known = ", ".join(sorted(farm))
            raise ConfigError(
                f"--pools: unknown pool(s) {', '.join(unknown)}; known: {known}"
                + "".join(_pool_hint(name, farm) for name in unknown)
            )
        if not chosen:
            raise ConfigError("--pools: name at least one pool")
    return {n: farm[n] for n in sorted(set(chosen))}


def _pool_hint(name: str, farm: dict[str, Pool]) -> str:
    """What to do about one unknown pool name: another case of a known one, or an optional
    pool that ships beside the default ones and is not in this farm."""
    same = [known for known in farm if known.lower() == name.lower()]
    if same:
        return f" ({name}: did you mean {same[0]}?)"
    try:
        shipped = default_workers_dir()
    except ConfigError:
        return ""
    optional = shipped / "optional" / f"{name}.yaml"
    if optional.is_file():
        return (
            f" ({name} is an optional pool: copy {optional} into your pools folder, the one"
            f" HEVCQ_WORKERS_DIR names; start that folder as a copy of {shipped})"
        )
    return ""


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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: where (1-based, as editors count) and what."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{exc.problem}"
    return " ".join(str(exc).split())


def load_pool(path: Path) -> Pool:
    """Load one pool file; errors name the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pool definition: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a pool definition: not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not a pool definition: {_yaml_problem(exc)}") from exc
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
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "no such folder"
        raise ConfigError(f"{folder}: {what} (the pool definition files' folder)")
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
