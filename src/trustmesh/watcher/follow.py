"""Follow nodes over their public HTTP API and feed the audit checks.

Each poll of a node: fetch its signed checkpoint and check it against the last
one seen (signature, consistency proof from the node); then fetch every entry
the checkpoint adds, check that it is included under the checkpoint's root
(inclusion proof), audit it (a valid reading, signed by the key its did:key
names), and record its (did, seq) in the index shared by all followed nodes,
so that one device signing two payloads under one seq on two different logs
is caught. The leaf hashes of the view it was shown are kept: they are what
a split view or a broken receipt is proven from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from trustmesh.errors import InvalidDid, InvalidProof
from trustmesh.identity import PublicKey, key_from_did
from trustmesh.log import merkle
from trustmesh.log.note import NoteVerifier
from trustmesh.watcher.audit import CheckpointTracker, Finding, SeqIndex, audit_entry

KeyFor = Callable[[str, int], PublicKey | None]


def did_key(did: str, seq: int) -> PublicKey | None:
    """The key a did:key names (did:key is self-certifying)."""
    try:
        return key_from_did(did)
    except InvalidDid:
        return None


class NodeFollower:
    def __init__(
        self, url: str, http: httpx.Client, index: SeqIndex, key_for: KeyFor = did_key
    ) -> None:
        self.url = url.rstrip("/")
        self.http = http
        self.index = index
        self.key_for = key_for
        info = self._json("/v1/log")
        self.origin: str = info["origin"]
        self.epoch = float(info.get("epoch_seconds", 30.0))
        self.verifier = NoteVerifier.from_vkey(info["verifier_key"])
        self.tracker = CheckpointTracker(self.verifier, self.origin)
        self.leaves: list[bytes] = []  # leaf hashes of the view this node showed us

    @property
    def audited(self) -> int:
        return len(self.leaves)

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
        for index in range(len(self.leaves), checkpoint.size):
            entry_answer = self.http.get(f"{self.url}/v1/entries/{index}")
            entry_answer.raise_for_status()
            entry = entry_answer.content
            proof = self._json("/v1/proof/inclusion", index=index, size=checkpoint.size)
            hashes = [bytes.fromhex(str(h)) for h in proof["hashes"]]
            leaf = merkle.leaf_hash(entry)
            try:
                merkle.verify_inclusion(leaf, index, checkpoint.size, hashes, checkpoint.root)
            except InvalidProof as exc:
                findings.append(Finding("broken-log", self.origin, f"#{index}: {exc}", (entry,)))
                break  # the view stops here until the node serves what it signed
            self.leaves.append(leaf)
            for found in (
                audit_entry(entry, self.origin, index, self.key_for),
                self.index.observe(entry, self.origin, index),
            ):
                if found is not None:
                    findings.append(found)
        return findings
