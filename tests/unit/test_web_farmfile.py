import os
from pathlib import Path

from hevcq.provision import FarmRefs, PoolRefs
from hevcq.topology import Names
from hevcq.web.farmfile import FARM_FILE, FarmFile, find_running_farm


def _refs() -> FarmRefs:
    names = Names.build("hevcq", "hevcq-local", ["hevc"])
    return FarmRefs(names, "arn:u", "arn:e", "http://q/results", "hevcq-ledger",
                    {"hevc": PoolRefs("http://q/hevc", "http://q/hevc-dlq")})  # fmt: skip


def test_the_farm_file_round_trips(tmp_path: Path) -> None:
    text = FarmFile.of("http://127.0.0.1:5000", _refs(), pid=os.getpid()).model_dump_json()
    (tmp_path / FARM_FILE).write_text(text)
    found = find_running_farm(tmp_path)
    assert found is not None
    assert found.endpoint == "http://127.0.0.1:5000"
    assert found.refs() == _refs()


def test_no_file_a_bad_file_or_a_dead_process_means_no_farm(tmp_path: Path) -> None:
    assert find_running_farm(tmp_path) is None
    (tmp_path / FARM_FILE).write_text("{not json")
    assert find_running_farm(tmp_path) is None
    dead = FarmFile.of("http://127.0.0.1:5000", _refs(), pid=2**22 + 12345)
    (tmp_path / FARM_FILE).write_text(dead.model_dump_json())
    assert find_running_farm(tmp_path) is None
