"""The registry as the node sees it: a cache of device records and keys,
kept fresh by following the Registry's events.

A lookup answers from the cache when it can; a miss asks the chain once. New
registrations, rotations and revocations are picked up from the events within
one refresh interval, and an unknown DID is remembered only briefly, so a
device registered a moment ago is served as soon as its event is seen. A
record a rotation or revocation made stale is fetched again on its next use;
while the chain is unreachable the last known record serves (the node keeps
ingesting; what it accepts stays open to fraud proofs).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from trustmesh._problems import Problem
from trustmesh.chain.suite import Registry, device_id, key_from_chain
from trustmesh.errors import ChainError
from trustmesh.identity import PublicKey

CACHE_SIZE = 100_000
UNKNOWN_TTL = 5.0  # seconds an unknown DID stays unknown without a new event


@dataclass(frozen=True)
class DeviceRecord:
    status: str
    keys: tuple[tuple[int, PublicKey], ...]  # (from_seq, key), in history order

    def key_for(self, seq: int) -> PublicKey:
        for from_seq, key in reversed(self.keys):
            if from_seq <= seq:
                return key
        raise Problem("unknown-device", "no key for this seq")


def key_in(did: str, record: DeviceRecord, seq: int) -> PublicKey:
    """The key ``record`` names for ``seq``; Problem 401 if the device is unknown or revoked."""
    if record.status == "unknown":
        raise Problem("unknown-device", f"{did} is not registered")
    if record.status != "active":
        raise Problem("revoked-device", f"{did} is {record.status}")
    return record.key_for(seq)


class DeviceDirectory:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._records: OrderedDict[str, DeviceRecord] = OrderedDict()
        self._unknown: dict[str, float] = {}
        self._by_id: dict[bytes, str] = {}
        self._stale: set[str] = set()
        self._next_block = registry.current_block()

    def record(self, did: str) -> DeviceRecord:
        """The device's record (status "unknown" if it has none); Problem 503 if the
        chain cannot be asked. May call the chain: run it off the event loop."""
        return self._record(did)

    def cached_record(self, did: str) -> DeviceRecord | None:
        """The device's record from the cache alone; None if the chain must be asked."""
        with self._lock:
            record = self._records.get(did)
            if record is None or did in self._stale:
                return None
            self._records.move_to_end(did)
        return record

    def _record(self, did: str) -> DeviceRecord:
        with self._lock:
            record = self._records.get(did)
            stale = did in self._stale
            if record is not None and not stale:
                self._records.move_to_end(did)
                return record
            if record is None and self._unknown.get(did, 0.0) > time.monotonic():
                return DeviceRecord("unknown", ())
        try:
            fresh = self._fetch(did)
        except Problem:
            if record is None:
                raise
            return record  # the chain is unreachable: the last known record serves
        with self._lock:
            self._stale.discard(did)
        record = fresh
        with self._lock:
            if record.status == "unknown":
                self._unknown[did] = time.monotonic() + UNKNOWN_TTL
                if len(self._unknown) > CACHE_SIZE:
                    self._unknown.clear()
            else:
                self._records[did] = record
                self._by_id[device_id(did)] = did
                if len(self._records) > CACHE_SIZE:
                    evicted, _ = self._records.popitem(last=False)
                    self._by_id.pop(device_id(evicted), None)
                    self._stale.discard(evicted)
        return record

    def _fetch(self, did: str) -> DeviceRecord:
        try:
            info = self._registry.device(did)
            keys = []
            for i in range(info["keys"]):
                alg, raw, from_seq, _ = self._registry.key_record(did, i)
                keys.append((from_seq, key_from_chain(alg, raw)))
        except ChainError as exc:
            raise Problem("chain-unavailable", f"registry unavailable: {exc}") from None
        return DeviceRecord(info["status"], tuple(keys))

    def refresh(self) -> None:
        """Forget what the Registry's new events changed (call periodically)."""
        latest = self._registry.current_block()
        if latest < self._next_block:
            return
        events = self._registry.device_events(self._next_block, latest)
        with self._lock:
            self._next_block = latest + 1  # each block's events are read once
            for _, id_, event in events:
                did = self._by_id.get(id_)
                if event == "DeviceRegistered":
                    self._unknown.clear()  # it may be one we were told is unknown
                elif did is not None:
                    self._stale.add(did)  # a rotation or revocation: fetch it again
