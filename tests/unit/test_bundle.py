"""Outputs of many objects: the key rules (hevcq.bundle) and the fenced bundle writer."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hevcq.bundle import (
    MANIFEST,
    MASTER,
    Manifest,
    attempt_prefix,
    attempt_token,
    check_part_path,
    check_token,
    master_uris,
    parts_prefix,
    relative_master,
    sweepable,
    token_of,
)
from hevcq.errors import PermanentError, SupersededJob
from hevcq.formats import content_type
from hevcq.keys import done_key, todo_key
from hevcq.ledger import Claimed, JobKey, Lease, LeaseLostError
from hevcq.library.bundles import download_parts, place_folder, read_manifest
from hevcq.library.quarantine import OutputExists, ReplaceRefused
from hevcq.media.decide import shares_encode
from hevcq.messages import JobResult
from hevcq.metadata import META_MANIFEST_ETAG, META_PARTS, META_SOURCE_ETAG, META_SOURCE_KEY
from hevcq.objects import ObjectInfo
from hevcq.pools import load_farm
from hevcq.worker.fence import FencedWriter, sweep_parts
from hevcq.worker.lease import LeaseKeeper
from tests.fakes import FakeStore, MemoryLedger
from tests.unit.media_shapes import clip

KEY = "DONE/hls/trips/beach.m3u8"
SOURCE = "TODO/trips/beach.mp4"
MASTER_TEXT = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="audio",DEFAULT=YES,URI="a/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="aud"
v0/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,RESOLUTION=640x360,URI="v0/iframes.m3u8"
"""


def test_parts_live_beside_the_master_under_a_folder_per_attempt() -> None:
    token = attempt_token("host-1/rvn-a")
    assert parts_prefix(KEY) == "DONE/hls/trips/beach.parts/"
    assert attempt_prefix(KEY, token) == f"DONE/hls/trips/beach.parts/{token}/"
    assert token_of(f"DONE/hls/trips/beach.parts/{token}/v0/seg_1.m4s", KEY) == token
    assert token_of("DONE/hls/trips/beach.parts/zz/v0/seg_1.m4s", KEY) is None
    assert token_of("DONE/hls/trips/other.parts/x", KEY) is None
    # A file output's parts (its poster) go beside it under its full name.
    assert parts_prefix("DONE/av1/trips/beach.av1.webm") == "DONE/av1/trips/beach.av1.webm.parts/"


def test_every_attempt_has_its_own_token_and_a_retried_one_the_same() -> None:
    a, b = attempt_token("host-1/rvn-a"), attempt_token("host-1/rvn-b")
    assert a != b
    assert attempt_token("host-1/rvn-a") == a
    assert check_token(a) == a


@pytest.mark.parametrize(
    "hostile",
    [
        *("../x", "/etc/passwd", "a/../b", ".hidden", "v0/.x", "a\\b", "a/b/c/d", "", "v0//s"),
        *("a b", "v0/seg_00001.m4s\n", "poster.jpg\n"),  # ``$`` let a last newline through
    ],
)
def test_a_part_path_from_the_bucket_never_leaves_its_attempt(hostile: str) -> None:
    with pytest.raises(PermanentError):
        check_part_path(hostile)


@pytest.mark.parametrize(
    "hostile", ["../../x", "ABCDEF0123456789", "0123", "x" * 16, "", "0123456789abcdef\n"]
)
def test_a_token_from_the_bucket_is_checked_before_it_names_a_key(hostile: str) -> None:
    with pytest.raises(PermanentError):
        check_token(hostile)


def test_ladder_part_paths_are_plain() -> None:
    for path in ("v0/seg_00001.m4s", "v0/init.mp4", "a/index.m3u8", "poster.jpg", MASTER):
        assert check_part_path(path) == path


def test_the_stable_master_points_into_its_attempt_and_only_there() -> None:
    token = attempt_token("w/1")
    text = relative_master(MASTER_TEXT, KEY, token)
    lead = f"beach.parts/{token}/"
    assert master_uris(text) == [
        f"{lead}a/index.m3u8",
        f"{lead}v0/index.m3u8",
        f"{lead}v0/iframes.m3u8",
    ]
    assert "#EXT-X-STREAM-INF:BANDWIDTH=900000" in text  # everything else as it was


@pytest.mark.parametrize("title", ["Making-of URI=", "x,URI=", "URI=,URI="])
def test_a_rendition_name_that_reads_like_a_uri_is_never_taken_for_one(title: str) -> None:
    """A NAME comes from a file's track title: one ending in ``URI=`` put ``URI="`` at its
    closing quote, and the URI read from there ran to the next quote, so the ladder was
    refused as naming a place outside its attempt, or a URI went unrewritten."""
    token = attempt_token("w/1")
    named = MASTER_TEXT.replace('NAME="audio"', f'NAME="{title}"')
    text = relative_master(named, KEY, token)
    lead = f"beach.parts/{token}/"
    assert f'NAME="{title}"' in text
    assert master_uris(text) == [
        f"{lead}a/index.m3u8",
        f"{lead}v0/index.m3u8",
        f"{lead}v0/iframes.m3u8",
    ]


def test_a_master_naming_a_place_outside_its_attempt_is_refused() -> None:
    with pytest.raises(PermanentError):
        relative_master(
            MASTER_TEXT.replace("v0/index.m3u8\n", "../../hevc/x.m3u8\n"), KEY, "0" * 16
        )
    with pytest.raises(PermanentError):
        relative_master(MASTER_TEXT.replace('URI="a/index', 'URI="/a/index'), KEY, "0" * 16)


def test_only_other_attempts_parts_are_swept() -> None:
    keep, old = attempt_token("w/new"), attempt_token("w/old")
    keys = [
        f"DONE/hls/trips/beach.parts/{keep}/v0/seg_1.m4s",
        f"DONE/hls/trips/beach.parts/{old}/v0/seg_1.m4s",
        f"DONE/hls/trips/beach.parts/{old}/{MANIFEST}",
        "DONE/hls/trips/beach.m3u8",
        "DONE/hls/trips/beachball.parts/x",
    ]
    assert sweepable(keys, KEY, keep) == keys[1:3]
    assert sweepable(keys, KEY, None) == keys[:3]


@pytest.mark.parametrize(
    "other",
    [
        "DONE/hls/trips/beach.parts/notes.m3u8",  # from TODO/trips/beach.parts/notes.mp4
        "DONE/hls/trips/beach.parts/day1/notes.m3u8",
        "DONE/hls/trips/beach.parts/0123456789abcdef.m3u8",
    ],
)
def test_another_sources_output_under_a_parts_named_folder_is_never_swept(other: str) -> None:
    assert sweepable([other], KEY, None) == []
    assert sweepable([other], KEY, attempt_token("w/new")) == []


@pytest.mark.parametrize(
    "rel",
    [
        "trips/beach.parts/0123456789abcdef/clip.mp4",
        "beach.parts/0123456789abcdef/deeper/clip.mp4",
    ],
)
def test_no_source_may_live_where_an_attempt_keeps_its_parts(rel: str) -> None:
    """Attack: a library folder shaped like a ladder's attempt folder. Its output would sit
    where the neighbouring ``beach`` ladder keeps an attempt's parts, and that ladder's
    next commit would sweep it; so the name is refused with its reason, at the scan (the
    upload key) and at the worker (the source key)."""
    with pytest.raises(PermanentError, match="reserved: streaming ladders keep their parts"):
        todo_key(rel)
    with pytest.raises(PermanentError, match="reserved"):
        done_key(f"TODO/{rel}", "hls", extension=".m3u8")


def test_a_commit_sweeps_its_own_stale_parts_and_no_neighbouring_output(tmp_path: Path) -> None:
    """Attack, through the real sweep: outputs of sources in a folder named like the
    ``beach`` ladder's parts folder (allowed names) survive that ladder's commits."""
    store = FakeStore()
    neighbours = ["DONE/hls/trips/beach.parts/notes.m3u8", "DONE/hls/trips/beach.parts/a/b.m3u8"]
    stale = f"DONE/hls/trips/beach.parts/{attempt_token('w/old')}/v0/seg_1.m4s"
    for key in [*neighbours, stale]:
        src = tmp_path / "obj"
        src.write_bytes(b"x")
        store.upload(src, key, {})
    assert sweep_parts(store, KEY, attempt_token("w/new")) == 1
    assert sweep_parts(store, KEY, None) == 0
    assert all(store.head(k) is not None for k in neighbours)
    assert store.head(stale) is None


def test_ladder_parts_carry_the_types_players_expect() -> None:
    assert content_type("x/master.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type("x/v0/seg_00001.m4s") == "video/iso.segment"
    assert content_type("x/v0/init.mp4") == "video/mp4"
    assert content_type("x/poster.jpg") == "image/jpeg"
    assert content_type("x/4/seg_00001.vtt") == "text/vtt"  # subtitles: hls.js reads them


# --- the writer -------------------------------------------------------------------------


def ladder_folder(tmp: Path, name: str = "ladder") -> Path:
    folder = tmp / name
    (folder / "v0").mkdir(parents=True)
    (folder / "a").mkdir()
    (folder / MASTER).write_text(MASTER_TEXT)
    segments = "".join(f"#EXTINF:6,\nseg_{i:05d}.m4s\n" for i in range(3))
    (folder / "v0/index.m3u8").write_text(f'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n{segments}')
    (folder / "v0/iframes.m3u8").write_text('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\nseg_00000.m4s\n')
    (folder / "a/index.m3u8").write_text("#EXTM3U\n")
    for rel in ("v0/init.mp4", "poster.jpg"):
        (folder / rel).write_bytes(rel.encode() * 3)
    for i in range(3):
        (folder / f"v0/seg_{i:05d}.m4s").write_bytes(b"segment %d" % i)
    return folder


def writer(store: FakeStore, ledger: MemoryLedger, worker: str) -> FencedWriter:
    job = JobKey(SOURCE, "hls", "etag1", "settings")
    claim = ledger.claim(job, worker, f"msg-{worker}", lease_s=60)
    assert isinstance(claim, Claimed)
    return FencedWriter(store, LeaseKeeper(ledger, claim.lease), worker)


META = {META_SOURCE_KEY: SOURCE, META_SOURCE_ETAG: "etag1"}


def test_a_bundle_becomes_the_output_by_its_master_written_last(tmp_path: Path) -> None:
    store, ledger = FakeStore(), MemoryLedger()
    w = writer(store, ledger, "w1")
    master = w.put_bundle(ladder_folder(tmp_path), KEY, META)
    assert store.uploads[-1] == KEY  # every part and the manifest before it
    token = master.metadata[META_PARTS]
    assert token == attempt_token(w.attempt)
    manifest = Manifest.model_validate(
        json.loads(store.data[attempt_prefix(KEY, token) + MANIFEST])
    )
    assert (
        master.metadata[META_MANIFEST_ETAG]
        == store.objects[attempt_prefix(KEY, token) + MANIFEST].etag
    )
    assert {p.path for p in manifest.parts} >= {MASTER, "v0/seg_00002.m4s", "poster.jpg"}
    for part in manifest.parts:
        obj = store.objects[attempt_prefix(KEY, token) + part.path]
        assert (obj.etag, obj.size) == (part.etag, part.size)
    # Every URI of the stable master resolves to a part of this attempt.
    folder = "DONE/hls/trips/"
    for uri in master_uris(store.data[KEY].decode()):
        assert folder + uri in store.objects


def test_a_new_commit_sweeps_the_earlier_outputs_parts(tmp_path: Path) -> None:
    store, ledger = FakeStore(), MemoryLedger()
    first = writer(store, ledger, "w1").put_bundle(ladder_folder(tmp_path, "one"), KEY, META)
    ledger2 = MemoryLedger()  # a later job of the same output (a new version, a re-run)
    second = writer(store, ledger2, "w2").put_bundle(ladder_folder(tmp_path, "two"), KEY, META)
    assert first.metadata[META_PARTS] != second.metadata[META_PARTS]
    assert sweep_parts(store, KEY, second.metadata[META_PARTS]) == 10  # 9 files + manifest
    left = store.list_keys(parts_prefix(KEY))
    assert left
    assert all(token_of(k, KEY) == second.metadata[META_PARTS] for k in left)


def test_an_attempt_that_fails_half_way_leaves_no_part_behind(tmp_path: Path) -> None:
    store, ledger = FakeStore(), MemoryLedger()
    w = writer(store, ledger, "w1")
    token = attempt_token(w.attempt)
    store.fail[attempt_prefix(KEY, token) + "v0/seg_00002.m4s"] = OSError("disk gone")
    with pytest.raises(OSError, match="disk gone"):
        w.put_bundle(ladder_folder(tmp_path), KEY, META)
    assert store.list_keys(parts_prefix(KEY)) == []
    assert store.head(KEY) is None


class PausingStore(FakeStore):
    """Runs ``pause`` once, after the first part is written: the writer stalls there."""

    pause: Callable[[], None] | None = None

    def upload(self, src: Path, key: str, metadata: dict[str, str], progress=None) -> ObjectInfo:
        out = super().upload(src, key, metadata, progress)
        if self.pause is not None and ".parts/" in key:
            pause, self.pause = self.pause, None
            pause()
        return out


def test_a_fenced_out_attempt_removes_its_parts_and_changes_nothing(tmp_path: Path) -> None:
    store, ledger = PausingStore(), MemoryLedger()
    paused = writer(store, ledger, "paused")
    committed: list[ObjectInfo] = []

    def taken_over() -> None:  # while the writer stalls, another worker takes over, commits
        item = ledger.items[(SOURCE, "hls")]
        ledger.items[(SOURCE, "hls")] = dataclasses.replace(item, rvn="taken", worker="taker")
        lease = Lease(JobKey(SOURCE, "hls", "etag1", "settings"), "taker", "taken", 60.0)
        taker = FencedWriter(store, LeaseKeeper(ledger, lease), "taker")
        committed.append(taker.put_bundle(ladder_folder(tmp_path, "taker"), KEY, META))

    store.pause = taken_over
    with pytest.raises(LeaseLostError):
        paused.put_bundle(ladder_folder(tmp_path, "paused"), KEY, META)
    assert store.head(KEY) == committed[0]
    kept = committed[0].metadata[META_PARTS]
    assert {token_of(k, KEY) for k in store.list_keys(parts_prefix(KEY))} == {kept}


class LostAnswerStore(FakeStore):
    """Writes the master, then loses the answer (a timeout after the write landed)."""

    def put_if(
        self, src: Path, key: str, metadata: dict[str, str], *, expect: str | None
    ) -> ObjectInfo:
        super().put_if(src, key, metadata, expect=expect)
        raise TimeoutError("the answer was lost")


def test_parts_a_master_names_are_never_removed(tmp_path: Path) -> None:
    store, ledger = LostAnswerStore(), MemoryLedger()
    w = writer(store, ledger, "w1")
    with pytest.raises(TimeoutError):
        w.put_bundle(ladder_folder(tmp_path), KEY, META)
    token = store.objects[KEY].metadata[META_PARTS]
    for uri in master_uris(store.data[KEY].decode()):
        assert "DONE/hls/trips/" + uri in store.objects
    assert all(token_of(k, KEY) == token for k in store.list_keys(parts_prefix(KEY)))


def test_a_ladder_pool_never_takes_a_copy_of_a_file_pools_encode() -> None:
    farm = load_farm()
    info = clip(1920, 1080)
    # Where the hls pool's (unused) encode settings equal the hevc pool's, a ladder job
    # would otherwise be served by a copy of the HEVC file.
    hls = farm["hls"].model_copy(update={"encode": farm["hevc"].encode})
    assert not shares_encode(info, farm["hevc"], hls, "a.mp4")
    assert not shares_encode(info, farm["hevc"], farm["hls"], "a.mp4")
    assert not shares_encode(info, farm["hls"], farm["hevc"], "a.mp4")


# --- a file output with parts of its own (its poster) ---------------------------------

FILE_KEY = "DONE/av1/trips/beach.av1.webm"


def poster_parts(tmp: Path, name: str = "parts") -> tuple[Path, Path]:
    """An encoded file and the folder of its parts (its poster)."""
    out, folder = tmp / f"{name}.webm", tmp / name
    folder.mkdir()
    out.write_bytes(b"webm " + name.encode())
    (folder / "poster.jpg").write_bytes(b"\xff\xd8 jpeg of " + name.encode())
    return out, folder


def test_a_file_and_its_poster_are_committed_as_one_by_the_file_written_last(
    tmp_path: Path,
) -> None:
    store, ledger = FakeStore(), MemoryLedger()
    w = writer(store, ledger, "w1")
    out, folder = poster_parts(tmp_path)
    info = w.put_with_parts(out, folder, FILE_KEY, META)
    assert store.uploads[-1] == FILE_KEY  # the poster and the manifest before it
    assert store.data[FILE_KEY] == out.read_bytes()
    token = info.metadata[META_PARTS]
    assert token == attempt_token(w.attempt)
    prefix = attempt_prefix(FILE_KEY, token)
    assert prefix == f"DONE/av1/trips/beach.av1.webm.parts/{token}/"
    assert store.data[prefix + "poster.jpg"] == (folder / "poster.jpg").read_bytes()
    assert info.metadata[META_MANIFEST_ETAG] == store.objects[prefix + MANIFEST].etag
    manifest = Manifest.model_validate(json.loads(store.data[prefix + MANIFEST]))
    assert [p.path for p in manifest.parts] == ["poster.jpg"]


def test_a_new_file_commit_leaves_only_its_own_poster_after_the_sweep(tmp_path: Path) -> None:
    store = FakeStore()
    out1, parts1 = poster_parts(tmp_path, "one")
    out2, parts2 = poster_parts(tmp_path, "two")
    first = writer(store, MemoryLedger(), "w1").put_with_parts(out1, parts1, FILE_KEY, META)
    second = writer(store, MemoryLedger(), "w2").put_with_parts(out2, parts2, FILE_KEY, META)
    assert sweep_parts(store, FILE_KEY, second.metadata[META_PARTS]) == 2  # poster + manifest
    left = store.list_keys(parts_prefix(FILE_KEY))
    assert {token_of(k, FILE_KEY) for k in left} == {second.metadata[META_PARTS]}
    assert first.metadata[META_PARTS] != second.metadata[META_PARTS]


def test_a_fenced_out_file_attempt_removes_its_poster_and_changes_nothing(
    tmp_path: Path,
) -> None:
    store, ledger = PausingStore(), MemoryLedger()
    paused = writer(store, ledger, "paused")
    committed: list[ObjectInfo] = []

    def taken_over() -> None:
        item = ledger.items[(SOURCE, "hls")]
        ledger.items[(SOURCE, "hls")] = dataclasses.replace(item, rvn="taken", worker="taker")
        lease = Lease(JobKey(SOURCE, "hls", "etag1", "settings"), "taker", "taken", 60.0)
        taker = FencedWriter(store, LeaseKeeper(ledger, lease), "taker")
        out, folder = poster_parts(tmp_path, "taker")
        committed.append(taker.put_with_parts(out, folder, FILE_KEY, META))

    store.pause = taken_over
    out, folder = poster_parts(tmp_path, "paused")
    with pytest.raises(LeaseLostError):
        paused.put_with_parts(out, folder, FILE_KEY, META)
    assert store.head(FILE_KEY) == committed[0]
    assert store.data[FILE_KEY] == b"webm taker"
    kept = committed[0].metadata[META_PARTS]
    assert {token_of(k, FILE_KEY) for k in store.list_keys(parts_prefix(FILE_KEY))} == {kept}


def test_posters_are_a_file_pools_choice_that_changes_no_settings_hash() -> None:
    farm = load_farm()
    hevc = farm["hevc"]
    with_poster = hevc.model_copy(update={"poster": True})
    assert with_poster.settings_hash() == hevc.settings_hash()  # no library re-encodes
    with pytest.raises(ValueError, match=r"ladder\.poster"):
        type(hevc).model_validate({**farm["hls"].model_dump(), "poster": True})
    # A copy of another pool's encode would carry no poster: such a pool encodes itself.
    info = clip(1920, 1080)
    p1080 = farm["1080p"]
    assert shares_encode(info, hevc, p1080, "a.mp4")
    assert not shares_encode(info, hevc, p1080.model_copy(update={"poster": True}), "a.mp4")


# --- reading a ladder back (hevcq.library.bundles): the bucket may be hostile -----------


def committed(tmp: Path) -> tuple[FakeStore, ObjectInfo, JobResult]:
    store, ledger = FakeStore(), MemoryLedger()
    master = writer(store, ledger, "w1").put_bundle(ladder_folder(tmp, "made"), KEY, META)
    result = JobResult(
        job_id="j",
        pool="hls",
        bucket="b",
        source_key=SOURCE,
        source_etag="etag1",
        outcome="done",
        output_key=KEY,
        output_etag=master.etag,
    )
    return store, master, result


def forge_manifest(store: FakeStore, master: ObjectInfo, **changes: object) -> None:
    """A compromised worker rewrites the manifest the committed master names."""
    key = attempt_prefix(KEY, master.metadata[META_PARTS]) + MANIFEST
    doc = json.loads(store.data[key]) | changes
    store.data[key] = json.dumps(doc).encode()


def forge_manifest_part(store: FakeStore, master: ObjectInfo, path: str, **changes: object) -> None:
    key = attempt_prefix(KEY, master.metadata[META_PARTS]) + MANIFEST
    doc = json.loads(store.data[key])
    doc["parts"] = [p | changes if p["path"] == path else p for p in doc["parts"]]
    store.data[key] = json.dumps(doc).encode()


def test_a_committed_ladder_is_read_back_whole(tmp_path: Path) -> None:
    store, master, r = committed(tmp_path)
    (tmp_path / "s").mkdir()
    manifest = read_manifest(store, master, r, tmp_path / "s")
    download_parts(store, KEY, manifest, tmp_path / "home")
    assert (tmp_path / "home" / "v0" / "seg_00002.m4s").read_bytes() == b"segment 2"
    (tmp_path / "out").mkdir()
    placed = place_folder(tmp_path / "home", tmp_path / "out" / "beach.hls")
    assert (placed / MASTER).read_text() == MASTER_TEXT


@pytest.mark.parametrize("path", ["../../../escaped", "/tmp/escaped", "v0/../../escaped"])
def test_a_forged_manifest_cannot_write_outside_the_ladder_folder(
    tmp_path: Path, path: str
) -> None:
    store, master, r = committed(tmp_path)
    parts = json.loads(store.data[attempt_prefix(KEY, master.metadata[META_PARTS]) + MANIFEST])
    parts["parts"].append({"path": path, "etag": "x", "size": 1})
    forge_manifest(store, master, parts=parts["parts"])
    (tmp_path / "s").mkdir()
    with pytest.raises(ReplaceRefused, match="not a ladder manifest"):
        read_manifest(store, master, r, tmp_path / "s")
    assert not list(tmp_path.rglob("escaped"))


def test_a_forged_token_never_names_a_key(tmp_path: Path) -> None:
    store, master, r = committed(tmp_path)
    forged = ObjectInfo(KEY, master.size, master.etag, {**master.metadata, META_PARTS: "../../x"})
    store.objects[KEY] = forged
    (tmp_path / "s").mkdir()
    with pytest.raises(ReplaceRefused, match="not an attempt token"):
        read_manifest(store, forged, r, tmp_path / "s")


def test_a_manifest_of_another_source_is_refused(tmp_path: Path) -> None:
    store, master, r = committed(tmp_path)
    forge_manifest(store, master, source_key="TODO/someone/else.mp4")
    (tmp_path / "s").mkdir()
    with pytest.raises(ReplaceRefused, match="another job"):
        read_manifest(store, master, r, tmp_path / "s")


def test_a_playlist_naming_anything_outside_the_ladder_is_refused(tmp_path: Path) -> None:
    store, master, r = committed(tmp_path)
    prefix = attempt_prefix(KEY, master.metadata[META_PARTS])
    forged = b"#EXTM3U\n#EXTINF:6,\n../../../../etc/passwd\n"
    store.data[prefix + "v0/index.m3u8"] = forged
    old = store.objects[prefix + "v0/index.m3u8"]
    store.objects[prefix + "v0/index.m3u8"] = ObjectInfo(old.key, len(forged), old.etag)
    forge_manifest_part(store, master, "v0/index.m3u8", size=len(forged))
    (tmp_path / "s").mkdir()
    manifest = read_manifest(store, master, r, tmp_path / "s")
    with pytest.raises(ReplaceRefused, match="not in the ladder"):
        download_parts(store, KEY, manifest, tmp_path / "home")


def test_a_part_swept_by_a_newer_commit_makes_the_reader_try_again(tmp_path: Path) -> None:
    store, master, r = committed(tmp_path)
    (tmp_path / "s").mkdir()
    manifest = read_manifest(store, master, r, tmp_path / "s")
    store.delete(attempt_prefix(KEY, manifest.token) + "v0/seg_00001.m4s")
    with pytest.raises(SupersededJob):
        download_parts(store, KEY, manifest, tmp_path / "home")


def test_a_changed_master_makes_the_reader_try_again(tmp_path: Path) -> None:
    store, master, r = committed(tmp_path)
    store.objects[KEY] = ObjectInfo(KEY, 1, "newer", dict(master.metadata))
    with pytest.raises(SupersededJob):
        read_manifest(store, master, r, tmp_path)


def test_a_different_ladder_in_the_way_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / MASTER).write_text("#EXTM3U\n")
    (tmp_path / "out" / "beach.hls").mkdir(parents=True)
    (tmp_path / "out" / "beach.hls" / MASTER).write_text("#EXTM3U\n# mine\n")
    with pytest.raises(OutputExists):
        place_folder(tmp_path / "new", tmp_path / "out" / "beach.hls")
    assert (tmp_path / "out" / "beach.hls" / MASTER).read_text() == "#EXTM3U\n# mine\n"
