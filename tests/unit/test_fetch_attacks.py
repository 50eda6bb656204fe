"""Forged results: an output lands only where the ledger's record puts it, as committed.

Each test is an attack by whoever can publish results and write ``DONE/<pool>/`` (any
pool's task role on AWS): a result naming a key of its choosing, or bytes changed after
the ledger's commit. Every one is refused with a reason, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hevcq.library.catalog import FileRecord
from hevcq.library.fetch import Fetcher
from hevcq.library.walk import fingerprint
from tests.unit.test_fetch import OUTPUT, Lib, make_lib, out_name, put

REPLACE = frozenset({"hevc"})


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Lib]:
    made = make_lib(tmp_path)
    made.out = tmp_path / "x" / "y" / "out"  # a traversal lands in tmp_path/x, never above
    yield made
    made.state.close()


def files_written(lib: Lib) -> list[Path]:
    """Every file or folder outside the library and its catalog: none may appear."""
    top = lib.root.parent
    skip = (lib.root, top / "state.sqlite3")
    return [
        p
        for p in top.rglob("*")
        if not any(p == s or s in p.parents for s in skip)
        and not p.name.startswith("state.sqlite3")
    ]


def committed(
    lib: Lib, pool: str = "hevc", key: str | None = None, data: bytes = OUTPUT, **kw: Any
) -> str:
    """A ledger record of ``key`` (by default the output's own) as done, and its object."""
    key = key or f"DONE/{pool}/{out_name(pool)}"
    put(lib.objects, key, data)
    lib.ledger.set(
        "TODO/a.mp4", pool, "done", output_etag=f"etag-{key}", output_bytes=len(data), **kw
    )
    job = ("TODO/a.mp4", pool)
    lib.ledger.items[job] = dataclasses.replace(lib.ledger.items[job], output_key=key)
    return key


def refused(lib: Lib, fetcher: Fetcher, says: str, **result: Any) -> None:
    got = fetcher.process(lib.result("hevc", **result))
    assert got.action == "refused", got
    assert says in got.reason
    assert files_written(lib) == []


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("DONE/hevc/../../../somewhere/authorized_keys", "not a plain relative path"),
        ("DONE/hevc/./a.mp4", "not a plain relative path"),
        ("DONE/hevc//a.mp4", "not a plain relative path"),
        ("DONE/hevc/..\\..\\a.mp4", "not a plain relative path"),
        ("DONE/720p/a.720p.mp4", "is not under DONE/hevc/"),
        ("DONE/hevc/deeper/a.mp4", "not beside its source"),
    ],
)
@pytest.mark.parametrize("replace", [frozenset(), REPLACE])
def test_a_key_the_ledger_agrees_with_is_still_only_a_plain_name_in_its_pool(
    lib: Lib, key: str, says: str, replace: frozenset[str]
) -> None:
    # The worker that forged the result also committed the key: only its shape can tell.
    key = committed(lib, key=key)
    refused(lib, lib.fetcher(replace=replace), says, output_key=key, output_etag=f"etag-{key}")
    assert lib.src.read_bytes() == lib.objects.data["TODO/a.mp4"]


def test_an_absolute_key_is_refused(lib: Lib) -> None:
    key = committed(lib, key=str(lib.root.parent / "somewhere" / "authorized_keys"))
    refused(
        lib, lib.fetcher(), "is not under DONE/hevc/", output_key=key, output_etag=f"etag-{key}"
    )


@pytest.mark.parametrize("etag", ["same", None])
@pytest.mark.parametrize("replace", [frozenset(), REPLACE])
def test_a_result_naming_another_key_than_the_ledgers_record_is_refused(
    lib: Lib, etag: str | None, replace: frozenset[str]
) -> None:
    good = committed(lib)
    # The committed bytes copied under a key of the attacker's choosing: same ETag.
    evil = "DONE/hevc/../../../somewhere/authorized_keys"
    lib.objects.add(evil, etag=f"etag-{good}", data=OUTPUT)
    refused(
        lib,
        lib.fetcher(replace=replace),
        "disagrees with the ledger",
        output_key=evil,
        output_etag=f"etag-{good}" if etag else None,
    )


def test_a_symlinked_folder_inside_out_pointing_outside_is_refused(lib: Lib) -> None:
    committed(lib)
    outside = lib.root.parent / "elsewhere"
    outside.mkdir()
    lib.out.mkdir(parents=True)
    (lib.out / "hevc").symlink_to(outside)
    got = lib.fetcher().process(lib.result("hevc"))
    assert got.action == "refused", got
    assert "outside" in got.reason
    assert list(outside.iterdir()) == []


def test_a_symlinked_folder_inside_the_library_pointing_outside_is_refused(lib: Lib) -> None:
    # The result's source lies in a folder that is a link out of the library (replace).
    outside = lib.root.parent / "elsewhere"
    outside.mkdir()
    (outside / "a.mp4").write_bytes(lib.src.read_bytes())
    (lib.root / "sub").symlink_to(outside)
    fp = fingerprint(outside / "a.mp4")
    st = (outside / "a.mp4").stat()
    lib.state.put_file(
        FileRecord(
            rel="sub/a.mp4",
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            fingerprint=fp,
            info=None,
            probe_error=None,
        )
    )
    lib.state.record_upload("sub/a.mp4", "TODO/sub/a.mp4", fp)
    put(lib.objects, "DONE/hevc/sub/a.mp4", OUTPUT)
    lib.ledger.set(
        "TODO/sub/a.mp4",
        "hevc",
        "done",
        etag="etag-TODO/sub/a.mp4",
        output_etag="etag-DONE/hevc/sub/a.mp4",
        output_bytes=len(OUTPUT),
    )
    job = ("TODO/sub/a.mp4", "hevc")
    lib.ledger.items[job] = dataclasses.replace(
        lib.ledger.items[job], output_key=job[0].replace("TODO/", "DONE/hevc/")
    )
    got = lib.fetcher(replace=REPLACE).process(
        lib.result(
            "hevc",
            source_key="TODO/sub/a.mp4",
            source_etag="etag-TODO/sub/a.mp4",
            output_key="DONE/hevc/sub/a.mp4",
            output_etag="etag-DONE/hevc/sub/a.mp4",
        )
    )
    assert got.action == "refused", got
    assert "outside" in got.reason
    assert sorted(p.name for p in outside.iterdir()) == ["a.mp4"]
    assert not list(lib.root.parent.glob("**/.hevcq/quarantine/*"))


@pytest.mark.parametrize("replace", [frozenset(), REPLACE])
@pytest.mark.parametrize("etag", ["committed", None])
def test_bytes_appended_after_the_commit_are_refused(
    lib: Lib, replace: frozenset[str], etag: str | None
) -> None:
    key = committed(lib)
    # Overwritten since: a new object (a new ETag), the video with a payload behind it.
    lib.objects.add(key, etag="etag-appended", data=OUTPUT + b"\nssh-ed25519 AAAA attacker\n")
    refused(
        lib,
        lib.fetcher(replace=replace),
        "differs from the one the ledger committed",
        output_etag=f"etag-{key}" if etag else None,
    )
    assert lib.src.read_bytes() == lib.objects.data["TODO/a.mp4"]


@pytest.mark.parametrize("replace", [frozenset(), REPLACE])
def test_bytes_that_do_not_match_the_committed_size_are_refused(
    lib: Lib, replace: frozenset[str]
) -> None:
    # A store that served other bytes under the committed ETag (no If-Match honoured).
    key = committed(lib)
    lib.objects.data[key] = OUTPUT + b"appended"
    refused(lib, lib.fetcher(replace=replace), "bytes, not the committed", output_etag=None)


@pytest.mark.parametrize("replace", [frozenset(), REPLACE])
def test_bytes_that_do_not_match_the_committed_checksum_are_refused(
    lib: Lib, replace: frozenset[str]
) -> None:
    # Same size, one byte replaced; the ETag of a single-part upload is the MD5 of its bytes.
    key = "DONE/hevc/a.mp4"
    md5 = hashlib.md5(OUTPUT, usedforsecurity=False).hexdigest()
    lib.objects.add(key, etag=md5, data=b"X" + OUTPUT[1:])
    lib.ledger.set("TODO/a.mp4", "hevc", "done", output_etag=md5, output_bytes=len(OUTPUT))
    refused(lib, lib.fetcher(replace=replace), "checksum", output_etag=md5)


def test_the_committed_output_itself_is_placed(lib: Lib) -> None:
    md5 = hashlib.md5(OUTPUT, usedforsecurity=False).hexdigest()
    lib.objects.add("DONE/hevc/a.mp4", etag=md5, data=OUTPUT)
    lib.ledger.set("TODO/a.mp4", "hevc", "done", output_etag=md5, output_bytes=len(OUTPUT))
    got = lib.fetcher().process(lib.result("hevc", output_etag=None))
    assert got.action == "placed", got
    assert (lib.out / "hevc" / "a.mp4").read_bytes() == OUTPUT
