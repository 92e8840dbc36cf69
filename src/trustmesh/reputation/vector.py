"""The vectorised engine: an epoch's columns (:class:`~trustmesh.reputation.columns.EpochColumns`)
scored with numpy, giving the reference engine's integers
(:func:`~trustmesh.reputation.table.score_epoch` with ``engine="reference"``, which
reads like the model; tests hold the two equal on random epochs).

Every step is the reference's, on arrays: verdicts are the distinct witness
readings per (witness, subject, verdict), found by one sort (by pair, so that a
pair's two directions lie side by side: the witness graph's mutual edges are
neighbours in it); the in-degree cap is a sort of only the subjects over it;
only the verdicts whose other side said something are compared. Many
attestations are tallied in two threads, and a large graph iterated in two
(numpy lets go of the GIL). Integers stay exact: a column is int64 where
its bounds allow (checked, not assumed), and Python integers in an object array
where they do not (a stake of 10^20 wei, a subject with 2^40 bad events).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from trustmesh.errors import InvalidEvidence
from trustmesh.reputation.columns import EpochColumns, Exact, Ints
from trustmesh.reputation.evidence import GOOD, Kind
from trustmesh.reputation.params import ONE, TRUST_MASS, UNIT, Params
from trustmesh.reputation.trust import iterate_edges

__all__ = ["Graph", "Scored", "Tally", "build_graph", "score_columns", "score_graph", "tally"]

SAFE = 1 << 62  # int64 arithmetic below this bound cannot overflow in one more addition
FLOAT_EXACT = 1 << 53  # a float64 sum of integers is exact below this
THREADED = 1 << 20  # attestations from which the tally is split between two threads


@dataclass(frozen=True)
class Tally:
    """An epoch's pre-trust, witness verdicts and evidence, subjects in id order.
    The evidence items, in (subject, kind, ref, count) order, are ``ev_order``;
    ``ev_start[j]`` is where j's begin (``ev_start[n]`` their count); ``good``/``bad``
    their units per subject."""

    columns: EpochColumns
    pretrust: Ints
    staked_before: Ints
    verdicts: tuple[Ints, Ints, Ints, Ints]  # witness, subject, agrees, readings
    ev_order: Ints
    ev_start: Ints
    good: Exact
    bad: Exact


@dataclass(frozen=True)
class Graph(Tally):
    """A tally and its witness graph: the kept edges ``src -> dst``, sorted by
    (dst, src); ``edge_start[j]`` is where j's in-edges begin."""

    src: Ints
    dst: Ints
    weight: Ints
    edge_start: Ints
    out_weight: Ints


@dataclass(frozen=True)
class Scored(Graph):
    """An epoch scored: its graph, and every step's trust and each subject's beta
    state and score."""

    trust: Ints  # (steps + 1, n): every step's values
    witnessed: Ints
    disputed: Ints
    contradicted: Ints
    alpha: Exact
    beta: Exact
    beta_score: Ints
    score: Ints


def score_columns(columns: EpochColumns, params: Params) -> Scored:
    """The epoch's scores and everything they were computed from."""
    return score_graph(build_graph(tally(columns, params), params), params)


def tally(columns: EpochColumns, params: Params) -> Tally:
    """The epoch's pre-trust, verdicts and evidence units."""
    pre = _pretrust(columns, params)
    ev_order, ev_start, good, bad = _evidence(columns, params)
    return Tally(
        columns=columns,
        pretrust=pre,
        staked_before=np.cumsum(pre > 0) - (pre > 0),
        verdicts=_verdicts(columns, params.edge_cap),
        ev_order=ev_order,
        ev_start=ev_start,
        good=good,
        bad=bad,
    )


def build_graph(tallied: Tally, params: Params) -> Graph:
    """The witness graph of a tally."""
    if isinstance(tallied, Graph):
        return tallied
    n = len(tallied.columns.subjects)
    src, dst, weight = _graph(n, *tallied.verdicts, tallied.pretrust, params)
    return Graph(
        **_fields(tallied, Tally),
        src=src,
        dst=dst,
        weight=weight,
        edge_start=np.r_[0, np.cumsum(np.bincount(dst, minlength=n))].astype(np.int64),
        out_weight=_sum_by(src, weight, n),
    )


def _fields(value: Tally, kind: type[Tally]) -> dict[str, Any]:
    return {field.name: getattr(value, field.name) for field in fields(kind)}


def score_graph(graph: Graph, params: Params) -> Scored:
    """Every step's trust over ``graph``, then each subject's beta state and score."""
    columns, pre = graph.columns, graph.pretrust
    n = len(columns.subjects)
    trust = iterate_edges(pre, graph.src, graph.dst, graph.weight, graph.out_weight, params)
    last = trust[-1]
    staked = int(np.count_nonzero(pre))
    tau = max(1, TRUST_MASS // max(1, staked))
    scaled = max(1, tau * params.trust_scale_num // params.trust_scale_den)
    heard = max(1, tau * params.witness_scale_num // params.witness_scale_den)
    previous = _beta_score(columns.alpha, columns.beta, params)
    voice = _fraction(last, heard) * previous // ONE
    witnessed, disputed, contradicted = _witness_units(n, *graph.verdicts, voice, params)
    w = params.weights
    good = _add(
        graph.good, _scale(np.minimum(witnessed, params.good_cap * UNIT), w[Kind.WITNESSED], 1)
    )
    bad = _add(graph.bad, _scale(disputed, w[Kind.WITNESS_DISAGREES], 1))
    bad = _add(bad, _scale(contradicted, w[Kind.CONTRADICTED], 1))
    alpha = _add(_scale(columns.alpha, params.forget_num, params.forget_den), good)
    beta = _add(_scale(columns.beta, params.forget_bad_num, params.forget_bad_den), bad)
    beta_score = _beta_score(alpha, beta, params)
    return Scored(
        **_fields(graph, Graph),
        trust=trust,
        witnessed=witnessed,
        disputed=disputed,
        contradicted=contradicted,
        alpha=alpha,
        beta=beta,
        beta_score=beta_score,
        score=beta_score * _fraction(last, scaled) // ONE,
    )


def _pretrust(columns: EpochColumns, params: Params) -> Ints:
    """:func:`~trustmesh.reputation.trust.pretrust`, per subject."""
    age = np.minimum(columns.stake_age + 1, params.stake_age_full)
    stake = columns.stake.astype(object)  # (wei times TRUST_MASS: beyond int64)
    weight = stake * age // params.stake_age_full
    total = int(weight.sum()) if len(weight) else 0
    if total == 0:
        return np.zeros(len(weight), dtype=np.int64)
    shares: Ints = (weight * TRUST_MASS // total).astype(np.int64)
    return shares


def _verdicts(columns: EpochColumns, cap: int) -> tuple[Ints, Ints, Ints, Ints]:
    """:func:`~trustmesh.reputation.evidence.tally_verdicts`: each verdict's witness,
    subject, agreement (0 or 1) and distinct witness readings (at most ``cap``),
    sorted by pair (the lower index, the higher), then direction (the lower
    witnessing first), then agreement: a pair's two directions end up side by side.
    Many attestations are split by pair into two ranges, tallied in two threads."""
    n = len(columns.subjects)
    if 2 * _bits(n) + 2 > 62:
        raise InvalidEvidence("an epoch holds at most 2^30 subjects")
    witness, attested = columns.witness, columns.attested
    low = np.minimum(witness, attested)
    if len(low) < THREADED or (os.cpu_count() or 1) < 2:
        return _tally(n, cap, columns, None, low)
    middle = int(np.median(low[:: max(1, len(low) // 4096)]))  # a sample's median
    below = low < middle
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda part: _tally(n, cap, columns, part, low), (below, ~below)))
    return tuple(np.concatenate(columns) for columns in zip(*parts, strict=True))  # type: ignore[return-value]


def _bits(n: int) -> int:
    """Bits that hold an index below ``n``."""
    return max(1, (n - 1).bit_length())


def _tally(
    n: int, cap: int, columns: EpochColumns, part: npt.NDArray[np.bool_] | None, low: Ints
) -> tuple[Ints, Ints, Ints, Ints]:
    """:func:`_verdicts` of the attestations in ``part`` (None: all), other than of
    oneself. A verdict is one int64 (lower index, higher index, direction,
    agreement, in bits from the top), sorted with its witness reading below it."""
    witness, attested = columns.witness, columns.attested
    agrees, reading = columns.agrees, columns.reading
    keep = witness != attested if part is None else part & (witness != attested)
    if not keep.all():
        witness, attested, agrees, reading, low = (
            c[keep] for c in (witness, attested, agrees, reading, low)
        )
    if not len(witness):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    span = _bits(n)
    key = low << span
    key |= np.maximum(witness, attested)
    key <<= 2
    key |= (witness > attested).astype(np.int64) << 1
    key |= agrees
    bits = int(reading.max()).bit_length()
    if 2 * span + 2 + bits <= 62:  # one sort of (key, reading) in one int64
        key <<= bits
        key |= reading
        key.sort()
        distinct = key[_changes(key)] >> bits
    else:
        order = np.lexsort((reading, key))
        key, reading = key[order], reading[order]
        distinct = key[_changes(key) | _changes(reading)]
    starts = np.flatnonzero(_changes(distinct))
    count = np.minimum(np.diff(starts, append=len(distinct)), cap)
    keys = distinct[starts]
    lower, higher = keys >> (span + 2), keys >> 2 & (1 << span) - 1
    witnesses = np.where(keys & 2, higher, lower)
    return witnesses, lower + higher - witnesses, keys & 1, count


def _changes(values: Ints) -> npt.NDArray[np.bool_]:
    """Where a sorted array's value differs from the one before (the first: True)."""
    changed = np.empty(len(values), dtype=np.bool_)
    changed[:1] = True
    np.not_equal(values[1:], values[:-1], out=changed[1:])
    return changed


def _graph(
    n: int, vi: Ints, vj: Ints, agrees: Ints, count: Ints, pre: Ints, params: Params
) -> tuple[Ints, Ints, Ints]:
    """:meth:`~trustmesh.reputation.trust.WitnessGraph.build`: the mutual agreeing
    edges, at most ``in_degree_cap`` into a subject, sorted by (dst, src)."""
    yes = agrees == 1
    ai, aj, ac = vi[yes], vj[yes], count[yes]
    # agreeing verdicts by pair, the lower witnessing first: a mutual pair is two in a row
    mutual = np.flatnonzero((ai[:-1] == aj[1:]) & (aj[:-1] == ai[1:]))
    low, high = ai[mutual], aj[mutual]
    # edges high -> low, sorted by (low, high): in (dst, src) order already; and
    # edges low -> high, to be sorted by (high, low) and merged in
    down = low * n + high
    up_key = high * n + low
    if len(up_key) and int(up_key.max()) < SAFE >> 14:  # (edge_cap < 2^14: one int64 sort)
        packed = np.sort(up_key << 14 | ac[mutual])
        up_key, up_weight = packed >> 14, packed & (1 << 14) - 1
    else:
        order = np.argsort(up_key, kind="stable")
        up_key, up_weight = up_key[order], ac[mutual][order]
    size = 2 * len(mutual)
    at_down = np.arange(len(down)) + np.searchsorted(up_key, down)
    at_up = np.arange(len(up_key)) + np.searchsorted(down, up_key)
    dst, src, weight = (np.empty(size, dtype=np.int64) for _ in range(3))
    dst[at_down], src[at_down], weight[at_down] = low, high, ac[mutual + 1]
    dst[at_up], src[at_up], weight[at_up] = up_key // n, up_key % n, up_weight
    degree = np.bincount(dst, minlength=n)
    over = degree > params.in_degree_cap
    if over.any():
        chosen = np.flatnonzero(over[dst])
        s, d, w = src[chosen], dst[chosen], weight[chosen]
        order = np.lexsort((s, -w, -pre[s], d))  # most pre-trust, attestations, lowest id
        first = np.r_[0, np.cumsum(degree[over])][:-1]
        rank = np.arange(len(order)) - np.repeat(first, degree[over])
        keep = np.ones(len(dst), dtype=np.bool_)
        keep[chosen[order[rank >= params.in_degree_cap]]] = False
        dst, src, weight = dst[keep], src[keep], weight[keep]
    return src, dst, weight


def _witness_units(
    n: int, vi: Ints, vj: Ints, agrees: Ints, count: Ints, voice: Ints, params: Params
) -> tuple[Ints, Ints, Ints]:
    """:func:`~trustmesh.reputation.beta.witness_units`: standing agreeing and
    disagreeing units per subject, and overruled units per witness. Only a verdict
    whose other side says something about its subject can be overruled: the others
    all stand, and are summed without being compared."""
    units = count * UNIT
    said = units * voice[vi] // ONE  # (at most edge_cap * UNIT: a voice is at most ONE)
    yes = agrees == 1
    if yes.all():
        return _sum_by(vj, said, n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    said_yes, said_no = _sum_by(vj[yes], said[yes], n), _sum_by(vj[~yes], said[~yes], n)
    contested = np.flatnonzero(np.where(yes, (said_no > 0)[vj], (said_yes > 0)[vj]))
    j, agreeing = vj[contested], yes[contested]
    own = np.where(agreeing, said_yes[j], said_no[j])
    other = np.where(agreeing, said_no[j], said_yes[j])
    c_num, c_den = params.consensus_num, params.consensus_den
    if len(other) and int(max(other.max(), own.max())) * max(c_num, c_den) >= SAFE:
        own, other = own.astype(object), other.astype(object)
    lost = contested[other * c_den >= own * c_num]  # (other > 0: the subject is contested)
    out_yes, out_no = lost[yes[lost]], lost[~yes[lost]]
    return (
        said_yes - _sum_by(vj[out_yes], said[out_yes], n),
        said_no - _sum_by(vj[out_no], said[out_no], n),
        _sum_by(vi[lost], units[lost], n),
    )


def _evidence(columns: EpochColumns, params: Params) -> tuple[Ints, Ints, Exact, Exact]:
    """The evidence items in (subject, kind, ref, count) order, where each subject's
    begin, and its (good, bad) units
    (:func:`~trustmesh.reputation.beta.evidence_totals` without the witness part)."""
    n = len(columns.subjects)
    subject, kind, counts = columns.ev_subject, columns.ev_kind, columns.ev_count
    key = subject * 64 + kind
    order = np.argsort(key, kind="stable")
    if len(key) and (key[order][1:] == key[order][:-1]).any():  # (ties: by ref, then count)
        words = np.ascontiguousarray(columns.ev_ref).view(">u8").reshape(-1, 4)
        order = np.lexsort((counts, words[:, 3], words[:, 2], words[:, 1], words[:, 0], kind,
                            subject))  # fmt: skip
    start = np.r_[0, np.cumsum(np.bincount(subject, minlength=n))].astype(np.int64)
    if not len(key):
        zero = np.zeros(n, dtype=np.int64)
        return order, start, zero, zero
    ordered = key[order]
    groups = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    total = np.add.reduceat(counts[order], groups)  # events per (subject, kind)
    owner, kinds = ordered[groups] // 64, ordered[groups] % 64
    weights = np.zeros(64, dtype=np.int64)
    good_kind = np.zeros(64, dtype=np.bool_)
    for k in Kind:
        weights[k], good_kind[k] = params.weights[k], k in GOOD
    weight, good = weights[kinds] * UNIT, good_kind[kinds]
    if int(total.max()) * int(weight.max()) >= SAFE // max(1, len(total)):
        total, weight = total.astype(object), weight.astype(object)
    return (
        order,
        start,
        _sum_by(owner[good], np.minimum(total[good], params.good_cap) * weight[good], n),
        _sum_by(owner[~good], total[~good] * weight[~good], n),
    )


def _sum_by(index: Ints, values: Exact, n: int) -> Exact:
    """``values`` summed per ``index`` (0 to n - 1), exactly."""
    if values.dtype != object and (
        not len(values) or int(values.max()) * len(values) < FLOAT_EXACT
    ):
        sums: Ints = np.bincount(index, weights=values, minlength=n).astype(np.int64)
        return sums
    exact_sums = np.zeros(n, dtype=object)
    np.add.at(exact_sums, index, values.astype(object))
    return _narrow(exact_sums)


def _fraction(t: Ints, d: int) -> Ints:
    """min(ONE, ONE * t // d), elementwise and exactly (ONE * t can pass int64)."""
    out = np.full(len(t), ONE, dtype=np.int64)
    below = t < d
    small = below & (t < SAFE // ONE)
    out[small] = t[small] * ONE // d
    large = below & ~small
    if large.any():
        out[large] = (t[large].astype(object) * ONE // d).astype(np.int64)
    return out


def _beta_score(alpha: Exact, beta: Exact, params: Params) -> Ints:
    """:meth:`~trustmesh.reputation.beta.BetaState.score`, per subject."""
    prior = params.prior
    if object in (alpha.dtype, beta.dtype) or (
        len(alpha) and (int(alpha.max()) + int(beta.max()) + 2 * prior) >= SAFE // ONE
    ):
        alpha, beta = alpha.astype(object), beta.astype(object)
    scores: Ints = ((alpha + prior) * ONE // (alpha + beta + 2 * prior)).astype(np.int64)
    return scores


def _scale(values: Exact, num: int, den: int) -> Exact:
    """values * num // den, exactly."""
    if values.dtype != object and (not len(values) or int(values.max()) < SAFE // max(1, num)):
        return values * num // den
    return _narrow(values.astype(object) * num // den)


def _add(a: Exact, b: Exact) -> Exact:
    """a + b, exactly."""
    if object not in (a.dtype, b.dtype) and (
        not len(a) or (int(a.max()) < SAFE // 2 and int(b.max()) < SAFE // 2)
    ):
        return a + b
    return _narrow(a.astype(object) + b.astype(object))


def _narrow(values: npt.NDArray[Any]) -> Exact:
    """An object array back to int64 where every value fits."""
    if len(values) and max(values) < SAFE:
        narrowed: Exact = values.astype(np.int64)
        return narrowed
    return values
