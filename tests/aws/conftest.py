"""moto-backed farms for the AWS tests (in-process, one fresh account per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from moto import mock_aws

from hevcq.aws.clients import Clients
from hevcq.aws.provision import _create_ledger, provision
from hevcq.emulator import s3disk
from hevcq.pools import Pool
from hevcq.topology import FarmRefs, Names
from tests.aws.test_s3disk import uninstall_s3disk


@dataclass
class MotoFarm:
    clients: Clients
    refs: FarmRefs
    pools: dict[str, Pool]


@pytest.fixture(autouse=True)
def _moto_as_it_ships() -> Iterator[None]:
    """Each test here meets moto as it ships. A moto server that a session fixture runs in
    this worker process (the Terraform farms, ``tests/e2e/tfhelpers.py``) has moto's S3
    adapted to keep bytes on disk (``hevcq.emulator.s3disk``); that adaptation is set aside
    for the test (the server idles meanwhile: a process runs one test at a time) and put
    back after it."""
    suspended = bool(s3disk._installed)
    if suspended:
        uninstall_s3disk()
    try:
        yield
    finally:
        if suspended and not s3disk._installed:
            s3disk.install()


@pytest.fixture
def moto_farm(farm: dict[str, Pool]) -> Iterator[MotoFarm]:
    """The whole topology provisioned in moto, with unique names."""
    with mock_aws():
        clients = Clients.create(region="us-east-1")
        prefix = f"t{uuid.uuid4().hex[:8]}"
        names = Names.build(prefix, f"{prefix}-media", sorted(farm))
        refs = provision(clients, names, farm, "us-east-1")
        yield MotoFarm(clients, refs, farm)


@pytest.fixture
def ddb() -> Iterator[Clients]:
    """moto with just the ledger table (named ``ledger``)."""
    with mock_aws():
        c = Clients.create(region="us-east-1")
        _create_ledger(c, "ledger")
        yield c
