"""Hypothesis strategies shared by the aggregate tests: int256-scale values and
decision trees over them."""

from __future__ import annotations

from hypothesis import strategies as st

SMALL = st.integers(-(10**30), 10**30)


@st.composite
def trees(draw: st.DrawFn) -> tuple[list[tuple[int, int, int]], list[int]]:
    count = draw(st.integers(1, 15))
    leaves = draw(st.lists(SMALL, min_size=1, max_size=16))

    def child(node: int) -> int:
        later = list(range(node + 1, count))
        choices = later + [-(k + 1) for k in range(len(leaves))]
        return draw(st.sampled_from(choices))

    nodes = [(draw(SMALL), child(n), child(n)) for n in range(count)]
    return nodes, leaves
