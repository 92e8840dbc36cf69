"""Recomputing a node's reputation tables and holding them to account: the check
that ``trustmesh reputation recompute`` runs once and the watcher runs every tick.

A node publishes every epoch's cut (which entries, which stake block); this
replays the log up to each cut (from wherever the caller reads entries: the
watcher's mirror, or the node's entry bundles), reads the stakes at the cut's
block, and compares the table's root with the one the node serves and the one
posted on-chain. When a posted table differs, it fetches the table the node
published, checks that it is the one posted, and finds the first value a
one-step proof disproves; with ``prove``, it submits that proof.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from trustmesh.chain.reputation import ReputationContract
from trustmesh.chain.stakes import ChainFacts
from trustmesh.chain.suite import LogAnchor, Registry
from trustmesh.errors import BadSignature, Error
from trustmesh.identity import PublicKey
from trustmesh.reading import Reading, parse_reading, verify_reading
from trustmesh.reputation import ReputationTable
from trustmesh.reputation.check import first_provable
from trustmesh.reputation.follow import Cut, Follower, replay
from trustmesh.reputation.publish import rebuild

__all__ = ["TableAuditor", "differs", "registry_verifier"]

Entries = Callable[[str, int, int], list[bytes]]
Verify = Callable[[bytes], Reading]


def registry_verifier(key_for: Callable[[str, int], PublicKey | None]) -> Verify:
    """Verify an entry with the key the Registry holds for its device and seq (what
    the node checked it with: a rotated key included), as the watcher's audit does."""

    def verify(entry: bytes) -> Reading:
        reading = parse_reading(entry)
        key = key_for(reading.did, reading.seq)
        if key is None:
            raise BadSignature(f"{reading.did} has no registered key for seq {reading.seq}")
        return verify_reading(entry, key)

    return verify


def differs(report: dict[str, Any]) -> bool:
    """Whether an epoch's report found the node's root or the posted root unlike ours."""
    return report["agrees"] is False or report.get("onchain", {}).get("agrees") is False


class TableAuditor:
    """One node's tables, recomputed epoch by epoch as its cuts appear."""

    def __init__(
        self,
        url: str,
        http: httpx.Client,
        entries: Entries,
        registry: Registry,
        anchor: LogAnchor,
        contract: ReputationContract | None,
        *,
        verify: Verify = verify_reading,
        prove: bool = False,
        available: Callable[[str], int] = lambda origin: 1 << 62,
    ) -> None:
        """``available``: how many entries of a log ``entries`` can give now (a cut
        beyond them waits for the next check)."""
        self.url = url.rstrip("/")
        self.http, self.entries = http, entries
        self.registry, self.anchor, self.contract, self.prove = registry, anchor, contract, prove
        self.verify = verify
        self.follower: Follower | None = None
        self.facts: ChainFacts | None = None
        self.available = available
        self.keeps_tables: bool | None = None  # known after the first check

    def check(self) -> list[dict[str, Any]]:
        """Every cut the node published that is not checked yet (and whose entries
        are available), checked; one report each. A log that keeps no tables: []."""
        answer = self.http.get(f"{self.url}/v1/reputation")
        self.keeps_tables = answer.status_code not in (404, 501)
        if not self.keeps_tables:  # a log without tables (or not a node's)
            return []
        answer.raise_for_status()
        listing = answer.json()
        epoch_ms = round(float(listing["epoch_seconds"]) * 1000)
        if self.follower is None or self.facts is None:
            if epoch_ms <= 0:
                raise Error(f"{self.url} names a reputation epoch of {epoch_ms} ms")
            self.follower = Follower(epoch_ms, verify=self.verify)
            self.facts = ChainFacts(self.registry, self.anchor, epoch_ms)
        published = {int(e["epoch"]): e for e in listing["epochs"]}
        done = self.follower.next_epoch
        cuts = []
        for item in listing["epochs"]:
            cut = Cut.from_json(item)
            if done is not None and cut.epoch < done:
                continue
            if any(size > self.available(origin) for origin, size in cut.sizes.items()):
                break  # its entries are not here yet: next time
            cuts.append(cut)
        reports = []
        for cut, table in replay(self.follower, cuts, self.entries, self.facts):
            theirs = published[cut.epoch].get("score_root")
            report: dict[str, Any] = {
                "epoch": cut.epoch,
                "subjects": len(table.rows),
                "score_root": table.score_root.hex(),
                "theirs": theirs,
                "agrees": None if theirs is None else theirs == table.score_root.hex(),
            }
            if self.contract is not None:
                report["onchain"] = self._onchain(table, theirs)
            reports.append(report)
        return reports

    @property
    def skipped(self) -> int:
        """Entries whose signature did not verify (they counted for no one)."""
        return self.follower.skipped if self.follower is not None else 0

    def _onchain(self, ours: ReputationTable, theirs: str | None) -> dict[str, Any]:
        """The posted root against ours; ``agrees`` is None when the table posted is
        not this node's (another attester's, over other logs) or not published."""
        assert self.contract is not None
        root = self.contract.root(ours.epoch)
        if root == bytes(32):
            return {"root": None, "agrees": None}
        if root == ours.score_root:
            return {"root": root.hex(), "agrees": True}
        posted = self._posted(ours, theirs, root)
        if isinstance(posted, str):
            return {"root": root.hex(), "agrees": None, "note": posted}
        found: dict[str, Any] = {"root": root.hex(), "agrees": False}
        wrong = first_provable(posted)
        if wrong is None:
            found["finding"] = (
                "the posted table is consistent in itself: its inputs (evidence, edges, "
                "stakes) differ from the log's, which no one-step proof shows yet"
            )
            return found
        found["finding"] = {"kind": wrong.kind, "subject": wrong.subject.hex(), "step": wrong.step}
        if self.prove:
            receipt = self.contract.prove(posted, wrong)
            found["proven"] = {"transaction": receipt["transactionHash"].hex()}
        return found

    def _posted(
        self, ours: ReputationTable, theirs: str | None, root: bytes
    ) -> ReputationTable | str:
        """The node's published table if it is the one posted, else why not."""
        if theirs is not None and theirs != root.hex():
            return "posted by another attester"
        answer = self.http.get(f"{self.url}/v1/reputation/epochs/{ours.epoch}")
        if answer.status_code != 200:
            return "the node no longer keeps it"
        posted = rebuild(answer.json(), ours.params)
        return posted if posted.score_root == root else "posted by another attester"
