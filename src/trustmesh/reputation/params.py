"""The model's constants, all integers: nothing that is hashed or committed
passes through a float, so every machine computes the same table.

Scores are fixed-point fractions of :data:`ONE`; evidence is counted in
thousandths (:data:`UNIT`), so that forgetting (a multiplication by a ratio,
rounded down) keeps three decimals; trust is a mass of :data:`TRUST_MASS` shared
out by stake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from trustmesh.errors import InvalidEvidence
from trustmesh.reputation.evidence import Kind

__all__ = ["ONE", "TRUST_MASS", "UNIT", "Params"]

ONE = 10**9
"""A score of 1.0."""
UNIT = 1_000
"""One event's worth of evidence, before its kind's weight."""
TRUST_MASS = 10**15
"""All pre-trust together (shared out in proportion to aged, unslashed stake)."""

INT64_SAFE = 9_000  # TRUST_MASS times this stays below 2^63: the numpy path is exact

# Evidence weights, in events: one equivocation outweighs a thousand readings.
DEFAULT_WEIGHTS: Mapping[Kind, int] = MappingProxyType(
    {
        Kind.READINGS_LOGGED: 1,
        Kind.SEQ_GAP: 5,
        Kind.CLOCK_DRIFT: 5,
        Kind.REFUSED: 20,
        Kind.EQUIVOCATION: 1_000,
        Kind.WITNESSED: 2,
        Kind.IMPOSSIBLE_CLAIM: 200,
        Kind.WITNESS_DISAGREES: 20,
        Kind.CONTRADICTED: 30,
        Kind.ANCHOR_KEPT: 10,
        Kind.ANCHOR_LATE: 200,
        Kind.FRAUD_LOST: 1_000,
        Kind.FRAUD_WON: 50,
        Kind.RECEIPT_KEPT: 1,
        Kind.SLASHED: 1_000,
        Kind.REVOKED: 1_000,
    }
)
# Good evidence per kind and epoch counts up to this many events: volume alone
# (a flood of readings) buys no more reputation than a steady, honest stream.
DEFAULT_GOOD_CAP = 100


@dataclass(frozen=True)
class Params:
    """One parameter set; its fields are committed with every epoch's table."""

    forget_num: int = 9  # good evidence kept from one epoch to the next: 9/10
    forget_den: int = 10
    forget_bad_num: int = 49  # bad evidence fades slower: 49/50 (a lie is remembered)
    forget_bad_den: int = 50
    prior: int = UNIT  # Beta(1, 1): one event of each, before any evidence
    weights: Mapping[Kind, int] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    good_cap: int = DEFAULT_GOOD_CAP
    consensus_num: int = 3  # a verdict is overruled when the others outweigh it 3/2 times
    consensus_den: int = 2
    # a score's trust factor is min(1, t / (tau * scale)): trust gates (Sybils without
    # stake score nothing) and does not rank (a corner device with three neighbours
    # keeps its beta score as one with eight does)
    trust_scale_num: int = 1
    trust_scale_den: int = 4
    # a witness's word weighs min(1, t / (tau * scale)): linear (a split stake says no
    # more) up to half an even share, so an ordinary honest witness counts in full
    witness_scale_num: int = 1
    witness_scale_den: int = 2
    teleport_num: int = 15  # EigenTrust's jump back to pre-trust: 15/100 a step
    teleport_den: int = 100
    steps: int = 16  # power-iteration steps, each committed
    in_degree_cap: int = 32  # attesters kept per subject (bounds a fraud proof's gas)
    edge_cap: int = 16  # attestations counted per (witness, subject) and epoch
    stake_age_full: int = 30  # epochs until a stake counts in full (whitewashing)

    def __post_init__(self) -> None:
        for num, den in (
            (self.forget_num, self.forget_den),
            (self.forget_bad_num, self.forget_bad_den),
        ):
            if not 0 <= num <= den or den <= 0:
                raise InvalidEvidence("forgetting must be a ratio in [0, 1]")
        if not 0 < self.teleport_num < self.teleport_den:
            raise InvalidEvidence("the teleport must be a ratio in (0, 1)")
        if set(self.weights) != set(Kind) or any(w <= 0 for w in self.weights.values()):
            raise InvalidEvidence("every evidence kind needs a positive weight")
        if self.edge_cap > INT64_SAFE or self.teleport_den > INT64_SAFE:
            raise InvalidEvidence(f"edge_cap and teleport_den are at most {INT64_SAFE}")
        for name in (
            "prior",
            "consensus_num",
            "consensus_den",
            "good_cap",
            "trust_scale_num",
            "trust_scale_den",
            "witness_scale_num",
            "witness_scale_den",
            "steps",
            "in_degree_cap",
            "edge_cap",
            "stake_age_full",
        ):
            if getattr(self, name) <= 0:
                raise InvalidEvidence(f"{name} must be positive")
