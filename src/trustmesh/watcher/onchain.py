"""The chain as a watcher reads it and writes to it: registry keys at the
time of each reading, the nodes' P-256 proof keys, anchors, and the fraud
proofs themselves (submitted, and confirmed by the Disputes events).

Every proof is built from evidence the watcher checked off-chain first with
the same verification path (:mod:`trustmesh.reading`, :mod:`trustmesh.log`),
so a proof that reverts means the chain and the watcher disagree: the revert
reason is reported, never swallowed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from web3.logs import DISCARD
from web3.types import TxReceipt

from trustmesh.chain.client import ChainClient
from trustmesh.chain.suite import (
    Deployment,
    Disputes,
    Divergence,
    LogAnchor,
    Registry,
    SignedTree,
    device_id,
    key_from_chain,
)
from trustmesh.errors import ChainError, InvalidCheckpoint, Reverted
from trustmesh.identity import PublicKey
from trustmesh.log.note_p256 import P256NoteVerifier

__all__ = ["Anchor", "ChainView", "ProofResult"]

KEY_SYNC_SECONDS = 1.0  # key histories are at most this stale (registry events read this often)


@dataclass(frozen=True)
class Anchor:
    size: int
    root: bytes
    timestamp: int  # block time, seconds


@dataclass(frozen=True)
class ProofResult:
    """What the chain said of a submitted proof."""

    kind: str
    accepted: bool
    transaction: str = ""
    slashed: int = 0
    reward: int = 0  # what the Registry paid the reporter
    reason: str = ""  # why it reverted, when it did
    reverted: bool = False  # the chain's answer (else the chain could not be reached)

    def to_json(self) -> dict[str, Any]:
        return {
            "proof": self.kind,
            "accepted": self.accepted,
            "transaction": self.transaction,
            "slashed": self.slashed,
            "reward": self.reward,
            "reason": self.reason,
        }


class ChainView:
    """One watcher's connection to the suite: reads cached where they cannot change."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        *,
        can_prove: bool = True,
        key_sync_seconds: float = KEY_SYNC_SECONDS,
    ) -> None:
        self.client = client
        self.deployment = deployment
        self.can_prove = can_prove  # False: no funded key, findings are only reported
        self.registry = Registry(client, deployment)
        self.anchor = LogAnchor(client, deployment)
        self.disputes = Disputes(client, deployment)
        self._proof_keys: dict[str, P256NoteVerifier] = {}
        self._keys: dict[bytes, list[tuple[int, PublicKey]]] = {}  # device id -> key history
        self._key_sync_seconds = key_sync_seconds
        self._synced_at = -math.inf  # monotonic time of the last read of registry events
        self._scanned = -1  # the last block whose registry events were read
        self._merge_delay: int | None = None

    # -- reads ---------------------------------------------------------------

    def key_for(self, did: str, seq: int) -> PublicKey | None:
        """The key the Registry holds for ``did`` at ``seq``; None if not registered.

        A device's key history is read once and kept until the Registry logs a
        registration, rotation or revocation of it. Its events are read at most
        every ``key_sync_seconds``, so a lookup sees the Registry as it stood at
        most that long ago, at the cost of one read of events however many devices
        there are (a history read again every few seconds a device cost a watcher
        of a busy fleet all its time).
        """
        self._sync_keys()
        subject = device_id(did)
        history = self._keys.get(subject)
        if history is None:
            history = self._keys[subject] = self._key_history(did)
        for from_seq, key in reversed(history):
            if from_seq <= seq:
                return key
        return None

    def _sync_keys(self) -> None:
        now = time.monotonic()
        if now - self._synced_at < self._key_sync_seconds:
            return
        with self.client.errors("reading the chain's head"):
            head = int(self.client.w3.eth.block_number)
        if self._scanned < 0:  # nothing is kept yet: histories are read at ``head`` or later
            self._scanned = head
        elif head > self._scanned:
            for _, subject, _ in self.registry.device_events(self._scanned + 1, head):
                self._keys.pop(subject, None)
            self._scanned = head
        self._synced_at = now

    def _key_history(self, did: str) -> list[tuple[int, PublicKey]]:
        record = self.registry.device(did)
        history: list[tuple[int, PublicKey]] = []
        if record["status"] != "unknown":
            for i in range(record["keys"]):
                alg, raw, from_seq, _ = self.registry.key_record(did, i)
                history.append((from_seq, key_from_chain(alg, raw)))
        return history

    def proof_verifier(self, origin: str) -> P256NoteVerifier | None:
        """The P-256 key the Registry holds for a log (it never changes once set)."""
        cached = self._proof_keys.get(origin)
        if cached is not None:
            return cached
        raw = bytes.fromhex(self.registry.node(origin)["proof_key"])
        if len(raw) != 64:
            return None
        try:
            verifier = P256NoteVerifier(origin, raw)
        except InvalidCheckpoint:
            return None
        self._proof_keys[origin] = verifier
        return verifier

    def latest_anchor(self, origin: str) -> Anchor:
        size, root, _, timestamp = self.anchor.latest(origin)
        return Anchor(size, root, timestamp)

    def previous_anchor(self, origin: str) -> int:
        """The size anchored before the latest anchor (0 if none)."""
        return self.anchor.previous(origin)

    def max_merge_delay(self) -> int:
        """Seconds a node has to anchor a notarized checkpoint (fixed at deployment)."""
        if self._merge_delay is None:
            self._merge_delay = self.disputes.max_merge_delay()
        return self._merge_delay

    def notarized(self, origin: str, size: int) -> int:
        """When (block time, s) a checkpoint of ``size`` was notarized; 0 if not."""
        return self.disputes.notarized(origin, size)

    def chain_time(self) -> int:
        with self.client.errors("reading the latest block"):
            return int(self.client.w3.eth.get_block("latest")["timestamp"])

    # -- proofs --------------------------------------------------------------

    def _submit(self, kind: str, event: str, send: Any) -> ProofResult:
        if not self.can_prove:
            return ProofResult(kind, False, reason="not submitted: no key to pay for proofs")
        try:
            receipt: TxReceipt = send()
        except ChainError as exc:
            return ProofResult(kind, False, reason=str(exc), reverted=isinstance(exc, Reverted))
        logs = getattr(self.disputes.contract.events, event)().process_receipt(
            receipt, errors=DISCARD
        )
        slashed = int(logs[0]["args"].get("slashed", 0)) if logs else 0
        paid = self.registry.contract.events.Slashed().process_receipt(receipt, errors=DISCARD)
        reward = sum(int(event["args"]["reward"]) for event in paid)
        return ProofResult(
            kind, bool(logs), receipt["transactionHash"].hex(), slashed, reward=reward
        )

    def prove_equivocation(self, first: bytes, second: bytes) -> ProofResult:
        return self._submit(
            "equivocation",
            "EquivocationProven",
            lambda: self.disputes.prove_equivocation(first, second),
        )

    def prove_invalid_entry(
        self, origin: str, size: int, index: int, entry: bytes, proof: list[bytes]
    ) -> ProofResult:
        return self._submit(
            "invalid-entry",
            "InvalidEntryProven",
            lambda: self.disputes.prove_invalid_entry(origin, size, index, entry, proof),
        )

    def prove_split_view(
        self, origin: str, a: SignedTree, b: SignedTree, divergence: Divergence | None
    ) -> ProofResult:
        return self._submit(
            "split-view",
            "SplitViewProven",
            lambda: self.disputes.prove_split_view(origin, a, b, divergence),
        )

    def prove_inconsistent(
        self, origin: str, a: SignedTree, b: SignedTree, proof: list[bytes]
    ) -> ProofResult:
        return self._submit(
            "split-view",
            "SplitViewProven",
            lambda: self.disputes.prove_inconsistent(origin, a, b, proof),
        )

    def notarize(self, origin: str, checkpoint: SignedTree) -> ProofResult:
        """Record a checkpoint the node has not anchored (accepted: the chain noted it)."""
        return self._submit(
            "notarize", "Notarized", lambda: self.disputes.notarize(origin, checkpoint)
        )

    def prove_late(self, origin: str, size: int) -> ProofResult:
        return self._submit("late", "LateProven", lambda: self.disputes.prove_late(origin, size))
