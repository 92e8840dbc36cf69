"""The reputation leaves' ABI encoder gives eth_abi's bytes for every shape it takes."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as reference
from hypothesis import given
from hypothesis import strategies as st

from tests.reputation.strategies import ref, subject
from trustmesh.reputation import Attestation, EpochInputs, Evidence, Kind, Stake, compute_epoch
from trustmesh.reputation._abi import encode
from trustmesh.reputation.merkle import leaf_hash
from trustmesh.reputation.table import META_TYPES, STATE_TYPES

uint = st.integers(min_value=0, max_value=(1 << 256) - 1)
word = st.binary(min_size=32, max_size=32)
items = st.one_of(
    uint.map(lambda v: ("uint256", v)),
    word.map(lambda v: ("bytes32", v)),
    st.lists(uint, max_size=5).map(lambda v: ("uint256[]", v)),
    st.lists(word, min_size=1, max_size=5).map(lambda v: ("bytes32[]", v)),
)


@given(st.lists(items, max_size=12))
def test_same_bytes_as_eth_abi(typed: list[tuple[str, Any]]) -> None:
    types, values = [t for t, _ in typed], [v for _, v in typed]
    assert encode(values) == reference(types, values)


@pytest.mark.parametrize(
    "bad", [[-1], [1 << 256], [b"short"], [[b"x" * 31]], ["text"], [[1, -1]], [[1 << 256]]]
)
def test_values_outside_the_shapes_are_refused(bad: list[Any]) -> None:
    with pytest.raises(ValueError, match="uint256|bytes32"):
        encode(bad)


def test_leaves_encode_as_their_declared_abi_types() -> None:
    a, b = subject(0), subject(1)
    table = compute_epoch(
        EpochInputs(
            3,
            [Evidence(a, Kind.READINGS_LOGGED, ref(0), 7)],
            [Attestation(a, b, ref(1)), Attestation(b, a, ref(2))],
            [Stake(a, 10**18, 5)],
        )
    )
    for row in table.rows.values():
        assert row.state_leaf(3) == leaf_hash(reference(STATE_TYPES, row.state_values(3)))
        assert row.score_leaf(3) == leaf_hash(
            reference(["bytes32", "uint256", "uint256"], [row.subject, 3, row.score])
        )
    assert table.meta_leaf == leaf_hash(reference(META_TYPES, table.meta_values))
