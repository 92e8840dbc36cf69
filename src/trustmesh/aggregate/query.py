"""What an aggregate is over, and what its result is (pure).

A query names a set of devices, a sensor and a time window [start, end) in
milliseconds, the model f applied to each reading's value, and a reduction of
the f values: count, sum, mean (the sum over the count, truncated toward zero as
the EVM divides), min or max; "count above a limit" is the sum of a threshold
model. A reading matches when its device is in the set, its sensor is the
query's, its timestamp is in the window and its value is an integer (the
models are integer ones; a float or text reading of the sensor does not match).

The query is committed by ``keccak256(abi.encode(bytes32[] devices, bytes sensor,
uint256 start, uint256 end, bytes32 model, uint8 reduction))``, the devices by
id in ascending order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_abi.abi import encode

from trustmesh.aggregate.model import Model
from trustmesh.aggregate.tree import Node
from trustmesh.errors import InvalidAggregate, InvalidDid
from trustmesh.identity import key_from_did
from trustmesh.reading import Reading
from trustmesh.reputation.merkle import keccak256
from trustmesh.reputation.witness import subject_id

__all__ = ["Query", "Reduction"]

MAX_DEVICES = 4096
MAX_SENSOR = 64


class Reduction(IntEnum):
    COUNT = 0
    SUM = 1
    MEAN = 2
    MIN = 3
    MAX = 4


@dataclass(frozen=True)
class Query:
    devices: frozenset[str]  # DIDs
    sensor: str
    start: int  # ms, included
    end: int  # ms, excluded
    model: Model
    reduction: Reduction

    def __post_init__(self) -> None:
        if not 0 < len(self.devices) <= MAX_DEVICES:
            raise InvalidAggregate(f"a query names 1 to {MAX_DEVICES} devices")
        for did in self.devices:
            try:
                key_from_did(did)
            except InvalidDid as exc:
                raise InvalidAggregate(f"not a device: {exc}") from None
        if not 0 < len(self.sensor.encode()) <= MAX_SENSOR:
            raise InvalidAggregate(f"a sensor is 1 to {MAX_SENSOR} bytes")
        if not 0 <= self.start < self.end < 1 << 64:
            raise InvalidAggregate("a window is 0 <= start < end < 2^64 ms")
        if not isinstance(self.reduction, Reduction):
            raise InvalidAggregate(f"unknown reduction {self.reduction!r}")

    @property
    def hash(self) -> bytes:
        ids = sorted(subject_id(did) for did in self.devices)
        return keccak256(
            encode(
                ["bytes32[]", "bytes", "uint256", "uint256", "bytes32", "uint8"],
                [ids, self.sensor.encode(), self.start, self.end, self.model.hash,
                 int(self.reduction)],
            )
        )  # fmt: skip

    def matches(self, reading: Reading) -> bool:
        value = reading.value
        return (
            reading.did in self.devices
            and reading.sensor == self.sensor
            and self.start <= reading.ts < self.end
            and type(value) is int
        )

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
