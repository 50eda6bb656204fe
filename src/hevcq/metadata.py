"""Every name hevcq writes into an object's user metadata, and the small formats of their
values: one file that the uploading client, the workers and the API all read.

S3 keeps user metadata as ``x-amz-meta-<name>`` headers, lower case; HEAD returns them
without the prefix (``hevcq.objects.ObjectInfo.metadata``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# --- On an output, written by the worker that committed it -------------------------------
META_SOURCE_KEY = "hevcq-source-key"
META_SOURCE_ETAG = "hevcq-source-etag"
META_SETTINGS = "hevcq-settings-hash"
META_POOL = "hevcq-pool"
META_JOB = "hevcq-job-id"
META_ATTEMPT = "hevcq-attempt"  # the writer's lease: tells its own earlier write from others'
# An output copied from another pool's identical encode: that output's key and ETag.
META_COPIED_FROM = "hevcq-copied-from"
META_COPIED_ETAG = "hevcq-copied-etag"
# A bundle output's master (``hevcq.bundle``): the attempt token its URIs point into, and
# the ETag of that attempt's manifest.
META_PARTS = "hevcq-parts"
META_MANIFEST_ETAG = "hevcq-manifest-etag"

# --- On a source, written by the client that uploaded it ---------------------------------
META_REL_PATH = "hevcq-rel-path"
META_SIZE = "hevcq-size"
META_MTIME = "hevcq-mtime-ns"
META_HASH = "hevcq-content-hash"  # the scan's fingerprint (walk.fingerprint)
META_LIBRARY = "hevcq-library"  # which library uploaded it: fetch leaves others' results alone
# The source's output name keeps its extension (``hevcq.keys.sharing_sources``).
META_NAMING = "hevcq-naming"
WITH_SOURCE_EXT = "with-source-ext"
# Another source in the folder has the same name but for its extension
# (``hevcq.keys.sharing_stems``): in a pool whose outputs all take one extension, the
# output name keeps the source's.
META_NAMING_STEM = "hevcq-naming-stem"
STEM_SHARED = "shared"
META_CLIENT_SKIPS = "hevcq-client-skips"  # pools the client decided to skip, comma separated
META_CLIENT_SETTLED = "hevcq-client-settled"  # pools whose earlier outcome the client holds
# The pools the uploader chose for this file, comma separated; absent: every pool.
META_POOLS = "hevcq-pools"
# A VMAF target for this upload (``hevcq ingest --target-vmaf``): every file pool searches
# its CRF for it (``pools.Pool.with_target``).
META_TARGET_VMAF = "hevcq-target-vmaf"

# --- On an API upload, written by the presigned POST policy ------------------------------
META_OWNER = "hevcq-owner"
META_UPLOAD_ID = "hevcq-upload-id"


def client_skips_metadata(skipped: Iterable[str]) -> dict[str, str]:
    """Upload metadata naming the pools the client decided to skip (empty when none)."""
    skips = sorted(skipped)
    return {META_CLIENT_SKIPS: ",".join(skips)} if skips else {}


def client_settled_metadata(pools: Iterable[str]) -> dict[str, str]:
    """Upload metadata naming the pools that settled this file in an earlier run."""
    settled = sorted(pools)
    return {META_CLIENT_SETTLED: ",".join(settled)} if settled else {}


def _named(metadata: Mapping[str, str], name: str, pool: str) -> bool:
    return pool in metadata.get(name, "").split(",")


def chosen_pools_metadata(pools: Iterable[str]) -> dict[str, str]:
    """Upload metadata naming the pools chosen for the file (every other pool skips it)."""
    return {META_POOLS: ",".join(sorted(pools))}


def client_chose(metadata: Mapping[str, str], pool: str) -> bool:
    """Whether the uploader chose ``pool`` for this object (an upload naming no pools
    chose them all)."""
    return META_POOLS not in metadata or _named(metadata, META_POOLS, pool)


def client_settled(metadata: Mapping[str, str], pool: str) -> bool:
    """Whether the uploading client settled ``pool`` itself: a pool it did not choose, a
    skip it decided, or an outcome it holds from an earlier run."""
    return (
        not client_chose(metadata, pool)
        or client_skipped(metadata, pool)
        or client_holds(metadata, pool)
    )


def client_holds(metadata: Mapping[str, str], pool: str) -> bool:
    """Whether the uploading client holds ``pool``'s outcome from an earlier run."""
    return _named(metadata, META_CLIENT_SETTLED, pool)


def client_skipped(metadata: Mapping[str, str], pool: str) -> bool:
    """Whether the uploading client decided that ``pool`` skips this object."""
    return _named(metadata, META_CLIENT_SKIPS, pool)


def target_metadata(vmaf: float | None) -> dict[str, str]:
    """Upload metadata carrying a run's VMAF target (empty without one)."""
    return {} if vmaf is None else {META_TARGET_VMAF: f"{vmaf:g}"}


def client_target(metadata: Mapping[str, str]) -> float | None:
    """The VMAF target an upload carries, or None. Raises ``ValueError`` with a one-line
    reason for a value that is not a number in (0, 100]: whoever can upload can write it."""
    raw = metadata.get(META_TARGET_VMAF)
    if raw is None:
        return None
    try:
        vmaf = float(raw)
    except ValueError:
        raise ValueError(f"the upload's VMAF target {raw[:40]!r} is not a number") from None
    if not 0 < vmaf <= 100:  # also refuses nan
        raise ValueError(f"the upload's VMAF target {raw[:40]!r} is not in (0, 100]")
    return vmaf
