"""Devices' stakes as the Registry held them at a block: a reputation epoch's
pre-trust, read the same way by the node that closes the epoch and by anyone who
recomputes it."""

from __future__ import annotations

from trustmesh.chain.suite import Registry, device_id
from trustmesh.reputation import Stake

__all__ = ["StakeReader"]


class StakeReader:
    """Devices' stakes as the Registry held them at a block, each with its age: whole
    epochs from its registration block's time to the epoch's start (a device that
    re-registers after a slash starts again from zero)."""

    ACTIVE, REVOKED = 1, 2

    def __init__(self, registry: Registry, epoch_ms: int) -> None:
        self.registry = registry
        self.epoch_ms = epoch_ms
        self._registered: dict[bytes, int] = {}  # device id -> ms of its registration
        self._scanned = -1  # the last block whose events are in _registered

    def stakes(self, dids: list[str], block: int, epoch: int) -> list[Stake]:
        """The stakes of ``dids`` at ``block``, aged at the start of ``epoch``."""
        self._scan(block)
        client, contract = self.registry.client, self.registry.contract
        found = []
        start_ms = epoch * self.epoch_ms
        with client.errors("reading stakes"):
            for did in dids:
                subject = device_id(did)
                record = contract.functions.devices(subject).call(block_identifier=block)
                amount, status = int(record[1]), int(record[2])
                if status not in (self.ACTIVE, self.REVOKED):
                    continue
                registered = self._registered.get(subject, start_ms)
                age = max(0, start_ms - registered) // self.epoch_ms
                found.append(Stake(subject, amount, age, slashed=status == self.REVOKED))
        return found

    def _scan(self, block: int) -> None:
        if block <= self._scanned:
            return
        w3 = self.registry.client.w3
        with self.registry.client.errors("reading registrations"):
            for number, subject, event in self.registry.device_events(self._scanned + 1, block):
                if event == "DeviceRegistered":
                    self._registered[subject] = 1000 * int(w3.eth.get_block(number)["timestamp"])
        self._scanned = block
