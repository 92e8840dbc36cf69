"""What the chain says about a reputation epoch's subjects, as of a block: their
stakes (devices' and nodes' Registry records, each aged from its registration) and
the nodes' anchors in the epoch. The node that closes an epoch and anyone who
recomputes it read the same block, so they read the same facts."""

from __future__ import annotations

import hashlib

from trustmesh.chain.suite import LogAnchor, Registry, device_id, origin_id
from trustmesh.reputation import Evidence, Kind, Stake

__all__ = ["ChainFacts"]

ACTIVE, REVOKED = 1, 2  # Registry statuses (revoked: a device revoked, a node retired)


class ChainFacts:
    """Stakes and anchors at a block; registrations and anchors are read once, as
    blocks go by."""

    def __init__(self, registry: Registry, anchor: LogAnchor, epoch_ms: int) -> None:
        self.registry, self.anchor = registry, anchor
        self.epoch_ms = epoch_ms
        self._registered: dict[bytes, int] = {}  # subject id -> ms of its registration
        self._anchors: dict[str, list[tuple[int, int]]] = {}  # origin -> (ms, size)
        self._slashes: list[tuple[int, bytes, bytes]] = []  # (ms, subject id, transaction)
        self._records: dict[bytes, tuple[int, int]] = {}  # id -> (stake, status) at _block
        self._block = -1
        self._scanned = -1  # the last block whose events are read

    def __call__(
        self, dids: list[str], origins: list[str], block: int, epoch: int
    ) -> tuple[list[Stake], list[Evidence]]:
        """The stakes of ``dids`` and of the nodes of ``origins`` at ``block``, aged at
        the start of ``epoch``; each node's anchors in ``epoch`` as ``anchor_kept``, and
        every slash in ``epoch`` (of anyone: a device or a node) as ``slashed``."""
        self._scan(block, origins)
        functions = self.registry.contract.functions
        start = epoch * self.epoch_ms
        if block != self._block:  # records at another block: read afresh
            self._records, self._block = {}, block
        stakes = []
        with self.registry.client.errors("reading stakes"):
            for subject, read in [
                *((device_id(did), functions.devices) for did in dids),
                *((origin_id(origin), functions.nodes) for origin in origins),
            ]:
                if subject not in self._records:
                    record = read(subject).call(block_identifier=block)
                    self._records[subject] = int(record[1]), int(record[2])
                amount, status = self._records[subject]
                if status in (ACTIVE, REVOKED):
                    age = max(0, start - self._registered.get(subject, start)) // self.epoch_ms
                    stakes.append(Stake(subject, amount, age, slashed=status == REVOKED))
        evidence = []
        for origin in origins:
            kept = [size for ms, size in self._anchors[origin] if ms // self.epoch_ms == epoch]
            if kept:  # ref: the checkpoint anchored last (LogAnchor holds it by origin, size)
                ref = hashlib.sha256(origin_id(origin) + max(kept).to_bytes(32, "big")).digest()
                evidence.append(Evidence(origin_id(origin), Kind.ANCHOR_KEPT, ref, len(kept)))
        for ms, subject, transaction in self._slashes:
            if ms // self.epoch_ms == epoch:
                evidence.append(Evidence(subject, Kind.SLASHED, transaction))
        return stakes, evidence

    def _scan(self, block: int, origins: list[str]) -> None:
        client, events = self.registry.client, self.registry.contract.events
        with client.errors("reading anchors"):
            for origin in origins:  # a log first seen: its anchors up to the blocks read
                if origin not in self._anchors:
                    history = (
                        self.anchor.history(origin, 0, self._scanned) if self._scanned >= 0 else []
                    )
                    self._anchors[origin] = [(1000 * seconds, size) for seconds, size in history]
        if block <= self._scanned:
            return
        span = {"from_block": self._scanned + 1, "to_block": block}
        stamps: dict[int, int] = {}  # block -> ms: a batch's events share one block

        def ms(number: int) -> int:
            if number not in stamps:
                stamps[number] = 1000 * int(client.w3.eth.get_block(number)["timestamp"])
            return stamps[number]

        with client.errors("reading registrations and anchors"):
            for number, subject, event in self.registry.device_events(self._scanned + 1, block):
                if event == "DeviceRegistered":
                    self._registered[subject] = ms(number)
            for log in events.NodeRegistered().get_logs(**span):
                self._registered[bytes(log["args"]["origin_id"])] = ms(log["blockNumber"])
            for log in events.Slashed().get_logs(**span):
                subject, transaction = bytes(log["args"]["id"]), bytes(log["transactionHash"])
                self._slashes.append((ms(log["blockNumber"]), subject, transaction))
            for origin in self._anchors:
                history = self.anchor.history(origin, self._scanned + 1, block)
                self._anchors[origin] += [(1000 * seconds, size) for seconds, size in history]
        self._scanned = block
