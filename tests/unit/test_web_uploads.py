import pytest

from hevcq.errors import PermanentError
from hevcq.web.uploads import (
    is_upload_id,
    new_upload_id,
    owner_prefix,
    post_conditions,
    record_key,
    upload_key,
)


def test_the_policy_limits_the_size_and_signs_the_owner() -> None:
    fields, conditions = post_conditions("alice", "01ABC", max_bytes=5000)
    assert ["content-length-range", 1, 5000] in conditions
    assert {"x-amz-meta-hevcq-owner": "alice"} in conditions
    assert fields["x-amz-meta-hevcq-owner"] == "alice"
    assert fields["x-amz-meta-hevcq-upload-id"] == "01ABC"


def test_upload_ids_sort_by_time_and_parse() -> None:
    a, b = new_upload_id(), new_upload_id()
    assert len(a) == 26
    assert a[:10] <= b[:10]
    assert is_upload_id(a)
    assert not is_upload_id("../etc/passwd")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("clip.mov", "TODO/U/clip.mov"),
        ("a/b/c.mp4", "TODO/U/c.mp4"),
        ("C:\\v\\x.mkv", "TODO/U/x.mkv"),
    ],
)
def test_only_the_file_name_is_kept(name: str, key: str) -> None:
    assert upload_key("U", name) == key


@pytest.mark.parametrize("name", ["..", "a/..", "bad\x01name"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(PermanentError):
        upload_key("U", name)


def test_owners_get_separate_record_folders() -> None:
    assert owner_prefix("alice") != owner_prefix("bob")
    assert record_key("alice", "X").startswith(owner_prefix("alice"))
    assert "/" not in owner_prefix("a/b/../c")[len("uploads/") : -1]
