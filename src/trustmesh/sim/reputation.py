"""A simulated population for the reputation model (``trustmesh sim reputation``).

Devices sit on a grid and measure a smooth field; nodes sit among them. Each
epoch every subject leaves the evidence an honest or a malicious one would: its
readings logged (and the odd seq gap), witness attestations of its neighbours
(whether their reading agrees with its own measurement), a node's anchors. The
model scores everyone from that evidence (:func:`trustmesh.reputation.table.score_epoch`),
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

from trustmesh.reputation import (
    ONE,
    TRUST_MASS,
    Attestation,
    BetaState,
    EpochInputs,
    Evidence,
    Kind,
    Params,
    Stake,
    compute_epoch,
)
from trustmesh.reputation.beta import evidence_totals, witness_units
from trustmesh.reputation.evidence import tally_verdicts
from trustmesh.reputation.table import score_epoch
from trustmesh.reputation.trust import WitnessGraph, iterate_numpy

__all__ = ["SCENARIOS", "Scenario", "run_simulation"]

DEVICE_STAKE = 10**17
NODE_STAKE = 10**18
WITNESS_RANGE = 1.5  # grid units: a device hears its eight neighbours
NODE_RANGE = 2.5
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


def _epoch_inputs(world: _World, epoch: int) -> EpochInputs:
    rng, scenario = world.rng, world.scenario
    active = [i for i in world.identities if i.id not in world.retired]
    reported: dict[bytes, float] = {}
    evidence: list[Evidence] = []
    for identity in active:
        truth = _field(identity.x, identity.y, epoch)
        lying = identity.kind in LIARS or (
            identity.kind == "onoff" and rng.random() >= scenario.honest_rate
        )
        reported[identity.id] = truth + (LIE if lying else rng.gauss(0, 0.1))
        ref = _id(f"readings {epoch} {identity.id.hex()}")
        if identity.is_node:
            evidence.append(Evidence(identity.id, Kind.ANCHOR_KEPT, ref, 6))
        else:
            evidence.append(Evidence(identity.id, Kind.READINGS_LOGGED, ref, READINGS_PER_EPOCH))
            if rng.random() < GAP_RATE:
                evidence.append(Evidence(identity.id, Kind.SEQ_GAP, _id(f"gap {ref.hex()}")))
    attestations = _witnessing(world, active, reported, epoch, evidence)
    stakes = [Stake(i.id, i.stake, min(i.age, 1_000), i.slashed) for i in active]
    for identity in active:
        identity.age += 1
    return EpochInputs(epoch, evidence, attestations, stakes, world.states)


def _witnessing(
    world: _World,
    active: Sequence[_Identity],
    reported: dict[bytes, float],
    epoch: int,
    evidence: list[Evidence],
) -> list[Attestation]:
    """Who attests whom, and what each says of the reading it heard. Physical
    identities hear their neighbours' challenges; a swarm's virtual identities,
    which hear nothing, make up verdicts about identities near the spots they
    claim (praising one another, slandering the honest), and bridges vouch for
    Sybils near them. Every claim is checked the same way: two claimed spots
    too far apart for either to have heard the other make an impossible claim,
    held against both."""
    rng = world.rng
    heard = _Cells([i for i in active if i.kind != "swarm"], lambda i: (i.x, i.y))
    claimed = _Cells(active, lambda i: i.claimed)
    verdicts: list[tuple[_Identity, _Identity, bool]] = []
    for subject in heard.members:
        reach = NODE_RANGE if subject.is_node else WITNESS_RANGE
        near = [
            w
            for w in heard.near(subject.x, subject.y)
            if w is not subject
            and math.dist((w.x, w.y), (subject.x, subject.y))
            <= (NODE_RANGE if w.is_node else reach)
        ]
        for witness in near:  # a challenge is a broadcast: everyone in range answers
            own = _field(witness.x, witness.y, epoch)
            agrees = abs(reported[subject.id] - own) <= TOLERANCE
            if witness.kind in ("ring", "badmouth"):
                agrees = subject.kind == witness.kind  # its own always, everyone else never
            verdicts.append((witness, subject, agrees))
    for sybil in (i for i in active if i.kind == "swarm"):
        around = [
            i
            for i in claimed.near(*sybil.claimed)
            if i is not sybil and math.dist(i.claimed, sybil.claimed) <= WITNESS_RANGE
        ]
        for other in rng.sample(around, min(WITNESSES_PER_CHALLENGE, len(around))):
            verdicts.append((sybil, other, other.malicious))
    for bridge in (i for i in active if i.kind == "bridge"):
        around = [i for i in claimed.near(*bridge.claimed) if i.kind == "swarm"]
        for sybil in rng.sample(around, min(20, len(around))):
            verdicts.append((bridge, sybil, True))
    attestations = []
    for witness, subject, agrees in verdicts:
        ref = _id(f"witness {epoch} {witness.id.hex()} {subject.id.hex()}")
        if math.dist(witness.claimed, subject.claimed) > NODE_RANGE * 1.5:
            evidence.append(Evidence(witness.id, Kind.IMPOSSIBLE_CLAIM, ref))
            evidence.append(Evidence(subject.id, Kind.IMPOSSIBLE_CLAIM, ref))
        else:
            attestations.append(Attestation(witness.id, subject.id, ref, agrees))
    return attestations


class _Cells:
    """Identities by grid cell of a position, for neighbour lookups."""

    def __init__(
        self, members: Sequence[_Identity], where: Callable[[_Identity], tuple[float, float]]
    ) -> None:
        self.members = list(members)
        self._cells: dict[tuple[int, int], list[_Identity]] = {}
        for identity in self.members:
            x, y = where(identity)
            self._cells.setdefault((int(x), int(y)), []).append(identity)

    def near(self, x: float, y: float) -> list[_Identity]:
        """Everyone in the 5x5 cells around (x, y) (the ranges are at most 2.5)."""
        return [
            identity
            for dx in (-3, -2, -1, 0, 1, 2, 3)
            for dy in (-3, -2, -1, 0, 1, 2, 3)
            for identity in self._cells.get((int(x) + dx, int(y) + dy), ())
        ]


def _plain_beta(
    inputs: EpochInputs, states: dict[bytes, BetaState], params: Params
) -> dict[bytes, int]:
    """Baseline: beta reputation with every witness counted alike."""
    subjects = sorted({s.subject for s in inputs.stakes})
    plain = dataclasses.replace(params, consensus_num=1 << 62)  # no verdict is overruled
    agreeing, disagreeing, overruled = witness_units(
        tally_verdicts(subjects, inputs.attestations, plain.edge_cap), [ONE] * len(subjects), plain
    )
    by_subject: dict[bytes, list[Evidence]] = {s: [] for s in subjects}
    for item in inputs.evidence:
        by_subject.setdefault(item.subject, []).append(item)
    scores = {}
    for j, subject in enumerate(subjects):
        good, bad, _ = evidence_totals(
            by_subject[subject], params, agreeing[j], disagreeing[j], overruled[j]
        )
        states[subject] = states.get(subject, BetaState(0, 0)).update(
            good=good, bad=bad, params=params
        )
        scores[subject] = states[subject].score(params)
    return scores


def _plain_eigentrust(inputs: EpochInputs, params: Params) -> dict[bytes, int]:
    """Baseline: EigenTrust with pre-trust shared equally by every identity."""
    subjects = sorted({s.subject for s in inputs.stakes})
    pre = [TRUST_MASS // max(1, len(subjects))] * len(subjects)
    graph = WitnessGraph.build(
        tally_verdicts(subjects, inputs.attestations, params.edge_cap), pre, params
    )
    return dict(zip(subjects, iterate_numpy(pre, graph, params)[-1], strict=True))


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
    inputs = EpochInputs(0)
    for epoch in range(epochs):
        if scenario.kind == "whitewash" and epoch == epochs // 2:
            _whitewash(world, seed)
        inputs = _epoch_inputs(world, epoch)
        rows = score_epoch(inputs, params)
        world.states = {row.subject: row.state for row in rows}
        scores = {row.subject: row.score for row in rows}
        # rewards follow beta reputation times trust, linear in trust: a stake split
        # among many identities earns what it would whole
        rewards = {row.subject: row.beta_score * row.trust for row in rows}
        beta_scores = _plain_beta(inputs, plain_states, params)
        if detected is None and _figures(scores, rewards, world, GATE)["auc"] >= 0.99:
            detected = epoch + 1
    eigen_scores = _plain_eigentrust(inputs, params)
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
    inputs = EpochInputs(0)
    for epoch in range(epochs):
        inputs = _epoch_inputs(world, epoch)
        if epoch < epochs - 1:
            world.states = {row.subject: row.state for row in score_epoch(inputs, params)}
    table = compute_epoch(inputs, params)
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
