"""Fraud proofs against nodes, checked on-chain from their P-256 note
signatures: split views (of checkpoints, of a receipt and an anchored tree, by a
leaf or by consistency), notarized checkpoints anchored late; every revert
reason, and a revert changes nothing. On the embedded chain and on anvil."""

from __future__ import annotations

import os
import random

import pytest
from web3.logs import DISCARD
from web3.types import TxReceipt

from tests.chain.conftest import MIN_STAKE, REWARD_BPS, UNBONDING, Net
from trustmesh.chain.suite import (
    Deployment,
    Disputes,
    Divergence,
    LogAnchor,
    Registry,
    SignedTree,
    deploy_suite,
)
from trustmesh.errors import Reverted
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note_p256 import LogSigner, p256_signature
from trustmesh.log.receipt import issue_receipts, open_receipt

LEAVES = [merkle.leaf_hash(b"entry %d" % i) for i in range(40)]
FORKED = [*LEAVES[:3], merkle.leaf_hash(b"rewritten"), *LEAVES[4:]]


class Log:
    """A node registered on a fresh suite, signing with its two keys."""

    def __init__(self, net: Net, max_merge_delay: int = 3600) -> None:
        self.deployment: Deployment = deploy_suite(
            net.deployer,
            min_stake=MIN_STAKE,
            unbonding_delay=UNBONDING,
            reward_bps=REWARD_BPS,
            max_merge_delay=max_merge_delay,
        )
        self.origin = f"split.example/{random.getrandbits(32)}"
        self.signer = LogSigner.from_seed(self.origin, os.urandom(32))
        self.registry = Registry(net.owner, self.deployment)
        self.registry.register_log(self.signer, "http://127.0.0.1", MIN_STAKE)
        self.anchor = LogAnchor(net.owner, self.deployment)
        self.disputes = Disputes(net.reporter, self.deployment)

    def tree(self, leaves: list[bytes], signer: LogSigner | None = None) -> SignedTree:
        root = merkle.root(leaves)
        note = sign_checkpoint(Checkpoint(self.origin, len(leaves), root), signer or self.signer)
        r, s = p256_signature(note, (signer or self.signer).p256.verifier)
        return SignedTree(len(leaves), root, r + s)

    def receipt(self, leaves: list[bytes], index: int) -> tuple[SignedTree, list[bytes]]:
        """A receipt of ``leaves[index]`` in the signed tree of ``leaves``, as a device
        holds it, read back into what a proof hands the chain: its signed tree and
        its inclusion hashes."""
        note = sign_checkpoint(
            Checkpoint(self.origin, len(leaves), merkle.root(leaves)), self.signer
        )
        (text,) = issue_receipts(index, [merkle.inclusion_proof(leaves, index)], note)
        receipt = open_receipt(text, leaves[index], self.signer.verifier, self.origin)
        r, s = p256_signature(receipt.note, self.signer.p256.verifier)
        return SignedTree(receipt.size, receipt.root, r + s), list(receipt.proof.hashes)

    def stake(self) -> int:
        return int(self.registry.node(self.origin)["stake"])


def _stranger(log: Log) -> LogSigner:
    return LogSigner.from_seed(log.origin, os.urandom(32))


def _paid(net: Net, before: int, receipt: TxReceipt) -> bool:
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    return bool(net.reporter.balance() == before + MIN_STAKE * REWARD_BPS // 10_000 - gas)


def test_split_view_of_one_size(net: Net) -> None:
    log = Log(net)
    honest, forked = log.tree(LEAVES[:10]), log.tree(FORKED[:10])
    with pytest.raises(Reverted, match="disputes: the same tree"):
        log.disputes.prove_split_view(log.origin, honest, log.tree(LEAVES[:10]))
    with pytest.raises(Reverted, match="disputes: checkpoint a not signed"):
        log.disputes.prove_split_view(log.origin, log.tree(FORKED[:10], _stranger(log)), honest)
    with pytest.raises(Reverted, match="disputes: checkpoint b not signed"):
        log.disputes.prove_split_view(log.origin, honest, log.tree(FORKED[:10], _stranger(log)))
    with pytest.raises(Reverted, match="disputes: checkpoint a not signed"):
        log.disputes.prove_split_view(log.origin, SignedTree(10, forked.root, b"\x01"), honest)
    with pytest.raises(Reverted, match="disputes: unknown node"):
        log.disputes.prove_split_view(log.origin + "x", honest, forked)
    before = net.reporter.balance()
    receipt = log.disputes.prove_split_view(log.origin, honest, forked)
    (event,) = log.disputes.contract.events.SplitViewProven().process_receipt(
        receipt, errors=DISCARD
    )
    assert (event["args"]["size_a"], event["args"]["slashed"]) == (10, MIN_STAKE)
    assert _paid(net, before, receipt)
    assert log.stake() == 0
    with pytest.raises(Reverted, match="disputes: already proven"):
        log.disputes.prove_split_view(log.origin, forked, honest)


def test_split_view_of_two_sizes(net: Net) -> None:
    log = Log(net)
    a, b = log.tree(LEAVES[:10]), log.tree(FORKED[:25])

    def divergence(index: int, leaf_a: bytes, leaf_b: bytes) -> Divergence:
        return Divergence(
            index,
            leaf_a,
            merkle.inclusion_proof(LEAVES[:10], index),
            leaf_b,
            merkle.inclusion_proof(FORKED[:25], index),
        )

    with pytest.raises(Reverted, match="disputes: index beyond a tree"):
        log.disputes.prove_split_view(
            log.origin, a, b, Divergence(10, LEAVES[10], [], FORKED[10], [])
        )
    with pytest.raises(Reverted, match="disputes: the same leaf"):
        log.disputes.prove_split_view(log.origin, a, b, divergence(2, LEAVES[2], FORKED[2]))
    with pytest.raises(Reverted, match="disputes: leaf a not included"):
        log.disputes.prove_split_view(log.origin, a, b, divergence(3, FORKED[3], LEAVES[3]))
    with pytest.raises(Reverted, match="disputes: leaf b not included"):
        log.disputes.prove_split_view(log.origin, a, b, divergence(3, LEAVES[3], LEAVES[4]))
    # Consistent views of two sizes are not a split view, whatever leaves are named.
    consistent = log.tree(LEAVES[:25])
    with pytest.raises(Reverted, match="disputes: leaf b not included"):
        log.disputes.prove_split_view(
            log.origin, a, consistent, divergence(3, LEAVES[3], FORKED[3])
        )
    log.disputes.prove_split_view(log.origin, a, b, divergence(3, LEAVES[3], FORKED[3]))
    assert log.stake() == 0


def test_split_view_against_the_anchor(net: Net) -> None:
    log = Log(net)
    log.anchor.anchor(log.origin, 8, merkle.root(LEAVES[:8]), [])
    anchored = SignedTree(8, merkle.root(LEAVES[:8]))
    with pytest.raises(Reverted, match="disputes: tree b not anchored"):
        log.disputes.prove_split_view(log.origin, log.tree(FORKED[:8]), SignedTree(8, bytes(32)))
    with pytest.raises(Reverted, match="disputes: tree b not anchored"):
        log.disputes.prove_split_view(
            log.origin, log.tree(FORKED[:8]), SignedTree(9, anchored.root)
        )
    with pytest.raises(Reverted, match="disputes: the same tree"):
        log.disputes.prove_split_view(log.origin, log.tree(LEAVES[:8]), anchored)
    log.disputes.prove_split_view(log.origin, log.tree(FORKED[:8]), anchored)
    assert log.stake() == 0


def test_a_receipt_contradicted_by_an_anchored_tree_is_a_split_view(net: Net) -> None:
    """The receipt's own inclusion hashes against the anchored tree's at its index."""
    log = Log(net)
    log.anchor.anchor(log.origin, 12, merkle.root(FORKED[:12]), [])
    anchored = SignedTree(12, merkle.root(FORKED[:12]))
    tree, hashes = log.receipt(LEAVES[:10], 3)
    divergence = Divergence(3, LEAVES[3], hashes, FORKED[3], merkle.inclusion_proof(FORKED[:12], 3))
    with pytest.raises(Reverted, match="disputes: leaf b not included"):
        log.disputes.prove_split_view(
            log.origin, tree, anchored, Divergence(3, LEAVES[3], hashes, FORKED[4], [])
        )
    before = net.reporter.balance()
    tx = log.disputes.prove_split_view(log.origin, tree, anchored, divergence)
    assert _paid(net, before, tx) and log.stake() == 0


def test_a_tree_the_anchor_does_not_extend_is_proven_by_consistency(net: Net) -> None:
    """A receipt whose own leaf the later tree kept, in a tree it rewrote elsewhere."""
    log = Log(net)
    tree, _ = log.receipt(FORKED[:10], 5)  # index 5 holds the same leaf in both
    log.anchor.anchor(log.origin, 12, merkle.root(LEAVES[:12]), [])
    anchored = SignedTree(12, merkle.root(LEAVES[:12]))

    def path(old: int, leaves: list[bytes]) -> list[bytes]:
        proof = merkle.consistency_proof(leaves, old)
        return merkle.prefix_proof(old, merkle.root(leaves[:old]), proof)

    honest = path(10, LEAVES[:12])
    with pytest.raises(Reverted, match="disputes: tree a must be the smaller"):
        log.disputes.prove_inconsistent(log.origin, log.tree(FORKED[:13]), anchored, honest)
    with pytest.raises(Reverted, match="disputes: tree b not anchored"):
        log.disputes.prove_inconsistent(log.origin, tree, SignedTree(13, anchored.root), honest)
    stranger = log.tree(FORKED[:10], _stranger(log))
    with pytest.raises(Reverted, match="disputes: checkpoint a not signed"):
        log.disputes.prove_inconsistent(log.origin, stranger, anchored, honest)
    with pytest.raises(Reverted, match="disputes: not a proof in tree b"):
        log.disputes.prove_inconsistent(log.origin, tree, anchored, path(10, FORKED[:12]))
    with pytest.raises(Reverted, match="disputes: not a proof in tree b"):
        log.disputes.prove_inconsistent(log.origin, tree, anchored, honest[1:])
    consistent = log.tree(LEAVES[:10])
    with pytest.raises(Reverted, match="disputes: tree b extends tree a"):
        log.disputes.prove_inconsistent(log.origin, consistent, anchored, honest)
    before = net.reporter.balance()
    tx = log.disputes.prove_inconsistent(log.origin, tree, anchored, honest)
    (event,) = log.disputes.contract.events.SplitViewProven().process_receipt(tx, errors=DISCARD)
    assert (event["args"]["size_a"], event["args"]["size_b"]) == (10, 12)
    assert _paid(net, before, tx) and log.stake() == 0
    with pytest.raises(Reverted, match="disputes: already proven"):
        log.disputes.prove_inconsistent(log.origin, tree, anchored, honest)


def test_consistency_from_a_power_of_two_and_between_signed_trees(net: Net) -> None:
    """An old size that is a power of two (the RFC's proof leaves its hash out: the
    path puts it first), against a checkpoint the node signed rather than anchored."""
    log = Log(net)
    old = log.tree(FORKED[:8])
    new = log.tree(LEAVES[:20])
    proof = merkle.prefix_proof(
        8, merkle.root(LEAVES[:8]), merkle.consistency_proof(LEAVES[:20], 8)
    )
    with pytest.raises(Reverted, match="disputes: checkpoint b not signed"):
        log.disputes.prove_inconsistent(
            log.origin, old, log.tree(LEAVES[:20], _stranger(log)), proof
        )
    log.disputes.prove_inconsistent(log.origin, old, new, proof)
    assert log.stake() == 0


def _notarized(log: Log, size: int) -> int:
    return log.disputes.notarized(log.origin, size)


def test_notarize_refuses_what_it_must_and_changes_nothing(net: Net) -> None:
    log = Log(net)
    log.anchor.anchor(log.origin, 8, merkle.root(LEAVES[:8]), [])
    with pytest.raises(Reverted, match="disputes: checkpoint not signed"):
        log.disputes.notarize(log.origin, log.tree(LEAVES[:12], _stranger(log)))
    forged = SignedTree(12, FORKED[0], log.tree(LEAVES[:12]).signature)
    with pytest.raises(Reverted, match="disputes: checkpoint not signed"):
        log.disputes.notarize(log.origin, forged)
    with pytest.raises(Reverted, match="disputes: unknown node"):
        log.disputes.notarize(log.origin + "x", log.tree(LEAVES[:12]))
    for size in (7, 8):  # anchored already: nothing to hold the node to
        with pytest.raises(Reverted, match="disputes: already anchored"):
            log.disputes.notarize(log.origin, log.tree(LEAVES[:size]))
        assert _notarized(log, size) == 0
    assert _notarized(log, 12) == 0
    tx = log.disputes.notarize(log.origin, log.tree(LEAVES[:12]))
    (event,) = log.disputes.contract.events.Notarized().process_receipt(tx, errors=DISCARD)
    block_time = int(net.w3.eth.get_block(tx["blockNumber"])["timestamp"])
    assert (event["args"]["size"], event["args"]["timestamp"]) == (12, block_time)
    assert _notarized(log, 12) == block_time
    with pytest.raises(Reverted, match="disputes: already notarized"):
        log.disputes.notarize(log.origin, log.tree(LEAVES[:12]))
    assert _notarized(log, 12) == block_time and log.stake() == MIN_STAKE


def test_a_notarized_checkpoint_never_anchored_is_late(net: Net) -> None:
    log = Log(net, max_merge_delay=3600)
    assert log.disputes.max_merge_delay() == 3600
    log.anchor.anchor(log.origin, 5, merkle.root(LEAVES[:5]), [])
    with pytest.raises(Reverted, match="disputes: not notarized"):
        log.disputes.prove_late(log.origin, 12)
    log.disputes.notarize(log.origin, log.tree(LEAVES[:12]))
    with pytest.raises(Reverted, match="disputes: merge delay not passed"):
        log.disputes.prove_late(log.origin, 12)
    net.reporter.advance_time(3601)
    before = net.reporter.balance()
    tx = log.disputes.prove_late(log.origin, 12)
    (event,) = log.disputes.contract.events.LateProven().process_receipt(tx, errors=DISCARD)
    assert (event["args"]["size"], event["args"]["slashed"]) == (12, MIN_STAKE)
    assert event["args"]["notarized_at"] == _notarized(log, 12)
    assert _paid(net, before, tx) and log.stake() == 0
    with pytest.raises(Reverted, match="disputes: already proven"):
        log.disputes.prove_late(log.origin, 12)


def test_an_honest_node_anchoring_within_the_delay_is_not_late(net: Net) -> None:
    """Notarized while the node's chain lagged; the node anchored within the merge
    delay: no proof of lateness holds, now or later."""
    log = Log(net, max_merge_delay=3600)
    log.disputes.notarize(log.origin, log.tree(LEAVES[:12]))
    net.reporter.advance_time(1800)
    log.anchor.anchor(log.origin, 15, merkle.root(LEAVES[:15]), [])
    net.reporter.advance_time(7200)
    with pytest.raises(Reverted, match="disputes: anchored in time"):
        log.disputes.prove_late(log.origin, 12)
    log.anchor.anchor(
        log.origin, 20, merkle.root(LEAVES[:20]), merkle.consistency_proof(LEAVES[:20], 15)
    )
    with pytest.raises(Reverted, match="disputes: anchored"):
        log.disputes.prove_late(log.origin, 12)
    assert log.stake() == MIN_STAKE


def test_a_node_anchoring_after_the_delay_is_late(net: Net) -> None:
    log = Log(net, max_merge_delay=60)
    log.disputes.notarize(log.origin, log.tree(LEAVES[:12]))
    net.reporter.advance_time(120)
    log.anchor.anchor(log.origin, 12, merkle.root(LEAVES[:12]), [])  # too late
    log.disputes.prove_late(log.origin, 12)
    assert log.stake() == 0
