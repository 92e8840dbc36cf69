"""An epoch's reputation table: every subject's score, how it came about, and the
Merkle commitments a contract checks.

A subject's score is its beta reputation gated by how much of the stake-anchored
trust reaches it: ``score = beta * min(1, t / (tau * scale))``, with ``t`` its
trust after the last step, ``tau`` an even share of TRUST_MASS among the staked
subjects and ``scale`` a parameter (1/4: a subject that a quarter of an even share
reaches keeps its whole beta score, so among real, witnessed identities beta alone
ranks, however many neighbours each has; one no staked subject vouches for gets
nothing; identities without stake, however many, change no one's ``tau``). What a
subject says as a witness weighs ``min(1, t / (tau * witness_scale))`` times its
beta reputation of the epoch before: linear in its trust, so a stake split among
many identities says no more than it would whole, and fading as the others keep
overruling it; a verdict the other witnesses of the same subject clearly overrule
does not count, and counts against the witness. Two trees are committed, both over
subjects in id order:

- the score tree, leaf ``abi.encode(bytes32 subject, uint256 epoch, uint256 score)``,
  what a contract reads a score with (``score_of(subject, epoch, value, proof)``);
  and, last, the meta leaf ``abi.encode(bytes32 META, uint256 epoch, bytes32
  state_root, uint256 subjects, uint256 staked, bytes32 params)``, so that the one
  root a contract stores binds the state tree, the counts and the parameters;
- the state tree, leaf ``abi.encode(bytes32 subject, uint256 epoch, uint256
  position, bytes32 next, uint256 staked_before, uint256 pretrust, uint256
  out_weight, uint256[] trust, bytes32 edges, uint256 alpha, uint256 beta, bytes32
  evidence)``: the subject's place in id order, the id after it (zero for the
  last: the leaves chain, so none can be left out or counted twice unseen), the
  staked subjects before it (the staked count is provable along the chain),
  every step's trust value, the kept in-edges (``edges`` is
  ``keccak256(abi.encode(bytes32[] attesters, uint256[] weights))``, so that an
  attester's leaf stays small in a proof that names it) and the beta state. Any
  wrong value in the table is provable from a few leaves: a step's value from
  its attesters' leaves, a score from its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from trustmesh.errors import InvalidEvidence
from trustmesh.reputation._abi import encode as encode_words
from trustmesh.reputation.beta import BetaState, evidence_totals, witness_units
from trustmesh.reputation.evidence import Attestation, Evidence, Kind, Stake, tally_verdicts
from trustmesh.reputation.merkle import MerkleTree, keccak256, leaf_hash
from trustmesh.reputation.params import ONE, TRUST_MASS, Params
from trustmesh.reputation.trust import WitnessGraph, iterate_numpy, iterate_reference, pretrust

__all__ = [
    "EpochInputs",
    "ReputationTable",
    "SubjectScore",
    "assemble_table",
    "compute_epoch",
    "params_digest",
    "score_epoch",
]

STATE_TYPES = [  # (the leaves' ABI types: tests check the encodings against eth_abi with them)
    "bytes32", "uint256", "uint256", "bytes32", "uint256", "uint256", "uint256", "uint256[]",
    "bytes32", "uint256", "uint256", "bytes32",
]  # fmt: skip
META_TYPES = ["bytes32", "uint256", "bytes32", "uint256", "uint256", "bytes32"]
WITNESS_KINDS = frozenset({Kind.WITNESSED, Kind.WITNESS_DISAGREES, Kind.CONTRADICTED})
META = keccak256(b"trustmesh.dev/reputation/meta/v1")
"""The subject field of the score tree's meta leaf (no subject id is this hash)."""


@dataclass(frozen=True)
class EpochInputs:
    """Everything an epoch's table is a function of (all of it public)."""

    epoch: int
    evidence: Sequence[Evidence] = ()
    attestations: Sequence[Attestation] = ()
    stakes: Sequence[Stake] = ()
    previous: Mapping[bytes, BetaState] = field(default_factory=dict)  # last epoch's


@dataclass(frozen=True)
class SubjectScore:
    """One subject's row: its score and everything it was computed from."""

    subject: bytes
    position: int  # in id order
    staked_before: int  # subjects with pre-trust before it, in id order
    next: bytes  # the id after it, or 32 zero bytes for the last
    score: int
    beta_score: int
    trust: int  # after the last step
    state: BetaState
    counts: Mapping[Kind, int]  # this epoch's events per kind
    evidence: tuple[Evidence, ...]  # this epoch's items, sorted
    evidence_digest: bytes
    pretrust: int
    trajectory: tuple[int, ...]  # trust at steps 0..steps
    attesters: tuple[bytes, ...]  # the kept in-edges, by id
    weights: tuple[int, ...]
    out_weight: int

    def score_leaf(self, epoch: int) -> bytes:
        return leaf_hash(encode_words([self.subject, epoch, self.score]))

    def state_leaf(self, epoch: int) -> bytes:
        return leaf_hash(encode_words(self.state_values(epoch)))

    def state_values(self, epoch: int) -> list[Any]:
        """The state leaf's fields, in order (a contract takes them as a struct)."""
        return [
            self.subject, epoch, self.position, self.next, self.staked_before, self.pretrust,
            self.out_weight,
            list(self.trajectory), self.edges_digest, self.state.alpha, self.state.beta,
            self.evidence_digest,
        ]  # fmt: skip

    @property
    def edges_digest(self) -> bytes:
        """The kept in-edges, hashed: ``keccak256(abi.encode(attesters, weights))``."""
        return keccak256(encode_words([list(self.attesters), list(self.weights)]))

    def explain(self) -> dict[str, Any]:
        """The score's components and the evidence behind them, JSON-ready."""
        return {
            "subject": self.subject.hex(),
            "score": self.score,
            "components": {
                "beta": self.beta_score,
                "alpha": self.state.alpha,
                "beta_evidence": self.state.beta,
                "trust": self.trust,
                "pretrust": self.pretrust,
            },
            "counts": {kind.name.lower(): count for kind, count in sorted(self.counts.items())},
            "evidence": [
                {"kind": item.kind.name.lower(), "count": item.count, "ref": item.ref.hex()}
                for item in self.evidence
            ],
            "evidence_digest": self.evidence_digest.hex(),
            "attesters": [
                {"id": attester.hex(), "weight": weight}
                for attester, weight in zip(self.attesters, self.weights, strict=True)
            ],
        }


@dataclass(frozen=True)
class ReputationTable:
    epoch: int
    params: Params
    rows: Mapping[bytes, SubjectScore]  # by subject id, in id order
    score_tree: MerkleTree  # the subjects' score leaves in id order, then the meta leaf
    state_tree: MerkleTree
    # the meta leaf's fields: (META, epoch, state root, subjects, staked, params digest)
    meta_values: list[Any]
    _position: Mapping[bytes, int] = field(repr=False)

    @property
    def score_root(self) -> bytes:
        """The one root an attester posts: every score, and the meta leaf."""
        return self.score_tree.root

    @property
    def state_root(self) -> bytes:
        return self.state_tree.root

    @property
    def meta_leaf(self) -> bytes:
        return leaf_hash(encode_words(self.meta_values))

    def meta_proof(self) -> list[bytes]:
        return self.score_tree.proof(len(self.rows))

    def score_proof(self, subject: bytes) -> list[bytes]:
        return self.score_tree.proof(self._position[subject])

    def state_proof(self, subject: bytes) -> list[bytes]:
        return self.state_tree.proof(self._position[subject])

    def states(self) -> dict[bytes, BetaState]:
        """The beta states the next epoch starts from."""
        return {subject: row.state for subject, row in self.rows.items()}


def params_digest(params: Params) -> bytes:
    """The parameters, hashed in a fixed order (kinds by number)."""
    fixed = [
        params.forget_num, params.forget_den, params.forget_bad_num, params.forget_bad_den,
        params.prior, params.consensus_num, params.consensus_den, params.good_cap,
        params.trust_scale_num, params.trust_scale_den, params.witness_scale_num,
        params.witness_scale_den, params.teleport_num, params.teleport_den, params.steps,
        params.in_degree_cap, params.edge_cap, params.stake_age_full,
    ]  # fmt: skip
    kinds = sorted(params.weights)
    return keccak256(
        encode_words([fixed, [int(k) for k in kinds], [params.weights[k] for k in kinds]])
    )


def compute_epoch(
    inputs: EpochInputs,
    params: Params | None = None,
    *,
    engine: Literal["numpy", "reference"] = "numpy",
) -> ReputationTable:
    """The epoch's table: a pure function of ``inputs`` and ``params``."""
    params = params or Params()
    return assemble_table(inputs.epoch, params, score_epoch(inputs, params, engine=engine))


def score_epoch(
    inputs: EpochInputs,
    params: Params,
    *,
    engine: Literal["numpy", "reference"] = "numpy",
) -> list[SubjectScore]:
    """The epoch's rows, in id order, without the trees (what a simulation needs)."""
    subjects = sorted(
        {item.subject for item in inputs.evidence}
        | {a.witness for a in inputs.attestations}
        | {a.subject for a in inputs.attestations}
        | {stake.subject for stake in inputs.stakes}
        | set(inputs.previous)
    )
    by_subject: dict[bytes, list[Evidence]] = {subject: [] for subject in subjects}
    for item in inputs.evidence:
        if item.kind in WITNESS_KINDS:
            raise InvalidEvidence(f"{item.kind.name} evidence comes from attestations")
        by_subject[item.subject].append(item)
    pre = pretrust(subjects, inputs.stakes, params)
    verdicts = tally_verdicts(subjects, inputs.attestations, params.edge_cap)
    graph = WitnessGraph.build(verdicts, pre, params)
    steps = (iterate_numpy if engine == "numpy" else iterate_reference)(pre, graph, params)
    tau = max(1, TRUST_MASS // max(1, sum(1 for p in pre if p > 0)))
    scaled = max(1, tau * params.trust_scale_num // params.trust_scale_den)
    factor = [min(ONE, ONE * t // scaled) for t in steps[-1]]
    # A witness's word weighs its trust, linearly up to an average share: split
    # among many identities, the same stake says no more.
    heard = max(1, tau * params.witness_scale_num // params.witness_scale_den)
    # ... and its standing so far (last epoch's beta reputation): a witness the others
    # keep overruling loses its voice as it loses its reputation
    fresh = BetaState(0, 0)
    weight = [
        min(ONE, ONE * t // heard) * inputs.previous.get(s, fresh).score(params) // ONE
        for s, t in zip(subjects, steps[-1], strict=True)
    ]
    witnessed, disputed, contradicted = witness_units(verdicts, weight, params)
    rows: dict[bytes, SubjectScore] = {}
    staked_before = 0
    for j, subject in enumerate(subjects):
        items = tuple(sorted(by_subject[subject]))
        good, bad, counts = evidence_totals(
            items, params, witnessed[j], disputed[j], contradicted[j]
        )
        state = inputs.previous.get(subject, BetaState(0, 0)).update(
            good=good, bad=bad, params=params
        )
        beta_score = state.score(params)
        trust = steps[-1][j]
        rows[subject] = SubjectScore(
            subject=subject,
            position=j,
            staked_before=staked_before,
            next=subjects[j + 1] if j + 1 < len(subjects) else bytes(32),
            score=beta_score * factor[j] // ONE,
            beta_score=beta_score,
            trust=trust,
            state=state,
            counts=counts,
            evidence=items,
            evidence_digest=_evidence_digest(items),
            pretrust=pre[j],
            trajectory=tuple(step[j] for step in steps),
            attesters=tuple(subjects[i] for i in graph.sources[j]),
            weights=tuple(graph.weights[j]),
            out_weight=graph.out_weight[j],
        )
        staked_before += pre[j] > 0
    return [rows[subject] for subject in subjects]


def assemble_table(epoch: int, params: Params, rows: Sequence[SubjectScore]) -> ReputationTable:
    """The table of ``rows`` (in id order) with its trees: what :func:`compute_epoch`
    returns, and how a table someone published is rebuilt to be checked."""
    state_tree = MerkleTree([row.state_leaf(epoch) for row in rows])
    staked = sum(1 for row in rows if row.pretrust > 0)
    meta: list[Any] = [META, epoch, state_tree.root, len(rows), staked, params_digest(params)]
    score_leaves = [row.score_leaf(epoch) for row in rows]
    return ReputationTable(
        epoch=epoch,
        params=params,
        rows={row.subject: row for row in rows},
        score_tree=MerkleTree([*score_leaves, leaf_hash(encode_words(meta))]),
        state_tree=state_tree,
        meta_values=meta,
        _position={row.subject: i for i, row in enumerate(rows)},
    )


def _evidence_digest(items: Sequence[Evidence]) -> bytes:
    """The epoch's evidence about one subject, hashed (items sorted by kind and ref)."""
    ordered = sorted(items, key=lambda item: (item.kind, item.ref, item.count))
    return keccak256(
        encode_words(
            [[int(i.kind) for i in ordered], [i.count for i in ordered], [i.ref for i in ordered]]
        )
    )
