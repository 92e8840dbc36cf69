"""The watcher's check of aggregate claims: every claim posted to the Aggregates
contract over logs this watcher follows is judged against its own copies of
those logs, and each lie is proven on-chain before the claim's window closes.

A claim's data is read from the URI it was posted with (http or https only: a
URI on-chain names no file of this machine), at most 64 MiB. A claim is judged
once the watcher's copy of each log it reads reaches the claim's snapshot; one
whose data cannot be read, or that reads a log this watcher does not follow, is
reported once and left to watchers that can.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from trustmesh.aggregate.audit import Snapshot, Verdict, judge, read_data
from trustmesh.aggregate.claim import Claim
from trustmesh.chain.aggregates import AggregatesContract
from trustmesh.chain.aggregates import Posted as PostedEvent
from trustmesh.errors import ChainError, Reverted
from trustmesh.watcher.onchain import ChainView

__all__ = ["ClaimChecker", "fetch_data"]

MAX_DATA = 64 * 1024 * 1024

Entries = Callable[[str, int], list[bytes] | None]
"""(origin, size) → the first ``size`` entries of a followed log, or None while
this watcher's copy is shorter (or it does not follow the log)."""
Report = Callable[[dict[str, Any]], None]


def fetch_data(http: httpx.Client, uri: str) -> bytes | None:
    """A claim's data from its URI; None if it cannot be read."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with http.stream("GET", uri) as answer:
            if answer.status_code != 200:
                return None
            data = bytearray()
            for chunk in answer.iter_bytes():
                data += chunk
                if len(data) > MAX_DATA:
                    return None
            return bytes(data)
    except (httpx.HTTPError, ValueError):
        return None


class ClaimChecker:
    def __init__(self, chain: ChainView, http: httpx.Client, entries: Entries,
                 report: Report) -> None:  # fmt: skip
        address = chain.deployment.contracts["Aggregates"]
        self.chain = chain
        self.contract = AggregatesContract(chain.client, address)
        self.http = http
        self.entries = entries
        self.report = report
        self.next_block = 0
        self.waiting: dict[bytes, PostedEvent] = {}
        self.verdicts: dict[bytes, Verdict] = {}
        self.proven: list[bytes] = []  # claims this watcher refuted
        self._claims: dict[bytes, Claim] = {}  # each claim judged, decoded once

    def check(self) -> list[Verdict]:
        """Read newly posted claims, judge those whose logs this watcher has, and
        prove each lie; returns the verdicts reached this round."""
        head = int(self.chain.client.w3.eth.block_number)
        if head >= self.next_block:
            for posted in self.contract.posted(self.next_block, head):
                self.verdicts.pop(posted.claim_id, None)  # posted again, once refuted
                self.waiting[posted.claim_id] = posted
            self.next_block = head + 1
        reached = []
        for claim_id, posted in list(self.waiting.items()):
            verdict = self._judge(posted)
            if verdict is None:
                continue  # its logs have not reached the snapshot here yet
            del self.waiting[claim_id]
            self.verdicts[claim_id] = verdict
            reached.append(verdict)
            self.report({"event": "aggregate", **verdict.to_json()})
            if verdict.challenge is not None and self.chain.can_prove:
                self._prove(posted, verdict)
            self._claims.pop(claim_id, None)
        return reached

    def _judge(self, posted: PostedEvent) -> Verdict | None:
        claim = read_data(posted, fetch_data(self.http, posted.uri))
        if isinstance(claim, Verdict):
            return claim
        entries = {}
        for log_id, size in zip(claim.query.log_ids, claim.sizes, strict=True):
            found = self.entries(claim.query.origins[log_id], size)
            if found is None:
                return None
            entries[log_id] = found
        self._claims[posted.claim_id] = claim
        return judge(posted, claim, Snapshot(entries), self.chain.key_for)

    def _prove(self, posted: PostedEvent, verdict: Verdict) -> None:
        challenge = verdict.challenge
        assert challenge is not None
        claim = self._claims[posted.claim_id]
        try:
            receipt = self.contract.challenge(claim.to_abi(), challenge.method, challenge.args)
        except Reverted as exc:
            self.report({"event": "aggregate-proof", "claim_id": "0x" + posted.claim_id.hex(),
                         "accepted": False, "reason": str(exc)})  # fmt: skip
            return
        except ChainError as exc:
            self.waiting[posted.claim_id] = posted  # judged and tried again next round
            self.report({"event": "alert", "kind": "chain-unreachable", "detail": str(exc)})
            return
        event = self.contract.refuted(receipt)
        self.proven.append(posted.claim_id)
        self.report({"event": "aggregate-proof", "claim_id": "0x" + posted.claim_id.hex(),
                     "accepted": True, "kind": event["kind"], "reason": event["reason"],
                     "paid": event["paid"],
                     "transaction": "0x" + bytes(receipt["transactionHash"]).hex()})  # fmt: skip
