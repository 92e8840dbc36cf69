"""Who is near whom, for a simulated population of a hundred thousand identities:
every pair within a radius, found through unit grid cells with numpy (a Python
loop over each identity's surroundings took most of a swarm scenario's time).

>>> import numpy as np
>>> a = np.array([[0.0, 0.0], [5.0, 5.0]])
>>> b = np.array([[0.5, 0.5], [3.0, 0.0], [5.0, 6.0]])
>>> sorted(zip(*(pair.tolist() for pair in pairs_within(a, b, 1.5))))
[(0, 0), (1, 2)]
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["pairs_within"]

Points = npt.NDArray[np.float64]  # (n, 2): x, y
Index = npt.NDArray[np.int64]


def pairs_within(a: Points, b: Points, radius: float) -> tuple[Index, Index]:
    """Every (i, j) with ``a[i]`` and ``b[j]`` at most ``radius`` apart (in no
    particular order)."""
    # |floor(x) - floor(y)| <= floor(|x - y|) + 1: the cells that can hold a point in
    # reach (a distance that rounds down to the radius included)
    reach = math.floor(radius) + 1
    if not len(a) or not len(b):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    low = np.floor(np.minimum(a.min(axis=0), b.min(axis=0))) - reach
    cells_a = (np.floor(a) - low).astype(np.int64)
    cells_b = (np.floor(b) - low).astype(np.int64)
    height = int(max(cells_a[:, 1].max(), cells_b[:, 1].max())) + reach + 1
    key_b = cells_b[:, 0] * height + cells_b[:, 1]
    order = np.argsort(key_b, kind="stable")
    sorted_b, x, y = key_b[order], b[order, 0], b[order, 1]
    found_i, found_j = [], []
    for dx in range(-reach, reach + 1):
        for dy in range(-reach, reach + 1):
            if (max(0, abs(dx) - 1) ** 2 + max(0, abs(dy) - 1) ** 2) > radius**2:
                continue  # (no point of that cell is in reach of any in this one)
            key = (cells_a[:, 0] + dx) * height + cells_a[:, 1] + dy
            first = np.searchsorted(sorted_b, key, side="left")
            count = np.searchsorted(sorted_b, key, side="right") - first
            i = np.repeat(np.arange(len(a)), count)
            at = np.arange(len(i)) - np.repeat(np.cumsum(count) - count, count)
            at += np.repeat(first, count)
            close = np.hypot(a[i, 0] - x[at], a[i, 1] - y[at]) <= radius
            found_i.append(i[close])
            found_j.append(order[at[close]])
    return np.concatenate(found_i), np.concatenate(found_j)
