"""What an aggregate is over, and what its result is (pure).

A query names a set of devices (P-256 did:keys: their readings are provable
on-chain), the logs read (by origin), a sensor and a time window [start, end) in
milliseconds, the model f applied to each reading's value, and a reduction of
the f values: count, sum, mean (the sum over the count, truncated toward zero as
the EVM divides), min or max; "count above a limit" is the sum of a threshold
model. A reading matches when its device is in the set, its sensor is the
query's, its timestamp is in the window, its value is a CBOR integer (major type
0 or 1, as the contract reads it), f is defined on it, and its entry is at most
512 bytes (a contract checks any such reading in one call, at ~1M gas at most;
an ordinary reading is under 200 bytes).

The devices are committed as a Merkle tree (sorted pairs, as
:mod:`trustmesh.reputation.merkle` and snekmate make them) over
``abi.encode(uint256 position, bytes32 id)``, ids ascending, so that a contract
checks that a device is in the set, or is not (the two neighbours of where it
would be), in O(log n). The query is committed by::

    keccak256(abi.encode(bytes32 devices_root, uint256 device_count,
                         bytes32[] logs, bytes sensor, uint256 start, uint256 end,
                         bytes32 model, uint8 reduction))

with ``logs`` the origin ids (SHA-256 of each origin) ascending.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

from eth_abi.abi import encode

from trustmesh.aggregate.model import Model
from trustmesh.aggregate.tree import Node, word
from trustmesh.errors import InvalidAggregate, InvalidDid
from trustmesh.identity import Alg, key_from_did
from trustmesh.reading import Reading
from trustmesh.reputation.merkle import MerkleTree, keccak256, leaf_hash
from trustmesh.reputation.witness import subject_id

__all__ = ["DeviceProof", "Query", "Reduction"]

MAX_DEVICES = 4096
MAX_LOGS = 16
MAX_SENSOR = 64
MAX_ORIGIN = 128
MAX_AGGREGATE_ENTRY = 512  # bytes: longer readings are not aggregated (Aggregates.vy)
CBOR_INT_MIN, CBOR_INT_MAX = -(1 << 64), (1 << 64) - 1


class Reduction(IntEnum):
    COUNT = 0
    SUM = 1
    MEAN = 2
    MIN = 3
    MAX = 4


@dataclass(frozen=True)
class DeviceProof:
    """That device ``device`` is at ``position`` of a query's sorted device list."""

    position: int
    device: bytes
    proof: tuple[bytes, ...]

    def to_abi(self) -> tuple[int, bytes, list[bytes]]:
        return self.position, self.device, list(self.proof)


def _origin_id(origin: str) -> bytes:
    return hashlib.sha256(origin.encode()).digest()


@dataclass(frozen=True)
class Query:
    devices: frozenset[str]  # DIDs
    logs: frozenset[str]  # origins
    sensor: str
    start: int  # ms, included
    end: int  # ms, excluded
    model: Model
    reduction: Reduction

    def __post_init__(self) -> None:
        if not all(isinstance(x, str) for x in (*self.devices, *self.logs, self.sensor)):
            raise InvalidAggregate("devices, logs and the sensor are text")
        if type(self.start) is not int or type(self.end) is not int:
            raise InvalidAggregate("a window's start and end are integers (ms)")
        if not 0 < len(self.devices) <= MAX_DEVICES:
            raise InvalidAggregate(f"a query names 1 to {MAX_DEVICES} devices")
        for did in self.devices:
            try:
                key = key_from_did(did)
            except InvalidDid as exc:
                raise InvalidAggregate(f"not a device: {exc}") from None
            if key.alg is not Alg.ES256:
                raise InvalidAggregate(
                    f"{did} is not a P-256 device: only ES256 readings are provable on-chain"
                )
        if not 0 < len(self.logs) <= MAX_LOGS:
            raise InvalidAggregate(f"a query reads 1 to {MAX_LOGS} logs")
        if not all(0 < len(origin.encode()) <= MAX_ORIGIN for origin in self.logs):
            raise InvalidAggregate(f"an origin is 1 to {MAX_ORIGIN} bytes")
        if not 0 < len(self.sensor.encode()) <= MAX_SENSOR:
            raise InvalidAggregate(f"a sensor is 1 to {MAX_SENSOR} bytes")
        if not 0 <= self.start < self.end < 1 << 64:
            raise InvalidAggregate("a window is 0 <= start < end < 2^64 ms")
        if not isinstance(self.reduction, Reduction):
            raise InvalidAggregate(f"unknown reduction {self.reduction!r}")

    # --- commitments ----------------------------------------------------------------

    @cached_property
    def device_ids(self) -> list[bytes]:
        """The devices' ids (SHA-256 of each DID), ascending."""
        return sorted(subject_id(did) for did in self.devices)

    @cached_property
    def log_ids(self) -> list[bytes]:
        """The logs' origin ids, ascending."""
        return sorted(_origin_id(origin) for origin in self.logs)

    @cached_property
    def origins(self) -> dict[bytes, str]:
        return {_origin_id(origin): origin for origin in self.logs}

    @cached_property
    def _device_tree(self) -> MerkleTree:
        return MerkleTree([leaf_hash(word(k) + device) for k, device in enumerate(self.device_ids)])

    @property
    def devices_root(self) -> bytes:
        return self._device_tree.root

    def device_proof(self, position: int) -> DeviceProof:
        return DeviceProof(
            position, self.device_ids[position], tuple(self._device_tree.proof(position))
        )

    def device_neighbours(self, device: bytes) -> tuple[DeviceProof | None, DeviceProof | None]:
        """The devices just below and just above ``device`` (not in the set)."""
        at = bisect_left(self.device_ids, device)
        if at < len(self.device_ids) and self.device_ids[at] == device:
            raise InvalidAggregate("the device is in the query")
        below = self.device_proof(at - 1) if at > 0 else None
        above = self.device_proof(at) if at < len(self.device_ids) else None
        return below, above

    def to_abi(self) -> tuple[Any, ...]:
        """The query as the Aggregates contract takes it."""
        return (self.devices_root, len(self.device_ids), self.log_ids, self.sensor.encode(),
                self.start, self.end, self.model.hash, int(self.reduction))  # fmt: skip

    @cached_property
    def hash(self) -> bytes:
        types = ["bytes32", "uint256", "bytes32[]", "bytes", "uint256", "uint256", "bytes32",
                 "uint8"]  # fmt: skip
        return keccak256(encode(types, list(self.to_abi())))

    # --- matching and the result ------------------------------------------------------

    def matches(self, reading: Reading) -> bool:
        value = reading.value
        if not (
            len(reading.entry) <= MAX_AGGREGATE_ENTRY
            and reading.did in self.devices
            and reading.sensor == self.sensor
            and self.start <= reading.ts < self.end
            and type(value) is int
            and CBOR_INT_MIN <= value <= CBOR_INT_MAX
        ):
            return False
        try:
            self.model.apply(value)
        except InvalidAggregate:
            return False  # f is not defined on it: no reading f cannot take
        return True

    def result(self, root: Node) -> int:
        """The reduction of the f values, from the tree's root totals."""
        if self.reduction is Reduction.COUNT:
            return root.count
        if self.reduction is Reduction.SUM:
            return root.sum
        if self.reduction is Reduction.MEAN:
            quotient = abs(root.sum) // root.count
            return quotient if root.sum >= 0 else -quotient
        return root.min if self.reduction is Reduction.MIN else root.max
