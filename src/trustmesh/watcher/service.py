"""A watcher: follows nodes, holds them to their receipts, gossips checkpoints
with other watchers, and proves every lie it can on-chain.

Each :meth:`Watcher.tick` polls every node (:class:`NodeFollower`), then

- proves what the poll found: equivocation at once; an invalid entry once an
  anchored tree includes it; two signed checkpoints of one size with two
  roots at once;
- checks the receipts devices forwarded (:meth:`Watcher.check_receipt`, then
  :meth:`Watcher.hold`): the leaf at the receipt's index must be the
  receipt's, and the index must be anchored by the deadline; otherwise the
  receipt itself is the proof;
- checks each log's anchors: each new anchored root must be this watcher's
  root at that size (else a split view between the chain and the watchers,
  proven with the signed checkpoint of that size), and anchors must keep
  coming (an alert, "stall", when none came for ``stall_epochs`` epochs while
  the log grew);
- asks its peers for the checkpoints they were shown: a checkpoint that does
  not extend this watcher's view (or is not extended by it) is a split view,
  proven from the two views' leaves at the first index where they differ.

Every alert and every proof is handed to ``report`` as one JSON document;
each alert is raised once.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx

from trustmesh.batch_verify import verify_in_pool, verify_items
from trustmesh.chain.suite import Divergence, SignedTree
from trustmesh.errors import ChainError, Error, InvalidCheckpoint, InvalidReceipt
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint
from trustmesh.log.note import NoteVerifier
from trustmesh.log.note_p256 import p256_signature
from trustmesh.log.receipt import Receipt, open_receipt
from trustmesh.watcher.audit import Finding
from trustmesh.watcher.follow import NodeFollower, did_key
from trustmesh.watcher.onchain import ChainView, ProofResult
from trustmesh.watcher.seqindex import SeqIndex

__all__ = ["PendingReceipt", "Watcher"]

Report = Callable[[dict[str, Any]], None]


@dataclass
class PendingReceipt:
    receipt: Receipt
    note: str
    signature: bytes  # r || s of the log's P-256 signature, as a proof hands it on (b"": no chain)
    alerted: bool = False


RETRYABLE = ("deadline not passed", "the index is anchored", "tree not anchored")


def settled(result: ProofResult) -> bool:
    """A proof is done with once the chain answered it (a revert for a state that may
    change — a clock, an anchor — is tried again); not while the chain is unreachable."""
    if result.accepted:
        return True
    return result.reverted and not any(reason in result.reason for reason in RETRYABLE)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Watcher:
    def __init__(
        self,
        nodes: list[str],
        http: httpx.Client,
        *,
        chain: ChainView | None = None,
        peers: list[str] | None = None,
        report: Report = lambda document: None,
        stall_epochs: float = 3.0,
        mirror: Path | None = None,
        verify_workers: int = 0,
    ) -> None:
        """``mirror``: where this run keeps its copy of each log and its seq index
        (a fresh directory in it, removed by :meth:`close`; default: the temp dir).
        ``verify_workers``: processes checking entry signatures (0: this one)."""
        self._pool = (
            ProcessPoolExecutor(verify_workers, mp_context=get_context("spawn"))
            if verify_workers > 0
            else None
        )
        verify = verify_items if self._pool is None else partial(verify_in_pool, self._pool)
        self.mirror = Path(tempfile.mkdtemp(prefix="trustmesh-watcher-", dir=mirror))
        self.http = http
        self.chain = chain
        self.peers = [p.rstrip("/") for p in peers or []]
        self.report = report
        self.stall_epochs = stall_epochs
        self.index = SeqIndex(self._entry_at, self.mirror / "seqs.db")
        key_for = chain.key_for if chain is not None else did_key
        self.followers: dict[str, NodeFollower] = {}
        try:
            followers = [
                NodeFollower(url, http, self.index, self.mirror, key_for, verify) for url in nodes
            ]
        except BaseException:
            self.close()
            raise
        self.followers = {f.origin: f for f in followers}
        self.lock = threading.Lock()  # guards the receipts the HTTP API hands in
        self._receipts: list[PendingReceipt] = []
        self._unanchored: list[Finding] = []  # invalid entries waiting for an anchor
        self._raised: set[tuple[str, str, str]] = set()
        self._stalled: set[str] = set()
        self._gossip_checked: set[str] = set()
        self._anchors_checked: set[tuple[str, int]] = set()
        self.alerts = 0
        self.proofs: list[ProofResult] = []
        if chain is not None:
            for follower in followers:
                self._pin_log_key(follower)

    def close(self) -> None:
        """Close the mirrors and remove them."""
        for follower in self.followers.values():
            follower.close()
        self.index.close()
        shutil.rmtree(self.mirror, ignore_errors=True)
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def _entry_at(self, origin: str, index: int) -> bytes:
        return self.followers[origin].view.entry(index)

    def _pin_log_key(self, follower: NodeFollower) -> None:
        """Check a log's checkpoints with the key the Registry holds for it, not the one
        its node names: a node naming another key is reported, and its notes fail."""
        assert self.chain is not None
        record = self.chain.registry.node(follower.origin)
        registered = bytes.fromhex(record["checkpoint_key"])
        if registered == follower.verifier.public_key:
            return
        detail = f"{follower.url} names a log key the Registry does not hold ({record['status']})"
        self._alert(Finding("bad-checkpoint", follower.origin, detail))
        if record["status"] != "unknown":
            follower.verifier = NoteVerifier(follower.origin, registered)
            follower.tracker.verifier = follower.verifier

    # -- what devices and peers hand in ---------------------------------------

    def hold(self, checked: list[PendingReceipt]) -> None:
        """Hold receipts :meth:`check_receipt` accepted (each once)."""
        with self.lock:
            for item in checked:
                if all(p.note != item.note for p in self._receipts):
                    self._receipts.append(item)

    def check_receipt(self, note: str) -> PendingReceipt:
        """A forwarded receipt, verified with the log's keys (its P-256 signature kept
        for the proof); InvalidReceipt if it is not one."""
        lines = note.split("\n")
        follower = self.followers.get(lines[1]) if len(lines) > 1 else None
        if follower is None:
            raise InvalidReceipt("a receipt of a log this watcher does not follow")
        receipt = open_receipt(note, follower.verifier)
        if self.chain is None:
            return PendingReceipt(receipt, note, b"")
        verifier = self.chain.proof_verifier(receipt.origin)
        if verifier is None:
            raise InvalidReceipt("the log has no P-256 key in the Registry")
        try:
            r, s = p256_signature(note, verifier)
        except InvalidCheckpoint:
            raise InvalidReceipt("the receipt lacks the log's P-256 signature") from None
        return PendingReceipt(receipt, note, r + s)

    def receipts_held(self) -> int:
        """Receipts still waiting to be honoured (or proven broken)."""
        with self.lock:
            return len(self._receipts)

    def checkpoints(self) -> dict[str, str]:
        """The latest checkpoint of each log, as this watcher was shown it (for peers)."""
        notes = {origin: f.tracker.latest_note for origin, f in self.followers.items()}
        return {origin: note for origin, note in notes.items() if note is not None}

    def leaves(self, origin: str, size: int) -> list[bytes] | None:
        """The first ``size`` leaf hashes of this watcher's view of a log, if it has them.

        (The poll only appends to the view, so its first ``size`` leaves never change.)
        """
        follower = self.followers.get(origin)
        if follower is None or not 0 <= size <= follower.view.size:
            return None
        return _leaves(follower, size)

    # -- the loop -------------------------------------------------------------

    def tick(self) -> None:
        """One round: poll, prove, check receipts, anchors and peers."""
        for follower in self.followers.values():
            try:
                findings = follower.poll()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                self._alert(
                    Finding("unreachable", follower.origin, f"{follower.url}: {exc!r}"),
                    once=False,
                )
                continue
            except Error as exc:  # the registry unreachable: the batch is audited again
                self._alert(Finding("chain-unreachable", follower.origin, str(exc)), once=False)
                continue
            for finding in findings:
                fresh = (finding.kind, finding.origin, finding.detail) not in self._raised
                self._alert(finding)
                if fresh:  # each finding is acted on once (a same-size split recurs each poll)
                    try:
                        self._act(finding)
                    except Error as exc:
                        self._alert(Finding("chain-unreachable", "", str(exc)), once=False)
        if self.chain is not None:
            for work in (self._prove_unanchored, self._check_receipts, self._check_anchors):
                try:
                    work()
                except ChainError as exc:
                    self._alert(Finding("chain-unreachable", "", str(exc)), once=False)
        for peer in self.peers:
            try:
                self._gossip(peer)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, Error) as exc:
                self._alert(Finding("peer-unreachable", "", f"{peer}: {exc!r}"), once=False)

    def _alert(self, finding: Finding, *, once: bool = True) -> None:
        key = (finding.kind, finding.origin, finding.detail)
        if once:
            if key in self._raised:
                return
            self._raised.add(key)
        self.alerts += 1
        self.report({"event": "alert", "at_ms": wall_ms(), **finding.to_json()})

    def _proved(self, origin: str, result: ProofResult) -> None:
        self.proofs.append(result)
        self.report({"event": "proof", "at_ms": wall_ms(), "origin": origin, **result.to_json()})

    # -- proofs ----------------------------------------------------------------

    def _act(self, finding: Finding) -> None:
        if self.chain is None:
            return
        if finding.kind == "equivocation":
            first, second = (e for e in finding.evidence if isinstance(e, bytes))
            self._proved(finding.origin, self.chain.prove_equivocation(first, second))
        elif finding.kind == "invalid-entry":
            self._unanchored.append(finding)
        elif finding.kind == "split-view":
            notes = [e for e in finding.evidence if isinstance(e, str)]
            self._prove_split(finding.origin, notes[0], notes[1], None)

    def _prove_unanchored(self) -> None:
        assert self.chain is not None
        waiting: list[Finding] = []
        for finding in self._unanchored:
            follower = self.followers[finding.origin]
            anchor = self.chain.latest_anchor(finding.origin)
            index = finding.index
            assert index is not None
            if anchor.size <= index or follower.view.size < anchor.size:
                waiting.append(finding)
                continue
            entry = finding.evidence[0]
            assert isinstance(entry, bytes)
            proof = follower.view.inclusion_proof(index, anchor.size)
            result = self.chain.prove_invalid_entry(
                finding.origin, anchor.size, index, entry, proof
            )
            self._proved(finding.origin, result)
            if not settled(result):
                waiting.append(finding)  # a transient failure: again next round
        self._unanchored = waiting

    def _signed_tree(self, origin: str, note: str) -> tuple[Checkpoint, SignedTree] | None:
        assert self.chain is not None
        verifier = self.chain.proof_verifier(origin)
        if verifier is None:
            return None
        try:
            checkpoint = open_checkpoint(note, verifier, origin)
            r, s = p256_signature(note, verifier)
        except InvalidCheckpoint:
            return None  # not signed for the chain: an alert, not a proof
        return checkpoint, SignedTree(checkpoint.size, checkpoint.root, r + s)

    def _prove_split(
        self, origin: str, note_a: str, note_b: str, divergence: Divergence | None
    ) -> None:
        if self.chain is None:
            return
        a, b = self._signed_tree(origin, note_a), self._signed_tree(origin, note_b)
        if a is None or b is None:
            return
        if a[1].size != b[1].size and divergence is None:
            return  # the leaves of the other view are needed: gossip brings them
        self._proved(origin, self.chain.prove_split_view(origin, a[1], b[1], divergence))

    def _check_receipts(self) -> None:
        assert self.chain is not None
        chain_ms = self.chain.chain_time() * 1000
        with self.lock:
            taken = list(self._receipts)
        pending = [item for item in taken if not self._settle(item, chain_ms)]
        with self.lock:  # keep what arrived meanwhile
            self._receipts = pending + [p for p in self._receipts if p not in taken]

    def _settle(self, item: PendingReceipt, chain_ms: int) -> bool:
        """Check one receipt; True once it is honoured or proven broken."""
        assert self.chain is not None
        receipt = item.receipt
        follower = self.followers[receipt.origin]
        index = receipt.index
        view = follower.view
        seen = index < view.size  # this watcher saw the entry at the receipt's index
        contradicted = seen and view.leaf_hash(index) != receipt.leaf_hash
        if contradicted:
            self._alert_receipt(item, f"#{index} holds another entry than the receipt's")
            anchor = self.chain.latest_anchor(receipt.origin)
            if anchor.size > index and view.size >= anchor.size:
                proof = view.inclusion_proof(index, anchor.size)
                result = self.chain.prove_receipt_contradicted(
                    receipt, item.signature, anchor.size, view.leaf_hash(index), proof
                )
                self._proved(receipt.origin, result)
                return settled(result)
            if chain_ms <= receipt.deadline:
                return False  # provable once an anchored tree holds the other entry
            # not anchored by its deadline either: provable as late, below
        latest = self.chain.latest_anchor(receipt.origin)
        if latest.size > index:
            in_time = latest.timestamp * 1000 <= receipt.deadline
            if in_time or self.chain.previous_anchor(receipt.origin) > index:
                # anchored in time (or by an earlier anchor, whose time the chain no
                # longer keeps: checked each round, this watcher saw it as the latest);
                # honoured once its leaf is seen (a contradicted one is proven above)
                return seen and not contradicted
        elif chain_ms <= receipt.deadline:
            return False
        self._alert_receipt(item, f"#{index} not anchored by its deadline {receipt.deadline}")
        result = self.chain.prove_receipt_late(receipt, item.signature)
        if not result.accepted and "deadline not passed" in result.reason:
            return False  # the chain's clock lags ours: again next round
        self._proved(receipt.origin, result)
        return settled(result)  # else again next round (e.g. anchored meanwhile: covered)

    def _alert_receipt(self, item: PendingReceipt, detail: str) -> None:
        if not item.alerted:
            item.alerted = True
            receipt = item.receipt
            self._alert(
                Finding("broken-receipt", receipt.origin, detail, (item.note,), receipt.index)
            )

    def _check_anchors(self) -> None:
        """Anchor liveness, and each new anchor against this watcher's view."""
        assert self.chain is not None
        now = time.time()
        for origin, follower in self.followers.items():
            anchor = self.chain.latest_anchor(origin)
            self._check_anchored_root(origin, follower, anchor.size, anchor.root)
            late = now - anchor.timestamp > self.stall_epochs * follower.epoch
            if late and follower.audited > anchor.size and anchor.timestamp:
                if origin not in self._stalled:
                    self._stalled.add(origin)
                    age = now - anchor.timestamp
                    self._alert(
                        Finding("stall", origin, f"no anchor for {age:.1f} s", (), anchor.size),
                        once=False,
                    )
            elif not late:
                self._stalled.discard(origin)

    def _check_anchored_root(
        self, origin: str, follower: NodeFollower, size: int, root: bytes
    ) -> None:
        """The anchored tree must be the one the node showed us at that size: if it
        is not, and we hold its signed checkpoint of that size, that is a split view
        between the chain and the watchers, provable with the note alone."""
        if not size or size > follower.view.size or (origin, size) in self._anchors_checked:
            return
        self._anchors_checked.add((origin, size))
        if follower.view.root(size) == root:
            return
        note = follower.tracker.notes.get(size)
        detail = f"the tree anchored at size {size} is not the one shown to this watcher"
        self._alert(Finding("split-view", origin, detail, (note,) if note else (), size))
        if note is not None and self.chain is not None:
            signed = self._signed_tree(origin, note)
            if signed is not None:
                anchored = SignedTree(size, root)
                self._proved(origin, self.chain.prove_split_view(origin, signed[1], anchored, None))

    def _gossip(self, peer: str) -> None:
        answer = self.http.get(f"{peer}/v1/checkpoints")
        answer.raise_for_status()
        for origin, note in dict(answer.json()).items():
            follower = self.followers.get(origin)
            if follower is None or note in self._gossip_checked or not isinstance(note, str):
                continue
            try:
                theirs = open_checkpoint(note, follower.verifier, origin)
            except InvalidCheckpoint:
                continue  # not signed by the log: the peer's problem, not the log's
            ours_note = follower.tracker.latest_note
            ours = follower.tracker.latest
            view = follower.view
            if ours is None or ours_note is None or view.size != ours.size:
                continue  # our own view is not complete yet: next round
            if theirs.size <= view.size and view.root(theirs.size) == theirs.root:
                self._gossip_checked.add(note)
                continue  # they saw an earlier state of the same log
            leaves = self._peer_leaves(peer, origin, theirs)
            if leaves is None:
                continue
            self._gossip_checked.add(note)
            common = min(view.size, len(leaves))
            mine = _leaves(follower, common)
            first = next((i for i in range(common) if mine[i] != leaves[i]), None)
            if first is None and theirs.size != ours.size:
                continue  # one view extends the other: consistent
            divergence = None
            if first is not None:
                divergence = Divergence(
                    first,
                    mine[first],
                    view.inclusion_proof(first, ours.size),
                    leaves[first],
                    merkle.inclusion_proof(leaves, first),
                )
            detail = f"{peer} was shown size {theirs.size}, we size {ours.size}: they differ"
            self._alert(Finding("split-view", origin, detail, (ours_note, note), first))
            self._prove_split(origin, ours_note, note, divergence)

    def _peer_leaves(self, peer: str, origin: str, checkpoint: Checkpoint) -> list[bytes] | None:
        answer = self.http.get(
            f"{peer}/v1/leaves", params={"origin": origin, "size": checkpoint.size}
        )
        if answer.status_code != 200:
            return None
        leaves = [bytes.fromhex(str(h)) for h in answer.json()["leaves"]]
        if len(leaves) != checkpoint.size or merkle.root(leaves) != checkpoint.root:
            return None  # not the leaves of that checkpoint
        return leaves


def _leaves(follower: NodeFollower, size: int) -> list[bytes]:
    """The first ``size`` leaf hashes of a follower's view, from its level-0 tiles."""
    view, leaves = follower.view, []
    for tile in range(0, -(-size // 256)):
        row = view.tile(0, tile)
        assert row is not None  # within the view's size
        leaves += [row[i : i + 32] for i in range(0, len(row), 32)]
    return leaves[:size]
