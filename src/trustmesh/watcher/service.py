"""A watcher: follows nodes, holds them to their receipts, gossips checkpoints
with other watchers, and proves every lie it can on-chain.

Each :meth:`Watcher.tick` polls every node (:class:`NodeFollower`), then

- proves what the poll found: equivocation at once; an invalid entry once an
  anchored tree includes it; two signed checkpoints of one size with two
  roots at once;
- holds the receipts devices forwarded (tlog-proofs, checked by
  :meth:`Watcher.check_receipt`, then :meth:`Watcher.hold`): once this watcher
  was shown the log at the receipt's size, its tree must be the receipt's (else
  the two signed trees are a split view, proven at the receipt's index or, if the
  leaf there is the same, by a consistency proof from this watcher's tree);
- holds the node to anchoring what it signed: a receipt's checkpoint, and the
  latest one this watcher was shown, that stay unanchored past an epoch and a
  grace period are notarized on-chain, and proven late once the chain's maximum
  merge delay has passed with no anchor that large (an honest node anchors every
  epoch, so honest operation costs nothing on-chain);
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
from typing import TYPE_CHECKING, Any

import httpx

from trustmesh.batch_verify import verify_in_pool, verify_items
from trustmesh.chain.reputation import ReputationContract
from trustmesh.chain.suite import Divergence, SignedTree
from trustmesh.errors import ChainError, Error, InvalidCheckpoint, InvalidReceipt
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, open_checkpoint
from trustmesh.log.note import NoteVerifier
from trustmesh.log.note_p256 import p256_signature
from trustmesh.log.receipt import Receipt, open_receipt
from trustmesh.log.tlog_proof import parse_tlog_proof
from trustmesh.mesh.topics import CHECKPOINTS
from trustmesh.watcher.aggregates import ClaimChecker
from trustmesh.watcher.audit import Finding
from trustmesh.watcher.follow import NodeFollower, did_key
from trustmesh.watcher.onchain import ChainView, ProofResult
from trustmesh.watcher.reputation import TableAuditor, differs, registry_verifier
from trustmesh.watcher.seqindex import SeqIndex

__all__ = ["Held", "Watcher"]

Report = Callable[[dict[str, Any]], None]


if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra)
    from trustmesh.mesh.peer import MeshPeer

MAX_HEARD_WAITING = 1_000


@dataclass
class Held:
    """A checkpoint the node signed, held to its promises: a receipt's (whose leaf
    must stay at its index), or the latest this watcher was shown."""

    origin: str
    tree: SignedTree  # size, root, and r || s of the log's P-256 signature (b"": no chain)
    note: str
    seen_ms: int  # when this watcher got it (wall clock)
    receipt: Receipt | None = None
    notarized_at: int = 0  # block time of its notarization, once notarized
    alerted: bool = False  # unanchored past the grace period: alerted (once)
    proving: bool = False  # a split view found: proven, or retried until the chain answers


RETRYABLE = ("merge delay not passed", "tree not anchored")


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
        grace: float | None = None,
        mesh: MeshPeer | None = None,
    ) -> None:
        """``mirror``: where this run keeps its copy of each log and its seq index
        (a fresh directory in it, removed by :meth:`close`; default: the temp dir).
        ``verify_workers``: processes checking entry signatures (0: this one).
        ``grace``: seconds past a log's epoch a checkpoint may stay unanchored
        before this watcher notarizes it (default: one more epoch)."""
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
        self._receipts: list[Held] = []
        self._shown: dict[str, Held] = {}  # per log: the oldest unanchored checkpoint shown
        self.grace = grace
        self._unanchored: list[Finding] = []  # invalid entries waiting for an anchor
        self._raised: set[tuple[str, str, str]] = set()
        self._stalled: set[str] = set()
        self._gossip_checked: set[str] = set()
        self._anchors_checked: set[tuple[str, int]] = set()
        self.alerts = 0
        self.proofs: list[ProofResult] = []
        self.auditors: dict[str, TableAuditor] = {}
        if chain is not None:
            for follower in followers:
                self._pin_log_key(follower)
            address = chain.deployment.contracts.get("Reputation")
            contract = ReputationContract(chain.client, address) if address else None
            for follower in followers:
                self.auditors[follower.origin] = _auditor(follower, http, chain, contract)
        self.claims = (
            ClaimChecker(chain, http, self._entries_upto, report)
            if chain is not None and "Aggregates" in chain.deployment.contracts
            else None
        )
        self._heard: list[str] = []  # checkpoints heard on the mesh, not yet compared
        self._heard_waiting: list[str] = []  # of trees larger than this watcher's view yet
        if mesh is not None:
            mesh.subscribe(CHECKPOINTS, self._hear)

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

    def _entries_upto(self, origin: str, size: int) -> list[bytes] | None:
        """The first ``size`` entries of a followed log, once this watcher has them."""
        follower = self.followers.get(origin)
        if follower is None or follower.view.size < size:
            return None
        return [follower.view.entry(index) for index in range(size)]

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

    def hold(self, checked: list[Held]) -> None:
        """Hold receipts :meth:`check_receipt` accepted (each once)."""
        with self.lock:
            for item in checked:
                if all(p.receipt != item.receipt for p in self._receipts):
                    self._receipts.append(item)

    def check_receipt(self, leaf_hash: bytes, text: str) -> Held:
        """A forwarded receipt (the tlog-proof of the entry whose leaf hash is
        ``leaf_hash``), verified with the log's keys (its P-256 signature kept for
        proofs); InvalidReceipt if it is not one."""
        origin = parse_tlog_proof(text).checkpoint.partition("\n")[0]
        follower = self.followers.get(origin)
        if follower is None:
            raise InvalidReceipt("a receipt of a log this watcher does not follow")
        receipt = open_receipt(text, leaf_hash, follower.verifier, origin)
        signature = b""
        if self.chain is not None:
            verifier = self.chain.proof_verifier(origin)
            if verifier is None:
                raise InvalidReceipt("the log has no P-256 key in the Registry")
            try:
                r, s = p256_signature(receipt.note, verifier)
            except InvalidCheckpoint:
                raise InvalidReceipt("the receipt lacks the log's P-256 signature") from None
            signature = r + s
        tree = SignedTree(receipt.size, receipt.root, signature)
        return Held(origin, tree, receipt.note, wall_ms(), receipt)

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
            for work in (
                self._prove_unanchored,
                self._check_receipts,
                self._check_anchors,
                self._hold_to_anchoring,
                self._check_claims,
            ):
                try:
                    work()
                except ChainError as exc:
                    self._alert(Finding("chain-unreachable", "", str(exc)), once=False)
        self._check_reputation()
        try:
            self._check_heard()
        except ChainError as exc:
            self._alert(Finding("chain-unreachable", "", str(exc)), once=False)
        for peer in self.peers:
            try:
                self._gossip(peer)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, Error) as exc:
                self._alert(Finding("peer-unreachable", "", f"{peer}: {exc!r}"), once=False)

    def _hear(self, data: bytes) -> None:
        """A checkpoint gossiped on the mesh (its log's signature checked by the peer)."""
        with self.lock:
            self._heard.append(data.decode())

    def _check_heard(self) -> None:
        """Each checkpoint heard on the mesh against this watcher's own view of its log:
        a tree the log never showed here is a split view, proven from this watcher's
        own view (same size: the two signed trees; smaller: by consistency)."""
        with self.lock:
            heard, self._heard = self._heard + self._heard_waiting, []
        self._heard_waiting = []
        for note in heard:
            if not self._judge_heard(note) and len(self._heard_waiting) < MAX_HEARD_WAITING:
                self._heard_waiting.append(note)  # judged once this watcher's view is there

    def _judge_heard(self, note: str) -> bool:
        """Compare one heard checkpoint; False if this watcher's view is not there yet."""
        origin = note.partition("\n")[0]
        follower = self.followers.get(origin)
        if follower is None or note in self._gossip_checked:
            return True
        try:
            theirs = open_checkpoint(note, follower.verifier, origin)
        except InvalidCheckpoint:
            return True
        ours, ours_note, view = follower.tracker.latest, follower.tracker.latest_note, follower.view
        if ours is None or ours_note is None or view.size != ours.size or theirs.size > view.size:
            return False
        self._gossip_checked.add(note)
        if view.root(theirs.size) == theirs.root:
            return True  # a state of the log this watcher was shown too
        detail = f"the mesh carried size {theirs.size}, this watcher was shown size {ours.size}"
        self._alert(Finding("split-view", origin, detail, (ours_note, note)))
        if theirs.size == ours.size:
            self._prove_split(origin, ours_note, note, None)
            return True
        a, b = self._signed_tree(origin, note), self._signed_tree(origin, ours_note)
        if self.chain is not None and a is not None and b is not None:
            old = a[1].size
            proof = merkle.prefix_proof(old, view.root(old), view.consistency_proof(old, ours.size))
            self._proved(origin, self.chain.prove_inconsistent(origin, a[1], b[1], proof))
        return True

    def _check_claims(self) -> None:
        """Aggregate claims over the followed logs: each lie proven."""
        if self.claims is not None:
            self.claims.check()

    def _check_reputation(self) -> None:
        """Each node's newly closed reputation epochs, recomputed from its mirrored log."""
        for origin, auditor in self.auditors.items():
            try:
                reports = auditor.check()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                self._alert(Finding("unreachable", origin, f"{auditor.url}: {exc!r}"), once=False)
                continue
            except Error as exc:
                self._alert(Finding("chain-unreachable", origin, str(exc)), once=False)
                continue
            for report in reports:
                self.report({"event": "reputation", "at_ms": wall_ms(), "origin": origin, **report})
                onchain = report.get("onchain", {})
                if differs(report):
                    detail = (
                        f"epoch {report['epoch']}: {onchain.get('finding', 'its root differs')}"
                    )
                    self._alert(Finding("reputation-differs", origin, detail))
                if "proven" in onchain:
                    transaction = onchain["proven"]["transaction"]
                    self._proved(origin, ProofResult("wrong-reputation", True, transaction))

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
        """Each receipt against this watcher's view of its log, and against the chain's
        deadline for its checkpoint; a receipt is let go once the view holds its tree."""
        with self.lock:
            taken = list(self._receipts)
        pending = [item for item in taken if not self._settle_receipt(item)]
        with self.lock:  # keep what arrived meanwhile
            self._receipts = pending + [p for p in self._receipts if p not in taken]

    def _settle_receipt(self, item: Held) -> bool:
        """True once the receipt's tree is the one shown to this watcher, or proven not."""
        assert item.receipt is not None
        follower = self.followers[item.origin]
        view, size = follower.view, item.tree.size
        if view.size < size:
            self._hold_anchoring(item, follower)  # compared once this watcher is shown it
            return False
        if view.root(size) == item.tree.root:
            return True  # the tree this watcher audits (and whose anchors it checks)
        if not item.proving:
            item.proving = True
            index = item.receipt.index
            detail = f"receipt #{index} is in a tree of {size} this watcher was shown otherwise"
            self._alert(Finding("broken-receipt", item.origin, detail, (item.note,), index))
        result = self._prove_receipt_split(item, follower)
        return result is None or settled(result)

    def _prove_receipt_split(self, item: Held, follower: NodeFollower) -> ProofResult | None:
        """Prove a receipt's tree and the tree this watcher was shown a split view: at
        the receipt's index if its leaf differs there, else by consistency."""
        assert self.chain is not None and item.receipt is not None
        view, receipt = follower.view, item.receipt
        note = follower.tracker.notes.get(view.size)
        signed = self._signed_tree(item.origin, note) if note is not None else None
        if signed is None or not item.tree.signature:
            return None  # not provable on-chain (no P-256 signature): the alert stands
        ours, a, index = signed[1], item.tree, receipt.index
        if ours.size == a.size:
            result = self.chain.prove_split_view(item.origin, a, ours, None)
        elif view.leaf_hash(index) != receipt.leaf_hash:
            divergence = Divergence(
                index,
                receipt.leaf_hash,
                list(receipt.proof.hashes),
                view.leaf_hash(index),
                view.inclusion_proof(index, ours.size),
            )
            result = self.chain.prove_split_view(item.origin, a, ours, divergence)
        else:
            proof = merkle.prefix_proof(
                a.size, view.root(a.size), view.consistency_proof(a.size, ours.size)
            )
            result = self.chain.prove_inconsistent(item.origin, a, ours, proof)
        self._proved(item.origin, result)
        return result

    def _hold_to_anchoring(self) -> None:
        """The latest checkpoint each log showed this watcher must be anchored in time,
        as a receipt's must: the oldest one not yet anchored is held to it."""
        assert self.chain is not None
        for origin, follower in self.followers.items():
            held = self._shown.get(origin)
            if held is not None and self._hold_anchoring(held, follower):
                del self._shown[origin]
                held = None
            note, latest = follower.tracker.latest_note, follower.tracker.latest
            if held is None and note is not None and latest is not None and latest.size:
                signed = self._signed_tree(origin, note)
                if signed is not None and self.chain.latest_anchor(origin).size < latest.size:
                    self._shown[origin] = Held(origin, signed[1], note, wall_ms())

    def _hold_anchoring(self, item: Held, follower: NodeFollower) -> bool:
        """Hold a checkpoint to its anchoring; True once anchored (or proven late).

        Unanchored past an epoch and the grace period, it is notarized; unanchored
        past the chain's maximum merge delay from then, it is proven late."""
        assert self.chain is not None
        size = item.tree.size
        anchor = self.chain.latest_anchor(item.origin)
        covered = anchor.size >= size
        if not item.notarized_at:
            return covered or self._notarize_when_due(item, follower)
        deadline = item.notarized_at + self.chain.max_merge_delay()
        if self.chain.chain_time() <= deadline:
            return covered  # anchored within the merge delay, or it still may be
        first_covering = self.chain.previous_anchor(item.origin) < size
        if covered and (anchor.timestamp <= deadline or not first_covering):
            return True  # anchored in time (an earlier anchor's time was seen in time)
        result = self.chain.prove_late(item.origin, size)
        self._proved(item.origin, result)
        return settled(result)

    def _notarize_when_due(self, item: Held, follower: NodeFollower) -> bool:
        """Notarize a checkpoint still unanchored an epoch and the grace period after
        this watcher got it (alerting once); True if it was anchored meanwhile."""
        assert self.chain is not None
        waited = follower.epoch + (follower.epoch if self.grace is None else self.grace)
        if wall_ms() - item.seen_ms < waited * 1000:
            return False  # in time yet
        if not item.alerted:
            item.alerted = True
            detail = f"size {item.tree.size} unanchored for {waited:g} s: notarizing it"
            self._alert(Finding("unanchored", item.origin, detail, (item.note,), item.tree.size))
        if not item.tree.signature:
            return False  # not provable on-chain: the alert stands
        result = self.chain.notarize(item.origin, item.tree)
        item.notarized_at = self.chain.notarized(item.origin, item.tree.size)
        if item.notarized_at and result.accepted:
            self._proved(item.origin, result)
        # not noted: anchored meanwhile, or no key, or the chain out of reach
        return not item.notarized_at and "already anchored" in result.reason

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


def _auditor(
    follower: NodeFollower,
    http: httpx.Client,
    chain: ChainView,
    contract: ReputationContract | None,
) -> TableAuditor:
    """The reputation check of one followed node, over the log this watcher mirrors."""
    return TableAuditor(
        follower.url,
        http,
        lambda origin, start, end: follower.view.entries(start, end),
        chain.registry,
        chain.anchor,
        contract,
        verify=registry_verifier(chain.key_for),
        prove=chain.can_prove,
        available=lambda origin: follower.view.size,
    )


def _leaves(follower: NodeFollower, size: int) -> list[bytes]:
    """The first ``size`` leaf hashes of a follower's view, from its level-0 tiles."""
    view, leaves = follower.view, []
    for tile in range(0, -(-size // 256)):
        row = view.tile(0, tile)
        assert row is not None  # within the view's size
        leaves += [row[i : i + 32] for i in range(0, len(row), 32)]
    return leaves[:size]
