"""Stake-anchored EigenTrust (Kamvar et al., 2003) over the witness graph, in
integers, with every step's values kept (each is committed, so that one wrong
value can be proven from its in-neighbours' values one step earlier).

Pre-trust is shared out in proportion to unslashed stake weighted by its age,
so identities without stake start with nothing and gain only what staked
subjects pass them: a swarm of unstaked Sybils vouching for one another stays
at zero. A witness passes its trust to the subjects it attests to agree with,
in proportion to its attestations of each; every step also returns a fixed share
(teleport) to pre-trust. One step, for subject j::

    t'[j] = ((den - num) * sum(t[i] * w[i][j] // W[i] for i in in(j)) + num * p[j]) // den

where ``W[i]`` is i's attestations in all (over the edges kept), and in(j) at most
``params.in_degree_cap`` attesters: those with the most pre-trust, then the most
attestations, then the lowest id. An edge is kept only if it is mutual (j also
vouches for i in the epoch): neighbours hear each other, and a clique that takes
its honest neighbours' vouching without returning any siphons no trust. A witness
with no kept edge passes nothing (the total shrinks rather than needing a global
sum a one-step proof cannot check).

Two implementations give identical integers: :func:`iterate_reference`, plain
Python that reads like the formula, and :func:`iterate_numpy`, vectorised.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trustmesh.reputation.evidence import Stake, Verdicts
from trustmesh.reputation.params import TRUST_MASS, Params

__all__ = [
    "WitnessGraph", "iterate_edges", "iterate_numpy", "iterate_reference", "pretrust",
]  # fmt: skip

Ints = npt.NDArray[np.int64]


def pretrust(subjects: Sequence[bytes], stakes: Iterable[Stake], params: Params) -> list[int]:
    """Each subject's share of TRUST_MASS: its stake times min(age + 1, full) / full,
    none if slashed (rounded down; all zero when nobody has stake)."""
    weight = dict.fromkeys(subjects, 0)
    for stake in stakes:
        if stake.subject in weight and not stake.slashed:
            age = min(stake.age + 1, params.stake_age_full)
            weight[stake.subject] = stake.amount * age // params.stake_age_full
    total = sum(weight.values())
    if total == 0:
        return [0] * len(subjects)
    return [weight[subject] * TRUST_MASS // total for subject in subjects]


@dataclass(frozen=True)
class WitnessGraph:
    """Attestations as a graph over ``subjects`` (by index in that sorted list):
    ``sources[j]``/``weights[j]`` the kept attesters of j (by index, ascending) and
    their attestation counts; ``out_weight[i]`` all of i's kept attestations."""

    sources: list[list[int]]
    weights: list[list[int]]
    out_weight: list[int]

    @classmethod
    def build(cls, verdicts: Verdicts, pre: Sequence[int], params: Params) -> WitnessGraph:
        """The graph of ``verdicts`` (:func:`~trustmesh.reputation.evidence.tally_verdicts`)
        over the ``len(pre)`` subjects."""
        incoming: list[list[tuple[int, int]]] = [[] for _ in pre]
        for (i, j, agrees), count in verdicts.items():
            # witnessing is mutual: a subject that vouches for none of its own gets none
            if agrees and (j, i, True) in verdicts:
                incoming[j].append((i, count))
        sources: list[list[int]] = []
        weights: list[list[int]] = []
        out_weight = [0] * len(pre)
        cap = params.in_degree_cap
        for edges in incoming:
            kept = edges
            if len(kept) > cap:
                kept = sorted(kept, key=lambda e: (-pre[e[0]], -e[1], e[0]))[:cap]
            kept.sort()
            sources.append([i for i, _ in kept])
            weights.append([w for _, w in kept])
            for i, w in kept:
                out_weight[i] += w
        return cls(sources, weights, out_weight)

    @property
    def edge_count(self) -> int:
        return sum(map(len, self.sources))


def step_value(
    pre_j: int,
    sources: Sequence[int],
    weights: Sequence[int],
    previous: Sequence[int],
    out_weight: Sequence[int],
    params: Params,
) -> int:
    """t'[j] from its attesters' values one step earlier: what a one-step proof checks."""
    inflow = sum(previous[i] * w // out_weight[i] for i, w in zip(sources, weights, strict=True))
    num, den = params.teleport_num, params.teleport_den
    return ((den - num) * inflow + num * pre_j) // den


def iterate_reference(pre: Sequence[int], graph: WitnessGraph, params: Params) -> list[list[int]]:
    """Every step's trust vector, t_0 = pre-trust through t_steps (plain Python)."""
    steps = [list(pre)]
    for _ in range(params.steps):
        previous, out = steps[-1], graph.out_weight
        steps.append(
            [
                step_value(pre[j], graph.sources[j], graph.weights[j], previous, out, params)
                for j in range(len(pre))
            ]
        )
    return steps


def iterate_numpy(pre: Sequence[int], graph: WitnessGraph, params: Params) -> list[list[int]]:
    """:func:`iterate_reference`, vectorised (:func:`iterate_edges`): the same integers."""
    n = len(pre)
    counts = np.fromiter(map(len, graph.sources), dtype=np.int64, count=n)
    dst = np.repeat(np.arange(n, dtype=np.int64), counts)
    src = np.fromiter((i for row in graph.sources for i in row), dtype=np.int64, count=len(dst))
    w = np.fromiter((x for row in graph.weights for x in row), dtype=np.int64, count=len(dst))
    out = np.asarray(graph.out_weight, dtype=np.int64)
    steps: list[list[int]] = iterate_edges(
        np.asarray(pre, dtype=np.int64), src, dst, w, out, params
    ).tolist()
    return steps


def iterate_edges(
    pre: Ints, src: Ints, dst: Ints, w: Ints, out: Ints, params: Params, threads: int | None = None
) -> npt.NDArray[np.int64]:
    """Every step's trust vector (one row a step) over the edges ``src -> dst`` with
    weights ``w``, sorted by ``dst``. int64 holds every intermediate: a value is at
    most TRUST_MASS = 10^15 (a step passes on at most what it holds), a weight at
    most ``edge_cap`` and the teleport's denominator at most 9,000
    (:class:`~trustmesh.reputation.params.Params` checks both). Large graphs are
    split by ``dst`` among ``threads`` (numpy lets go of the GIL as it computes;
    by default one a core, up to two)."""
    n = len(pre)
    num, den = params.teleport_num, params.teleport_den
    if threads is None:
        threads = min(2, os.cpu_count() or 1) if len(dst) >= THREADED_EDGES else 1
    parts = [_Part(src[cut], dst[cut], w[cut], out) for cut in _cuts(dst, threads)]
    steps = np.empty((params.steps + 1, n), dtype=np.int64)
    steps[0] = pre
    with ThreadPoolExecutor(len(parts)) as pool:
        for k in range(params.steps):
            inflow = np.zeros(n, dtype=np.int64)
            list(pool.map(lambda part, t=steps[k], into=inflow: part.flow(t, into), parts))
            steps[k + 1] = ((den - num) * inflow + num * pre) // den
    return steps


THREADED_EDGES = 1 << 20  # fewer edges than this are iterated in one thread


class _Part:
    """Edges into a range of subjects: what one thread passes on each step."""

    def __init__(self, src: Ints, dst: Ints, w: Ints, out: Ints) -> None:
        self.src, self.w, self.out_src = src, w, out[src]
        self.starts = np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]]) if len(dst) else dst
        self.targets = dst[self.starts]

    def flow(self, t: Ints, into: Ints) -> None:
        """Add what this part's edges pass on from ``t`` into ``into``."""
        if len(self.src):
            into[self.targets] = np.add.reduceat(t[self.src] * self.w // self.out_src, self.starts)


def _cuts(dst: Ints, parts: int) -> list[slice]:
    """``dst`` (sorted) cut into ``parts`` slices of about equal size, never
    splitting one target's edges."""
    if not len(dst):
        return [slice(0, 0)]
    bounds = [0]
    for k in range(1, parts):
        bounds.append(max(bounds[-1], int(np.searchsorted(dst, dst[len(dst) * k // parts]))))
    bounds.append(len(dst))
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]
