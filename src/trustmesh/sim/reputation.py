"""A simulated population for the reputation model (``trustmesh sim reputation``).

Devices sit on a grid and measure a smooth field; nodes sit among them. Each
epoch every subject leaves the evidence an honest or a malicious one would: its
readings logged (and the odd seq gap), witness attestations of its neighbours
(whether their reading agrees with its own measurement), a node's anchors. The
model scores everyone from that evidence (the vectorised engine, given columns:
:mod:`trustmesh.reputation.vector`),
and so do two baselines on the same data: plain EigenTrust (pre-trust shared
equally by all identities, the score its trust) and plain beta reputation (every
witness counted alike, no trust). Each attack scenario reports, for the model
and for both baselines, how well scores separate honest from malicious (ROC
AUC), the honest identities a gate would refuse, and the malicious share of a
reward pool (the model pays beta reputation times trust: linear in trust, so a
stake split among many identities earns what it would whole).

Everything is seeded: one seed, one result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from trustmesh.reputation import ONE, UNIT, BetaState, Kind, Params
from trustmesh.reputation.columns import EpochColumns, exact
from trustmesh.reputation.table import compute_columns
from trustmesh.reputation.vector import Tally, build_graph, score_columns, score_graph, tally
from trustmesh.sim.neighbours import Index, pairs_within

__all__ = ["SCENARIOS", "Scenario", "run_simulation"]

DEVICE_STAKE = 10**17
NODE_STAKE = 10**18
WITNESS_RANGE = 1.5  # grid units: a device hears its eight neighbours
NODE_RANGE = 2.5
BRIDGE_RANGE = 3.0  # a bridge vouches for Sybils claiming spots this close to its own
WITNESSES_PER_CHALLENGE = 6  # the verdicts a virtual Sybil makes up per claim
# a witness agrees when the reading is this close to its own: the field differs by
# at most ~1.5 across a node's range, a lie by LIE
TOLERANCE = 2.0
LIE = 5.0  # what a liar adds to the truth
READINGS_PER_EPOCH = 60
GAP_RATE = 0.02  # an honest device's chance of a seq gap in an epoch
GATE = ONE // 10  # the gating threshold: a score below it is refused
MEMBER_ATTACKS = ("naive", "onoff", "ring", "badmouth", "spoof", "whitewash")
LIARS = ("naive", "ring", "swarm", "spoof", "whitewash")  # always off by LIE


@dataclass(frozen=True)
class Scenario:
    """One attack. ``share``: malicious identities per honest device (swarms: 10.0
    is ten Sybils per honest device); ``stake_share``: of all stake, what the
    attacker holds (None: ordinary per-identity stake)."""

    name: str
    kind: str
    share: float
    honest_rate: float = 0.0  # on-off: the chance it behaves in an epoch
    stake_share: float | None = None


SCENARIOS = (
    Scenario("naive liars", "naive", 0.1),
    Scenario("on-off 20%", "onoff", 0.1, honest_rate=0.2),
    Scenario("on-off 50%", "onoff", 0.1, honest_rate=0.5),
    Scenario("on-off 80%", "onoff", 0.1, honest_rate=0.8),
    Scenario("collusion ring", "ring", 0.2),
    Scenario("bad-mouthing", "badmouth", 0.2),
    Scenario("sybil swarm, unstaked", "swarm", 10.0, stake_share=0.0),
    Scenario("sybil swarm, 30% of stake", "swarm", 10.0, stake_share=0.3),
    Scenario("sybil swarm, 50% of stake", "swarm", 10.0, stake_share=0.5),
    Scenario("location spoofers", "spoof", 0.1),
    Scenario("whitewashing", "whitewash", 0.1),
    Scenario("bridge", "bridge", 1.0),
)


def _id(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@dataclass
class _Identity:
    id: bytes
    x: float  # where it is
    y: float
    claimed: tuple[float, float]  # where it says it is
    stake: int
    malicious: bool
    kind: str = "honest"  # the role it plays
    age: int = 30
    is_node: bool = False
    slashed: bool = False


@dataclass
class _World:
    scenario: Scenario
    rng: random.Random
    identities: list[_Identity] = field(default_factory=list)
    states: dict[bytes, BetaState] = field(default_factory=dict)
    retired: set[bytes] = field(default_factory=set)  # whitewashed away


def _field(x: float, y: float, epoch: int) -> float:
    """The measured quantity: smooth, so neighbours' readings agree within TOLERANCE."""
    return 20 + 4 * math.sin(x / 9 + epoch / 5) + 4 * math.cos(y / 11)


def _build(scenario: Scenario, devices: int, nodes: int, seed: int) -> _World:
    """The population: ``devices`` on the grid (for member attacks, ``share`` of them
    malicious), nodes among them, and for swarms ``share`` Sybils per device."""
    rng = random.Random(f"{seed}/{scenario.name}")
    world = _World(scenario, rng)
    side = max(1, math.isqrt(devices - 1) + 1)
    for k in range(devices):
        x, y = float(k % side), float(k // side)
        world.identities.append(
            _Identity(_id(f"device {seed} {k}"), x, y, (x, y), DEVICE_STAKE, False)
        )
    for m in range(nodes):
        x, y = rng.uniform(0, side), rng.uniform(0, side)
        world.identities.append(
            _Identity(_id(f"node {seed} {m}"), x, y, (x, y), NODE_STAKE, False, is_node=True)
        )
    grid = [i for i in world.identities if not i.is_node]
    if scenario.kind in MEMBER_ATTACKS:
        for identity in rng.sample(grid, round(devices * scenario.share)):
            identity.malicious, identity.kind = True, scenario.kind
            if scenario.kind == "spoof":  # all in one room off the map, claiming spots on it
                identity.x, identity.y = side + 10 + rng.random(), side + 10 + rng.random()
    elif scenario.kind in ("swarm", "bridge"):
        count = round(devices * scenario.share)
        share = scenario.stake_share or 0.0
        honest_stake = sum(i.stake for i in world.identities)
        each = int(honest_stake * share / (1 - share)) // max(1, count)
        for k in range(count):  # virtual identities: nobody hears them, they claim spots
            x, y = rng.uniform(0, side), rng.uniform(0, side)
            world.identities.append(
                _Identity(_id(f"sybil {seed} {k}"), x, y, (x, y), each, True, "swarm")
            )
        if scenario.kind == "bridge":  # a few honest-looking devices vouch for the swarm
            for identity in rng.sample(grid, min(5, len(grid))):
                identity.malicious, identity.kind = True, "bridge"
    return world


def _epoch_columns(world: _World, epoch: int) -> tuple[EpochColumns, Index]:
    """The epoch's evidence, as the model takes it (columns: a swarm scenario has
    a hundred thousand identities and a million attestations an epoch), and where
    the active identities (staked or not; not retired ones) sit among its subjects."""
    rng, scenario = world.rng, world.scenario
    active = [i for i in world.identities if i.id not in world.retired]
    reported = np.empty(len(active))
    evidence: list[tuple[int, Kind, bytes, int]] = []  # (active identity, kind, ref, count)
    for k, identity in enumerate(active):
        truth = _field(identity.x, identity.y, epoch)
        lying = identity.kind in LIARS or (
            identity.kind == "onoff" and rng.random() >= scenario.honest_rate
        )
        reported[k] = truth + (LIE if lying else rng.gauss(0, 0.1))
        ref = _id(f"readings {epoch} {identity.id.hex()}")
        if identity.is_node:
            evidence.append((k, Kind.ANCHOR_KEPT, ref, 6))
        else:
            evidence.append((k, Kind.READINGS_LOGGED, ref, READINGS_PER_EPOCH))
            if rng.random() < GAP_RATE:
                evidence.append((k, Kind.SEQ_GAP, _id(f"gap {ref.hex()}"), 1))
    witness, attested, agrees = _witnessing(world, active, reported, epoch, evidence)
    subjects = sorted({i.id for i in active} | set(world.states))
    index = {subject: j for j, subject in enumerate(subjects)}
    at = np.array([index[i.id] for i in active], dtype=np.int64)
    stake, age = [0] * len(subjects), [0] * len(subjects)
    for identity in active:
        if not identity.slashed:
            stake[index[identity.id]] = identity.stake
            age[index[identity.id]] = min(identity.age, 1_000)
        identity.age += 1
    fresh = BetaState(0, 0)
    states = [world.states.get(subject, fresh) for subject in subjects]
    columns = EpochColumns(
        epoch=epoch,
        subjects=subjects,
        witness=at[witness],
        attested=at[attested],
        reading=np.arange(len(witness), dtype=np.int64),  # (each its own witness reading)
        agrees=agrees,
        ev_subject=at[np.array([k for k, _, _, _ in evidence], dtype=np.int64)],
        ev_kind=np.array([int(kind) for _, kind, _, _ in evidence], dtype=np.int64),
        ev_ref=np.frombuffer(b"".join(ref for _, _, ref, _ in evidence), dtype=np.uint8).reshape(
            -1, 32
        ),
        ev_count=np.array([count for _, _, _, count in evidence], dtype=np.int64),
        stake=exact(stake),
        stake_age=np.array(age, dtype=np.int64),
        alpha=exact([state.alpha for state in states]),
        beta=exact([state.beta for state in states]),
    )
    return columns, at


def _witnessing(
    world: _World,
    active: Sequence[_Identity],
    reported: npt.NDArray[np.float64],
    epoch: int,
    evidence: list[tuple[int, Kind, bytes, int]],
) -> tuple[Index, Index, npt.NDArray[np.bool_]]:
    """Who attests whom (by index in ``active``), and whether what it heard agrees
    with its own measurement. Physical identities hear their neighbours'
    challenges; a swarm's virtual identities, which hear nothing, make up verdicts
    about identities near the spots they claim (praising one another, slandering
    the honest), and bridges vouch for Sybils near them. Every claim is checked the
    same way: two claimed spots too far apart for either to have heard the other
    make an impossible claim, held against both."""
    sample = np.random.default_rng(world.rng.getrandbits(64))
    kind = np.array([i.kind for i in active])
    is_node = np.array([i.is_node for i in active], dtype=np.bool_)
    malicious = np.array([i.malicious for i in active], dtype=np.bool_)
    place = np.array([(i.x, i.y) for i in active], dtype=np.float64).reshape(-1, 2)
    claimed = np.array([i.claimed for i in active], dtype=np.float64).reshape(-1, 2)
    # a challenge is a broadcast: everyone in range answers
    physical = np.flatnonzero(kind != "swarm")
    w, s = pairs_within(place[physical], place[physical], NODE_RANGE)
    w, s = physical[w], physical[s]
    reach = np.where(is_node[w] | is_node[s], NODE_RANGE, WITNESS_RANGE)
    heard = (w != s) & (np.hypot(*(place[w] - place[s]).T) <= reach)
    w, s = w[heard], s[heard]
    own = 20 + 4 * np.sin(place[w, 0] / 9 + epoch / 5) + 4 * np.cos(place[w, 1] / 11)
    agrees = np.abs(reported[s] - own) <= TOLERANCE
    biased = np.isin(kind[w], ["ring", "badmouth"])  # its own always, everyone else never
    agrees[biased] = kind[s][biased] == kind[w][biased]
    sybils = np.flatnonzero(kind == "swarm")
    sw, so = pairs_within(claimed[sybils], claimed, WITNESS_RANGE)
    sw, so = _some_each(sybils[sw], so, WITNESSES_PER_CHALLENGE, sample)
    bridges = np.flatnonzero(kind == "bridge")
    bw, bo = pairs_within(claimed[bridges], claimed[sybils], BRIDGE_RANGE)
    bw, bo = _some_each(bridges[bw], sybils[bo], 20, sample)
    w, s = np.concatenate([w, sw, bw]), np.concatenate([s, so, bo])
    agrees = np.concatenate([agrees, malicious[so], np.ones(len(bw), dtype=np.bool_)])
    far = np.hypot(*(claimed[w] - claimed[s]).T) > NODE_RANGE * 1.5
    for k in np.flatnonzero(far).tolist():
        ref = _id(f"witness {epoch} {active[w[k]].id.hex()} {active[s[k]].id.hex()}")
        evidence.append((int(w[k]), Kind.IMPOSSIBLE_CLAIM, ref, 1))
        evidence.append((int(s[k]), Kind.IMPOSSIBLE_CLAIM, ref, 1))
    return w[~far], s[~far], agrees[~far]


def _some_each(
    who: Index, whom: Index, most: int, sample: np.random.Generator
) -> tuple[Index, Index]:
    """At most ``most`` of each ``who``'s pairs (not with itself), chosen at random."""
    other = who != whom
    who, whom = who[other], whom[other]
    order = np.argsort(who << 32 | sample.integers(0, 1 << 32, len(who)))  # (a random order)
    who, whom = who[order], whom[order]
    first = np.flatnonzero(np.r_[True, who[1:] != who[:-1]]) if len(who) else who
    rank = np.arange(len(who)) - np.repeat(first, np.diff(np.r_[first, len(who)]))
    return who[rank < most], whom[rank < most]


def _plain_beta(
    columns: EpochColumns,
    tallied: Tally,
    active: Index,
    states: dict[bytes, BetaState],
    params: Params,
) -> dict[bytes, int]:
    """Baseline: beta reputation with every witness counted alike (and none
    overruled), for the ``active`` subjects."""
    n = len(columns.subjects)
    _, subject, agrees, count = tallied.verdicts
    yes = agrees == 1
    units = count * UNIT
    witnessed = np.bincount(subject[yes], weights=units[yes], minlength=n).astype(np.int64)
    disputed = np.bincount(subject[~yes], weights=units[~yes], minlength=n).astype(np.int64)
    w = params.weights
    good = tallied.good + np.minimum(witnessed, params.good_cap * UNIT) * w[Kind.WITNESSED]
    bad = tallied.bad + disputed * w[Kind.WITNESS_DISAGREES]
    scores = {}
    for j in np.sort(active).tolist():
        subject_id = columns.subjects[j]
        state = states.get(subject_id, BetaState(0, 0)).update(
            good=int(good[j]), bad=int(bad[j]), params=params
        )
        states[subject_id], scores[subject_id] = state, state.score(params)
    return scores


def _plain_eigentrust(columns: EpochColumns, active: Index, params: Params) -> dict[bytes, int]:
    """Baseline: EigenTrust with pre-trust shared equally by every ``active`` identity
    (staked or not), the score its trust."""
    equal = np.zeros(len(columns.subjects), dtype=np.int64)
    equal[active] = 1
    trust = score_columns(
        dataclasses.replace(
            columns, stake=equal, stake_age=np.full(len(equal), params.stake_age_full - 1)
        ),
        params,
    ).trust[-1]
    return {columns.subjects[j]: int(trust[j]) for j in np.sort(active).tolist()}


def auc(honest: Sequence[int], malicious: Sequence[int]) -> float:
    """ROC AUC of scores ranking honest above malicious (ties count half)."""
    if not honest or not malicious:
        return 1.0
    ranked = sorted([(s, 1) for s in honest] + [(s, 0) for s in malicious])
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average = (i + j + 1) / 2
        rank_sum += average * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n_h, n_m = len(honest), len(malicious)
    return (rank_sum - n_h * (n_h + 1) / 2) / (n_h * n_m)


def _figures(
    scores: dict[bytes, int], rewards: dict[bytes, int], world: _World, gate: int | None
) -> dict[str, Any]:
    """AUC of ``scores``, the honest share a gate refuses, the malicious share of a
    pool paid in proportion to ``rewards``."""
    live = _judged(world, scores)
    honest = [scores[i.id] for i in live if not i.malicious]
    malicious = [scores[i.id] for i in live if i.malicious]
    earners = [i for i in world.identities if i.id in rewards and i.kind != "retired"]
    paid = sum(rewards[i.id] for i in earners)  # (nodes earn too)
    if gate is None:  # a baseline's scale is its own: gate at the same quantile of honest
        ordered = sorted(honest)
        gate = ordered[len(ordered) // 100] if ordered else 0
    return {
        "auc": round(auc(honest, malicious), 4),
        "honest_false_positive_rate": round(sum(s < gate for s in honest) / max(1, len(honest)), 4),
        "malicious_recall": round(sum(s < gate for s in malicious) / max(1, len(malicious)), 4),
        "malicious_reward_share": (
            round(sum(rewards[i.id] for i in earners if i.malicious) / paid, 4) if paid else 0.0
        ),
    }


def _judged(world: _World, scores: dict[bytes, int]) -> list[_Identity]:
    """The devices and Sybils scored at the end (not nodes, not retired identities)."""
    return [i for i in world.identities if i.id in scores and not i.is_node and i.kind != "retired"]


def run_scenario(
    scenario: Scenario, *, devices: int, nodes: int, epochs: int, seed: int, params: Params
) -> dict[str, Any]:
    world = _build(scenario, devices, nodes, seed)
    plain_states: dict[bytes, BetaState] = {}
    detected: int | None = None
    scores: dict[bytes, int] = {}
    rewards: dict[bytes, int] = {}
    beta_scores: dict[bytes, int] = {}
    if epochs < 1:
        raise ValueError("a simulation runs at least one epoch")
    columns: EpochColumns | None = None
    for epoch in range(epochs):
        if scenario.kind == "whitewash" and epoch == epochs // 2:
            _whitewash(world, seed)
        columns, active = _epoch_columns(world, epoch)
        tallied = tally(columns, params)
        scored = score_graph(build_graph(tallied, params), params)
        subjects = columns.subjects
        world.states = {
            subject: BetaState(alpha, beta)
            for subject, alpha, beta in zip(
                subjects, scored.alpha.tolist(), scored.beta.tolist(), strict=True
            )
        }
        scores = dict(zip(subjects, scored.score.tolist(), strict=True))
        # rewards follow beta reputation times trust, linear in trust: a stake split
        # among many identities earns what it would whole
        rewards = {
            subject: beta * trust
            for subject, beta, trust in zip(
                subjects, scored.beta_score.tolist(), scored.trust[-1].tolist(), strict=True
            )
        }
        beta_scores = _plain_beta(columns, tallied, active, plain_states, params)
        if detected is None and _figures(scores, rewards, world, GATE)["auc"] >= 0.99:
            detected = epoch + 1
    assert columns is not None  # (epochs >= 1)
    eigen_scores = _plain_eigentrust(columns, active, params)
    live = _judged(world, scores)
    malicious_stake = sum(i.stake for i in live if i.malicious)
    return {
        "name": scenario.name,
        "malicious_fraction": round(sum(i.malicious for i in live) / max(1, len(live)), 4),
        "malicious_stake_fraction": round(
            malicious_stake / max(1, sum(i.stake for i in world.identities if i.id in scores)), 4
        ),
        **_figures(scores, rewards, world, GATE),
        "epochs_to_detect": detected,
        "baselines": {
            "eigentrust": _figures(eigen_scores, eigen_scores, world, None),
            "beta": _figures(beta_scores, beta_scores, world, None),
        },
    }


def _whitewash(world: _World, seed: int) -> None:
    """The liars are slashed, and come back under new identities with new stake."""
    for identity in [i for i in world.identities if i.kind == "whitewash"]:
        world.retired.add(identity.id)
        fresh = _Identity(
            _id(f"reborn {seed} {identity.id.hex()}"), identity.x, identity.y, identity.claimed,
            DEVICE_STAKE, True, "whitewash", age=0,
        )  # fmt: skip
        world.identities.append(fresh)
        identity.malicious = False  # (the retired identity no longer counts)
        identity.kind = "retired"


def run_simulation(
    *,
    devices: int = 10_000,
    nodes: int = 500,
    epochs: int = 30,
    seed: int = 1,
    scenarios: Iterable[Scenario] = SCENARIOS,
    params: Params | None = None,
    progress: Callable[[str], object] = lambda name: None,
) -> dict[str, Any]:
    """Every scenario, and the score root of an honest population's last table.

    ``progress`` is told each scenario's name as it starts."""
    params = params or Params()
    progress("honest population")
    honest = Scenario("honest", "honest", 0.0)
    world = _build(honest, devices, nodes, seed)
    for epoch in range(epochs - 1):
        scored = score_columns(_epoch_columns(world, epoch)[0], params)
        world.states = {
            subject: BetaState(alpha, beta)
            for subject, alpha, beta in zip(
                scored.columns.subjects, scored.alpha.tolist(), scored.beta.tolist(), strict=True
            )
        }
    table = compute_columns(_epoch_columns(world, max(0, epochs - 1))[0], params)
    rows = []
    for scenario in scenarios:
        progress(scenario.name)
        rows.append(
            run_scenario(
                scenario, devices=devices, nodes=nodes, epochs=epochs, seed=seed, params=params
            )
        )
    return {
        "simulation": "reputation",
        "devices": devices,
        "nodes": nodes,
        "epochs": epochs,
        "seed": seed,
        "gate": GATE,
        "score_root": table.score_root.hex(),
        "scenarios": rows,
    }
