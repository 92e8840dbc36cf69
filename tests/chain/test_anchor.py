"""The LogAnchor contract: only the origin's node, only growth, only with a
valid RFC 9162 consistency proof, checked on-chain."""

from __future__ import annotations

import os
import random

import pytest

from tests.chain.conftest import MIN_STAKE, Net
from trustmesh.errors import Reverted
from trustmesh.log import merkle
from trustmesh.log.note_p256 import LogSigner

LEAVES = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(300)]


def _node(net: Net) -> str:
    origin = f"anchor.example/{random.getrandbits(40)}"
    net.registry().register_log(
        LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1:1", MIN_STAKE
    )
    return origin


def test_anchor_history_and_latest(net: Net) -> None:
    origin = _node(net)
    anchor = net.anchor()
    assert anchor.latest(origin)[:2] == (0, bytes(32))
    receipt = anchor.anchor(origin, 5, merkle.root(LEAVES[:5]), [])
    block = receipt["blockNumber"]
    for old, new in ((5, 6), (6, 64), (64, 65), (65, 300)):
        proof = merkle.consistency_proof(LEAVES[:new], old)
        receipt = anchor.anchor(origin, new, merkle.root(LEAVES[:new]), proof)
        (event,) = anchor.contract.events.Anchored().process_receipt(receipt)
        assert (event["args"]["size"], bytes(event["args"]["root"])) == (
            new,
            merkle.root(LEAVES[:new]),
        )
    size, root, at_block, _ = anchor.latest(origin)
    assert (size, root) == (300, merkle.root(LEAVES))
    assert at_block == receipt["blockNumber"] > block
    roots = anchor.contract.functions.roots
    from trustmesh.chain.suite import origin_id

    assert bytes(net.owner.call(roots(origin_id(origin), 64))) == merkle.root(LEAVES[:64])


def test_anchor_refusals(net: Net) -> None:
    origin = _node(net)
    anchor = net.anchor()
    anchor.anchor(origin, 10, merkle.root(LEAVES[:10]), [])
    proof = merkle.consistency_proof(LEAVES[:20], 10)
    with pytest.raises(Reverted, match="anchor: not the origin's node"):
        net.anchor(net.reporter).anchor(origin, 20, merkle.root(LEAVES[:20]), proof)
    with pytest.raises(Reverted, match="anchor: not the origin's node"):
        anchor.anchor(origin + "-unregistered", 20, merkle.root(LEAVES[:20]), proof)
    with pytest.raises(Reverted, match="anchor: size must grow"):
        anchor.anchor(origin, 10, merkle.root(LEAVES[:10]), [])
    with pytest.raises(Reverted, match="anchor: size must grow"):
        anchor.anchor(origin, 9, merkle.root(LEAVES[:9]), [])
    # A rewritten history: a different entry 3, so the old root is not a prefix.
    forged = [*LEAVES[:3], merkle.leaf_hash(b"rewritten"), *LEAVES[4:20]]
    with pytest.raises(Reverted, match="anchor: not consistent with the last anchor"):
        anchor.anchor(origin, 20, merkle.root(forged), merkle.consistency_proof(forged, 10))
    bad = [*proof]
    bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
    with pytest.raises(Reverted, match="anchor: not consistent with the last anchor"):
        anchor.anchor(origin, 20, merkle.root(LEAVES[:20]), bad)
    with pytest.raises(Reverted, match="anchor: not consistent with the last anchor"):
        anchor.anchor(origin, 20, merkle.root(LEAVES[:20]), [])
    with pytest.raises(Reverted, match="anchor: size beyond"):
        anchor.anchor(origin, 2**64, bytes(32), [])
    anchor.anchor(origin, 20, merkle.root(LEAVES[:20]), proof)
    net.registry().retire_node(origin)
    with pytest.raises(Reverted, match="anchor: not the origin's node"):
        anchor.anchor(
            origin, 30, merkle.root(LEAVES[:30]), merkle.consistency_proof(LEAVES[:30], 20)
        )


def test_onchain_verifier_agrees_with_the_reference(net: Net) -> None:
    """Every pair of sizes up to 24: the contract accepts the true proof and
    refuses a tampered root, as merkle.verify_consistency does."""
    anchor = net.anchor()
    leaves = LEAVES[:24]
    for new in range(1, 25):
        for old in range(0, new + 1):
            proof = merkle.consistency_proof(leaves[:new], old)
            old_root, new_root = merkle.root(leaves[:old]), merkle.root(leaves[:new])
            assert anchor.verify_consistency(old, new, old_root, new_root, proof)
            if 0 < old < new:
                wrong = bytes([new_root[0] ^ 0x80]) + new_root[1:]
                assert not anchor.verify_consistency(old, new, old_root, wrong, proof)
                assert not anchor.verify_consistency(old, new, old_root, new_root, proof[:-1])
    assert not anchor.verify_consistency(5, 4, bytes(32), bytes(32), [])
