"""moto-backed farms for the AWS tests (in-process, one fresh account per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from moto import mock_aws

from hevcq.aws.clients import Clients
from hevcq.aws.provision import _create_ledger, provision
from hevcq.pools import Pool
from hevcq.topology import FarmRefs, Names


@dataclass
class MotoFarm:
    clients: Clients
    refs: FarmRefs
    pools: dict[str, Pool]


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
