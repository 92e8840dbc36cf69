"""Fraud proofs against nodes, checked on-chain from their P-256 note
signatures: split views and broken receipts; every revert reason. On the
embedded chain and on anvil."""

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
from trustmesh.log.receipt import Receipt, issue_receipt

LEAVES = [merkle.leaf_hash(b"entry %d" % i) for i in range(40)]
FORKED = [*LEAVES[:3], merkle.leaf_hash(b"rewritten"), *LEAVES[4:]]


class Log:
    """A node registered on a fresh suite, signing with its two keys."""

    def __init__(self, net: Net) -> None:
        self.deployment: Deployment = deploy_suite(
            net.deployer, min_stake=MIN_STAKE, unbonding_delay=UNBONDING, reward_bps=REWARD_BPS
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

    def receipt(
        self, index: int, leaf: bytes, deadline: int, signer: LogSigner | None = None
    ) -> tuple[Receipt, bytes]:
        receipt = Receipt(self.origin, index, leaf, deadline)
        r, s = p256_signature(
            issue_receipt(receipt, signer or self.signer), (signer or self.signer).p256.verifier
        )
        return receipt, r + s

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


def _chain_ms(net: Net) -> int:
    return int(net.w3.eth.get_block("latest")["timestamp"]) * 1000


def test_receipt_contradicted_by_an_anchored_tree(net: Net) -> None:
    log = Log(net)
    log.anchor.anchor(log.origin, 12, merkle.root(FORKED[:12]), [])
    receipt, signature = log.receipt(3, LEAVES[3], _chain_ms(net) + 3_600_000)
    proof = merkle.inclusion_proof(FORKED[:12], 3)
    forged = Receipt(log.origin, 3, LEAVES[3], receipt.deadline + 1)
    with pytest.raises(Reverted, match="disputes: receipt not signed"):
        log.disputes.prove_receipt_contradicted(forged, signature, 12, FORKED[3], proof)
    stranger = log.receipt(3, LEAVES[3], receipt.deadline, _stranger(log))[1]
    with pytest.raises(Reverted, match="disputes: receipt not signed"):
        log.disputes.prove_receipt_contradicted(receipt, stranger, 12, FORKED[3], proof)
    with pytest.raises(Reverted, match="disputes: tree not anchored"):
        log.disputes.prove_receipt_contradicted(receipt, signature, 11, FORKED[3], proof)
    with pytest.raises(Reverted, match="disputes: the receipt is honoured"):
        log.disputes.prove_receipt_contradicted(receipt, signature, 12, LEAVES[3], proof)
    with pytest.raises(Reverted, match="disputes: not included"):
        log.disputes.prove_receipt_contradicted(receipt, signature, 12, FORKED[4], proof)
    honoured, honoured_signature = log.receipt(2, LEAVES[2], receipt.deadline)
    with pytest.raises(Reverted, match="disputes: the receipt is honoured"):
        log.disputes.prove_receipt_contradicted(
            honoured, honoured_signature, 12, FORKED[2], merkle.inclusion_proof(FORKED[:12], 2)
        )
    before = net.reporter.balance()
    tx = log.disputes.prove_receipt_contradicted(receipt, signature, 12, FORKED[3], proof)
    (event,) = log.disputes.contract.events.BrokenReceiptProven().process_receipt(
        tx, errors=DISCARD
    )
    assert (event["args"]["index"], event["args"]["reason"]) == (3, "contradicted")
    assert _paid(net, before, tx) and log.stake() == 0
    with pytest.raises(Reverted, match="disputes: already proven"):
        log.disputes.prove_receipt_contradicted(receipt, signature, 12, FORKED[3], proof)


def test_receipt_never_anchored(net: Net) -> None:
    log = Log(net)
    log.anchor.anchor(log.origin, 5, merkle.root(LEAVES[:5]), [])
    future, future_signature = log.receipt(7, LEAVES[7], _chain_ms(net) + 3_600_000)
    with pytest.raises(Reverted, match="disputes: deadline not passed"):
        log.disputes.prove_receipt_late(future, future_signature)
    # Index 4 was anchored in the block that is the latest: by a deadline of its time.
    anchored, anchored_signature = log.receipt(4, LEAVES[4], _chain_ms(net))
    with pytest.raises(Reverted, match="disputes: anchored by the deadline"):
        log.disputes.prove_receipt_late(anchored, anchored_signature)
    late, late_signature = log.receipt(7, LEAVES[7], _chain_ms(net) - 1000)
    with pytest.raises(Reverted, match="disputes: receipt not signed"):
        log.disputes.prove_receipt_late(late, anchored_signature)
    tx = log.disputes.prove_receipt_late(late, late_signature)
    (event,) = log.disputes.contract.events.BrokenReceiptProven().process_receipt(
        tx, errors=DISCARD
    )
    assert event["args"]["reason"] == "late"
    assert log.stake() == 0
    with pytest.raises(Reverted, match="disputes: already proven"):
        log.disputes.prove_receipt_late(late, late_signature)


def test_receipt_anchored_after_its_deadline(net: Net) -> None:
    log = Log(net)
    log.anchor.anchor(log.origin, 5, merkle.root(LEAVES[:5]), [])
    in_time, in_time_signature = log.receipt(6, LEAVES[6], _chain_ms(net) + 3_600_000)
    late, late_signature = log.receipt(7, LEAVES[7], _chain_ms(net) - 1000)
    log.anchor.anchor(
        log.origin, 12, merkle.root(LEAVES[:12]), merkle.consistency_proof(LEAVES[:12], 5)
    )
    assert log.anchor.previous(log.origin) == 5
    with pytest.raises(Reverted, match="disputes: anchored by the deadline"):
        log.disputes.prove_receipt_late(in_time, in_time_signature)
    early, early_signature = log.receipt(3, LEAVES[3], _chain_ms(net) - 1000)
    with pytest.raises(Reverted, match="disputes: the index is anchored"):
        log.disputes.prove_receipt_late(early, early_signature)  # covered before: in time
    log.disputes.prove_receipt_late(late, late_signature)  # first covered by the latest, late
    assert log.stake() == 0


def test_a_late_anchor_is_provable_only_while_it_is_the_latest(net: Net) -> None:
    log = Log(net)
    late, late_signature = log.receipt(2, LEAVES[2], _chain_ms(net) - 1000)
    log.anchor.anchor(log.origin, 5, merkle.root(LEAVES[:5]), [])
    log.anchor.anchor(
        log.origin, 12, merkle.root(LEAVES[:12]), merkle.consistency_proof(LEAVES[:12], 5)
    )
    with pytest.raises(Reverted, match="disputes: the index is anchored"):
        log.disputes.prove_receipt_late(late, late_signature)
    assert log.stake() == MIN_STAKE
