"""An aggregate claim: a query, the snapshot of its logs it reads, the tree over
the matching readings, and the result (pure).

:func:`build` makes the honest claim from logged readings (each already checked
against its device's key, as the Disputes contract checks it). The claim's id is
the Aggregates contract's: ``keccak256(abi.encode(query_hash, sizes, root))``.
A claim's *data* (query, sizes, leaves and any patches) is what a claimer
publishes, so that anyone can rebuild its tree, check it, and prove it wrong;
:func:`encode` and :func:`decode` give it one CBOR form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from eth_abi.abi import encode as abi_encode

from trustmesh import _cbor
from trustmesh.aggregate.model import Kind, Model
from trustmesh.aggregate.query import CBOR_INT_MAX, CBOR_INT_MIN, MAX_SENSOR, Query, Reduction
from trustmesh.aggregate.tree import Leaf, SumTree, Totals
from trustmesh.errors import InvalidAggregate, InvalidReading
from trustmesh.identity import Alg, PublicKey
from trustmesh.log.merkle import leaf_hash
from trustmesh.reading import Reading, parse_reading, verify_reading
from trustmesh.reputation.merkle import keccak256
from trustmesh.reputation.witness import subject_id

__all__ = ["Claim", "KeyFor", "LoggedReading", "build", "decode", "encode", "read_as_chain"]

MAX_DATA = 1 << 30


@dataclass(frozen=True)
class LoggedReading:
    """A reading, where it is logged: the log's origin id and its index there."""

    origin: bytes
    index: int
    reading: Reading


@dataclass
class Claim:
    query: Query
    sizes: tuple[int, ...]  # the snapshot: one anchored size per log, in query.log_ids order
    tree: SumTree
    result: int

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.query.log_ids):
            raise InvalidAggregate("a claim has one size per log of its query")

    @property
    def root(self) -> bytes:
        return self.tree.root.hash

    @property
    def count(self) -> int:
        return self.tree.root.count

    @property
    def id(self) -> bytes:
        return keccak256(abi_encode(["bytes32", "uint256[]", "bytes32"],
                                    [self.query.hash, list(self.sizes), self.root]))  # fmt: skip

    def size_of(self, origin: bytes) -> int | None:
        """The snapshot's size of log ``origin``, or None if the query reads no such log."""
        try:
            return self.sizes[self.query.log_ids.index(origin)]
        except ValueError:
            return None

    def to_abi(self) -> tuple[Any, list[int], bytes]:
        """(query, sizes, root): what every call about the claim starts with."""
        return self.query.to_abi(), list(self.sizes), self.root


def build(query: Query, sizes: Mapping[bytes, int], logged: Iterable[LoggedReading]) -> Claim:
    """The honest claim over ``logged`` (readings already verified): those in the
    snapshot ``sizes`` (origin id → size) that match the query, one per (device,
    seq), the first logged (lowest origin, then index) of any two with one key."""
    if set(sizes) != set(query.log_ids):
        raise InvalidAggregate("the snapshot names other logs than the query")
    chosen: dict[tuple[bytes, int], tuple[bytes, int, Leaf]] = {}
    for item in logged:
        if item.index >= sizes.get(item.origin, 0) or not query.matches(item.reading):
            continue
        reading = item.reading
        value = reading.value
        assert isinstance(value, int)  # matches() holds it so
        leaf = Leaf(item.origin, item.index, leaf_hash(reading.entry), subject_id(reading.did),
                    reading.seq, reading.ts, value, query.model.apply(value))  # fmt: skip
        kept = chosen.get(leaf.key)
        if kept is None or (item.origin, item.index) < kept[:2]:
            chosen[leaf.key] = (item.origin, item.index, leaf)
    if not chosen:
        raise InvalidAggregate("no reading in the snapshot matches the query")
    leaves = [chosen[key][2] for key in sorted(chosen)]
    tree = SumTree(leaves)
    return Claim(query, tuple(sizes[o] for o in query.log_ids), tree, query.result(tree.root))


# --- the published form -------------------------------------------------------------


def encode(claim: Claim) -> bytes:
    """The claim's data as CBOR: what a claimer publishes at its claim's URI."""
    q = claim.query
    return cbor2.dumps({
        "query": {"devices": sorted(q.devices), "logs": sorted(q.logs), "sensor": q.sensor,
                  "start": q.start, "end": q.end, "reduction": q.reduction.name.lower(),
                  "model": {"kind": q.model.kind.name.lower(), "params": list(q.model.params)}},
        "sizes": list(claim.sizes),
        "result": claim.result,
        "leaves": [[leaf.origin, leaf.index, leaf.leaf_hash, leaf.device, leaf.seq, leaf.ts,
                    leaf.value, leaf.fx] for leaf in claim.tree.leaves],
        "patches": [[level, position, *totals]
                    for (level, position), totals in sorted(claim.tree.patches.items())],
    })  # fmt: skip


def decode(data: bytes) -> Claim:
    """A published claim's data; InvalidAggregate if it is not one. The leaves are
    taken as they are (out of order, repeated): what they commit is for the
    checker to judge."""
    if len(data) > MAX_DATA:
        raise InvalidAggregate("a claim's data is at most 1 GiB")
    try:
        doc = _cbor.loads(data)
        q = doc["query"]
        model = Model(Kind[str(q["model"]["kind"]).upper()], tuple(q["model"]["params"]))
        query = Query(frozenset(q["devices"]), frozenset(q["logs"]), q["sensor"], q["start"],
                      q["end"], model, Reduction[str(q["reduction"]).upper()])  # fmt: skip
        leaves = [Leaf(*_leaf_fields(fields)) for fields in doc["leaves"]]
        patches: dict[tuple[int, int], Totals] = {}
        for level, position, count, total, low, high in doc["patches"]:
            patches[(_int(level), _int(position))] = (_int(count), _int(total), _int(low),
                                                      _int(high))  # fmt: skip
        tree = SumTree(leaves, patches, ordered=False)
        sizes = tuple(_int(size) for size in doc["sizes"])
        if not all(0 < size < 1 << 64 for size in sizes):
            raise InvalidAggregate("a snapshot's sizes are 1 to 2^64 - 1")
        result = _int(doc["result"])
        if not -(1 << 255) <= result < 1 << 255:
            raise InvalidAggregate("a result is an int256")
        return Claim(query, sizes, tree, result)
    except InvalidAggregate:
        raise
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError, AttributeError,
            IndexError, OverflowError) as exc:  # fmt: skip
        raise InvalidAggregate(f"not a claim's data: {exc}") from None


def _int(value: Any) -> int:
    if type(value) is not int:
        raise InvalidAggregate(f"{value!r} is not an integer")
    return value


def _leaf_fields(fields: list[Any]) -> tuple[Any, ...]:
    origin, index, hashed, device, seq, ts, value, fx = fields
    for item in (origin, hashed, device):
        if not isinstance(item, bytes) or len(item) != 32:
            raise InvalidAggregate("a leaf's origin, leaf hash and device are 32 bytes")
    for item in (index, seq, ts):
        if _int(item) < 0:
            raise InvalidAggregate("a leaf's index, seq and ts are unsigned")
    return origin, index, hashed, device, seq, ts, _int(value), _int(fx)


KeyFor = Callable[[str, int], PublicKey | None]
"""(DID, seq) → the key the Registry holds for the device at that seq, if any."""


def read_as_chain(entry: bytes, key_for: KeyFor) -> Reading | None:
    """The reading in ``entry`` if the Disputes contract reads it (``signed_reading``):
    ES256, signed by the key the Registry holds for its device and seq, an integer
    value in CBOR's range, a sensor of at most 64 bytes; else None."""
    try:
        reading = parse_reading(entry)
    except InvalidReading:
        return None
    if reading.alg is not Alg.ES256:
        return None
    key = key_for(reading.did, reading.seq)
    if key is None or key.alg is not Alg.ES256:
        return None
    try:
        verify_reading(entry, key)
    except InvalidReading:
        return None
    value = reading.value
    if type(value) is not int or not CBOR_INT_MIN <= value <= CBOR_INT_MAX:
        return None
    return reading if len(reading.sensor.encode()) <= MAX_SENSOR else None
