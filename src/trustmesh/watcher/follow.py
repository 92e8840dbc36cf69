"""Follow nodes over their public HTTP API and feed the audit checks.

Each poll of a node: fetch its signed checkpoint and check it against the last
one seen (signature, consistency proof from the node); then fetch every entry
the checkpoint adds as C2SP entry bundles (``/tile/entries``), 16 bundles at
a time, and check each chunk before anything of it is kept: with every earlier
entry it makes a tree (a compact range: O(log n)) that the signed one extends
(a consistency proof from the node; for the last chunk, the signed root
itself). A log without tiles is read entry by entry with an inclusion proof
each. Audit each entry (a valid reading, signed by the key the registry
holds), and record its (did, seq) in the index shared by all followed nodes,
so that one device signing two payloads under one seq on two different logs
is caught. The entries of the view it was shown are mirrored into a log store
on disk (``view``): roots and inclusion proofs at any size in O(log n), and
what a split view, an invalid entry or a broken receipt is proven from, with
memory that does not grow with the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from trustmesh.batch_verify import Item, verify_items
from trustmesh.errors import InvalidDid, InvalidProof
from trustmesh.identity import PublicKey, key_from_did
from trustmesh.log import merkle
from trustmesh.log.bundles import BUNDLE_SIZE
from trustmesh.log.compact import CompactRange
from trustmesh.log.note import NoteVerifier
from trustmesh.log.remote import bundled_entries
from trustmesh.log.store import LogStore, open_store
from trustmesh.watcher.audit import CheckpointTracker, Finding, audit_entries
from trustmesh.watcher.seqindex import SeqIndex

KeyFor = Callable[[str, int], PublicKey | None]
Verify = Callable[[list[Item]], list[str | None]]
CHUNK_BUNDLES = 16  # entries fetched, checked and committed 16 bundles (4,096) at a time


def did_key(did: str, seq: int) -> PublicKey | None:
    """The key a did:key names (did:key is self-certifying)."""
    try:
        return key_from_did(did)
    except InvalidDid:
        return None


class NodeFollower:
    def __init__(
        self,
        url: str,
        http: httpx.Client,
        index: SeqIndex,
        mirror: Path,
        key_for: KeyFor = did_key,
        verify: Verify = verify_items,
    ) -> None:
        self.url = url.rstrip("/")
        self.http = http
        self.index = index
        self.key_for = key_for
        self.verify = verify  # signature checks, batched (here, or on every core)
        info = self._json("/v1/log")
        self.origin: str = info["origin"]
        self.epoch = float(info.get("epoch_seconds", 30.0))
        self.verifier = NoteVerifier.from_vkey(info["verifier_key"])
        self.tracker = CheckpointTracker(self.verifier, self.origin)
        name = hashlib.sha256(f"{self.origin}\n{self.url}".encode()).hexdigest()[:16]
        self.view: LogStore = open_store(mirror / f"log-{name}.db")  # what this node showed us
        if self.view.size:
            raise ValueError(f"the mirror {mirror} is not fresh: one per run")
        self._compact = CompactRange()
        self._tiles = True  # until the node answers that it serves none

    @property
    def audited(self) -> int:
        return self.view.size

    def close(self) -> None:
        self.view.close()

    def _json(self, path: str, **params: int) -> dict[str, Any]:
        answer = self.http.get(self.url + path, params=params)
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
        return document

    def _consistency(self, old: int, new: int) -> list[bytes]:
        proof = self._json("/v1/proof/consistency", **{"from": old, "to": new})
        return [bytes.fromhex(str(h)) for h in proof["hashes"]]

    def poll(self) -> list[Finding]:
        """Check the node's latest checkpoint and audit every entry it adds."""
        answer = self.http.get(self.url + "/v1/checkpoint")
        answer.raise_for_status()
        finding = self.tracker.observe(answer.text, self._consistency)
        if finding is not None:
            return [finding]
        checkpoint = self.tracker.latest
        assert checkpoint is not None
        findings: list[Finding] = []
        start, size = self.view.size, checkpoint.size
        while start < size:  # a chunk at a time: memory stays flat however far behind
            end = min(size, (start // BUNDLE_SIZE + CHUNK_BUNDLES) * BUNDLE_SIZE)
            try:
                found = self._chunk(start, end, checkpoint.root, size)
            except Exception:
                if findings:  # earlier chunks are committed: report what they found
                    return findings  # (the next poll meets the error again, and raises it)
                raise
            if found is None:  # no tiles: the rest entry by entry
                return findings + self._one_by_one(start, size, checkpoint.root)
            findings += found
            if any(f.kind == "broken-log" for f in found):
                break
            start = end
        return findings

    def _chunk(self, start: int, end: int, root: bytes, size: int) -> list[Finding] | None:
        """Fetch, check against the signed root of ``size``, audit and commit entries
        ``start..end-1``; None if the node serves no tiles."""
        fetched = self._bundled(start, end) if self._tiles else None
        if fetched is None:
            return None
        compact = self._compact.copy()
        compact.extend([merkle.leaf_hash(entry) for entry in fetched])
        try:
            if end == size:
                if compact.root() != root:
                    raise InvalidProof("they do not make the signed root")
            else:  # the tree of ``end`` entries is a prefix of the signed one
                merkle.verify_consistency(
                    end, size, compact.root(), root, self._consistency(end, size)
                )
        except InvalidProof as exc:
            detail = f"entries {start}..{end - 1} of the tree of size {size}: {exc}"
            return [Finding("broken-log", self.origin, detail, ())]
        findings = self._audit(fetched, start)  # may raise: then nothing is committed
        self.view.append(fetched)
        self._compact = compact
        return findings

    def _bundled(self, start: int, end: int) -> list[bytes] | None:
        """Entries ``start..end-1`` from entry bundles; None if the node serves no tiles."""
        entries = bundled_entries(self.http, self.url, start, end)
        if entries is None:
            self._tiles = False
        return entries

    def _one_by_one(self, start: int, end: int, root: bytes) -> list[Finding]:
        findings: list[Finding] = []
        for index in range(start, end):
            entry_answer = self.http.get(f"{self.url}/v1/entries/{index}")
            entry_answer.raise_for_status()
            entry = entry_answer.content
            proof = self._json("/v1/proof/inclusion", index=index, size=end)
            hashes = [bytes.fromhex(str(h)) for h in proof["hashes"]]
            leaf = merkle.leaf_hash(entry)
            try:
                merkle.verify_inclusion(leaf, index, end, hashes, root)
            except InvalidProof as exc:
                findings.append(Finding("broken-log", self.origin, f"#{index}: {exc}", (entry,)))
                break  # the view stops here until the node serves what it signed
            findings += self._audit([entry], index)
            self.view.append([entry])
            self._compact.extend([leaf])
        return findings

    def _audit(self, entries: list[bytes], start: int) -> list[Finding]:
        """Audit entries ``start…``: each on its own (may raise while the registry is
        unreachable, before anything is recorded), then their seqs across logs.
        Signatures in one batch (on every core when the watcher has a pool)."""
        readings, findings = audit_entries(entries, self.origin, start, self.key_for, self.verify)
        return findings + self.index.observe_batch(entries, self.origin, start, readings)
