"""Queries: what matches, what the result is, what the hash binds, what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmesh.aggregate.model import Model
from trustmesh.aggregate.query import Query, Reduction
from trustmesh.aggregate.tree import Node
from trustmesh.errors import InvalidAggregate
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.reading import parse_reading, sign_reading


def _query(devices: frozenset[str], **changes: object) -> Query:
    fields: dict[str, object] = {"devices": devices, "logs": frozenset(["log.example"]),
                                 "sensor": "temp", "start": 1_000,
                                 "end": 2_000, "model": Model.identity(),
                                 "reduction": Reduction.MEAN}  # fmt: skip
    return Query(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_reading_matches_by_device_sensor_window_and_integer_value() -> None:
    device, other = SoftwareSigner.generate(), SoftwareSigner.generate()
    query = _query(frozenset([did_from_key(device.public_key)]))

    def reading(source: SoftwareSigner, sensor: str, value: int | float, ts: int) -> bool:
        entry = sign_reading(source, seq=1, ts=ts, sensor=sensor, value=value)
        return query.matches(parse_reading(entry))

    assert reading(device, "temp", 21, 1_000)
    assert not reading(device, "temp", 21, 2_000)  # the window's end is excluded
    assert not reading(device, "temp", 21, 999)
    assert not reading(device, "humidity", 21, 1_500)
    assert not reading(device, "temp", 21.5, 1_500)  # integer models take integers
    assert not reading(other, "temp", 21, 1_500)
    assert reading(device, "temp", -(1 << 64), 1_500)  # CBOR's whole integer range, no more
    assert not reading(device, "temp", 1 << 64, 1_500)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10**6), st.integers(-(10**18), 10**18), st.integers(-5, 5),
       st.integers(-5, 5))  # fmt: skip
def test_results_follow_from_the_root_totals(count: int, total: int, low: int, high: int) -> None:
    root = Node(b"\x00" * 32, count, total, low, high)
    devices = frozenset([did_from_key(SoftwareSigner.generate().public_key)])
    results = {r: _query(devices, reduction=r).result(root) for r in Reduction}
    assert results[Reduction.COUNT] == count and results[Reduction.SUM] == total
    assert (results[Reduction.MIN], results[Reduction.MAX]) == (low, high)
    mean = results[Reduction.MEAN]  # truncated toward zero, as the EVM divides
    assert abs(mean) == abs(total) // count and (mean == 0 or (mean > 0) == (total > 0))


def test_the_hash_binds_every_part_of_the_query() -> None:
    a, b = (did_from_key(SoftwareSigner.generate().public_key) for _ in range(2))
    base = _query(frozenset([a]))
    variants = [
        base, _query(frozenset([a, b])), _query(frozenset([a]), sensor="hum"),
        _query(frozenset([a]), start=999), _query(frozenset([a]), end=2_001),
        _query(frozenset([a]), model=Model.threshold(3)),
        _query(frozenset([a]), reduction=Reduction.SUM),
        _query(frozenset([a]), logs=frozenset(["log.example", "other.example"])),
    ]  # fmt: skip
    assert len({q.hash for q in variants}) == len(variants)
    assert _query(frozenset([b, a])).hash == _query(frozenset([a, b])).hash


_ED25519 = did_from_key(SoftwareSigner.generate(Alg.EDDSA).public_key)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"devices": frozenset()}, "1 to 4096 devices"),
        ({"devices": frozenset(["did:key:nope"])}, "not a device"),
        ({"sensor": ""}, "sensor"),
        ({"sensor": "x" * 65}, "sensor"),
        ({"start": 5, "end": 5}, "window"),
        ({"start": -1}, "window"),
        ({"reduction": 9}, "unknown reduction"),
        ({"logs": frozenset()}, "1 to 16 logs"),
        ({"devices": frozenset([_ED25519])}, "not a P-256 device"),
    ],
)
def test_malformed_queries_are_refused_by_name(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "devices": frozenset([did_from_key(SoftwareSigner.generate().public_key)]),
        **changes,
    }
    with pytest.raises(InvalidAggregate, match=message):
        _query(**fields)  # type: ignore[arg-type]
