"""The per-reading models: each kind computes what its definition says, on any
int256 input, and a malformed model is refused by name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.aggregate.strategies import SMALL, trees
from trustmesh.aggregate import ONE, Kind, Model
from trustmesh.errors import InvalidAggregate


@settings(max_examples=200, deadline=None)
@given(SMALL, SMALL, SMALL, st.integers(0, 200))
def test_linear_and_logistic_are_floored_fixed_point(
    value: int, weight: int, bias: int, shift: int
) -> None:
    z = (weight * value + bias) // 2**shift  # floor division: the arithmetic shift
    assert Model.linear(weight, bias, shift).apply(value) == z
    logistic = Model.logistic(weight, bias, shift).apply(value)
    assert logistic == min(max(ONE // 2 + z // 4, 0), ONE)
    assert 0 <= logistic <= ONE


@settings(max_examples=200, deadline=None)
@given(SMALL, SMALL)
def test_threshold_counts_what_reaches_the_limit(value: int, limit: int) -> None:
    assert Model.threshold(limit).apply(value) == int(value >= limit)
    assert Model.identity().apply(value) == value


def _reference_tree(nodes: list[tuple[int, int, int]], leaves: list[int], value: int) -> int:
    """The tree walked recursively: an independent reading of its definition."""

    def walk(child: int) -> int:
        if child < 0:
            return leaves[-child - 1]
        threshold, left, right = nodes[child]
        return walk(left if value < threshold else right)

    return walk(0)


@settings(max_examples=200, deadline=None)
@given(trees(), SMALL)
def test_a_tree_is_walked_as_defined(tree: tuple[list[tuple[int, int, int]], list[int]],
                                     value: int) -> None:  # fmt: skip
    nodes, leaves = tree
    assert Model.tree(nodes, leaves).apply(value) == _reference_tree(nodes, leaves, value)


def test_the_hash_commits_the_kind_and_every_parameter() -> None:
    models = [Model.identity(), Model.threshold(35), Model.threshold(36),
              Model.linear(3, 4, 5), Model.logistic(3, 4, 5), Model.linear(3, 4, 6),
              Model.tree([(10, -1, -2)], [0, 1]), Model.tree([(10, -2, -1)], [0, 1])]  # fmt: skip
    assert len({model.hash for model in models}) == len(models)
    assert Model.threshold(35).hash == Model(Kind.THRESHOLD, (35,)).hash


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Model(Kind.THRESHOLD, ()), "takes 1 parameters"),
        (lambda: Model(Kind.LINEAR, (1, 2, 300)), "shift"),
        (lambda: Model(Kind.LINEAR, (1, 2, -1)), "shift"),
        (lambda: Model(Kind.THRESHOLD, (1 << 255,)), "int256"),
        (lambda: Model(Kind.THRESHOLD, (1.5,)), "not an integer"),  # type: ignore[arg-type]
        (lambda: Model(7, ()), "unknown model kind"),  # type: ignore[arg-type]
        (lambda: Model.tree([], [1]), "1 to 15 nodes"),
        (lambda: Model.tree([(0, 0, -1)], [1]), "not a later node"),  # a loop
        (lambda: Model.tree([(0, 1, -1)], [1]), "not a later node"),  # beyond the nodes
        (lambda: Model.tree([(0, -1, -3)], [1, 2]), "names no leaf"),
        (lambda: Model(Kind.TREE, (1, 0, -1, -1)), "at least one leaf"),
    ],
)
def test_malformed_models_are_refused_by_name(make: object, message: str) -> None:
    with pytest.raises(InvalidAggregate, match=message):
        make()  # type: ignore[operator]


def test_an_overflow_is_refused_not_wrapped() -> None:
    with pytest.raises(InvalidAggregate, match="int256"):
        Model.linear(1 << 200, 0, 0).apply(1 << 100)
