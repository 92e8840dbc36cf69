"""The simulation's neighbour search finds exactly the pairs a brute-force scan does."""

from __future__ import annotations

import doctest
import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trustmesh.sim import neighbours
from trustmesh.sim.neighbours import pairs_within

coordinate = st.floats(min_value=-20, max_value=40, allow_nan=False, allow_infinity=False)
points = st.lists(st.tuples(coordinate, coordinate), max_size=40)


@settings(max_examples=200, deadline=None)
@example(a=[(1.0, 0.0)], b=[(-1.628950176360715e-289, 0.0)], radius=1.0)  # (found by it)
@given(points, points, st.sampled_from([0.5, 1.0, 1.5, 2.5, 3.0]))
def test_every_pair_within_the_radius_and_no_other(
    a: list[tuple[float, float]], b: list[tuple[float, float]], radius: float
) -> None:
    found_i, found_j = pairs_within(
        np.array(a, dtype=np.float64).reshape(-1, 2),
        np.array(b, dtype=np.float64).reshape(-1, 2),
        radius,
    )
    found = sorted(zip(found_i.tolist(), found_j.tolist(), strict=True))
    expected = [
        (i, j)
        for i, p in enumerate(a)
        for j, q in enumerate(b)
        if math.hypot(p[0] - q[0], p[1] - q[1]) <= radius
    ]
    assert found == expected


def test_the_docstring_example_runs() -> None:
    result = doctest.testmod(neighbours)
    assert result.failed == 0 and result.attempted > 0
