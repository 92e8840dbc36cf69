"""The keys a watcher checks readings with: the Registry's, read once per device
and read again only when the Registry logs a change to that device."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import Registry, deploy_suite
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.watcher.onchain import ChainView

STAKE = 10**15


class CountingRegistry(Registry):
    """The real Registry client, counting the device records it reads."""

    reads = 0

    def device(self, did: str) -> dict[str, Any]:
        self.reads += 1
        return super().device(did)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[Registry, ChainView, CountingRegistry]]:
    embedded = EmbeddedChain.open(tmp_path / "chain")
    client = ChainClient(embedded.w3, embedded.dev_accounts[0])
    deployment = deploy_suite(client, min_stake=STAKE)
    view = ChainView(client, deployment, key_sync_seconds=0)  # events read at every lookup
    view.registry = counting = CountingRegistry(client, deployment)
    yield Registry(client, deployment), view, counting
    embedded.close()


def test_a_device_is_read_once_however_often_its_key_is_looked_up(
    chain: tuple[Registry, ChainView, CountingRegistry],
) -> None:
    registry, view, counting = chain
    signers = [SoftwareSigner.generate() for _ in range(3)]
    registry.register_devices([did_from_key(s.public_key) for s in signers], STAKE)
    for seq in range(20):
        for signer in signers:
            assert view.key_for(did_from_key(signer.public_key), seq) == signer.public_key
    assert counting.reads == len(signers)


def test_a_rotation_and_a_registration_are_seen_at_the_next_lookup(
    chain: tuple[Registry, ChainView, CountingRegistry],
) -> None:
    registry, view, counting = chain
    first, successor, late = (SoftwareSigner.generate() for _ in range(3))
    did, late_did = did_from_key(first.public_key), did_from_key(late.public_key)
    registry.register_device(did, STAKE)
    assert view.key_for(did, 150) == first.public_key
    assert view.key_for(late_did, 1) is None  # not registered (yet)

    registry.rotate_key(did, successor.public_key, 100)
    registry.register_device(late_did, STAKE)

    assert view.key_for(did, 150) == successor.public_key
    assert view.key_for(did, 99) == first.public_key
    assert view.key_for(late_did, 1) == late.public_key
    assert counting.reads == 4  # each device again after its event, once
