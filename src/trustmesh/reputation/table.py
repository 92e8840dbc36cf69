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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from trustmesh.reputation._abi import encode as encode_words
from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.columns import EpochColumns, EpochInputs, columns_of
from trustmesh.reputation.leaves import LeafHasher
from trustmesh.reputation.merkle import MerkleTree, keccak256, leaf_hash
from trustmesh.reputation.params import Params
from trustmesh.reputation.reference import score_reference
from trustmesh.reputation.row import SubjectScore
from trustmesh.reputation.rows import Rows, row_maker
from trustmesh.reputation.vector import Scored, build_graph, score_columns, score_graph, tally

__all__ = [
    "EpochInputs",
    "ReputationTable",
    "SubjectScore",
    "assemble_table",
    "commit_scored",
    "compute_columns",
    "compute_epoch",
    "params_digest",
    "score_epoch",
]

STATE_TYPES = [  # (the leaves' ABI types: tests check the encodings against eth_abi with them)
    "bytes32", "uint256", "uint256", "bytes32", "uint256", "uint256", "uint256", "uint256[]",
    "bytes32", "uint256", "uint256", "bytes32",
]  # fmt: skip
META_TYPES = ["bytes32", "uint256", "bytes32", "uint256", "uint256", "bytes32"]
META = keccak256(b"trustmesh.dev/reputation/meta/v1")
"""The subject field of the score tree's meta leaf (no subject id is this hash)."""
Engine = Literal["numpy", "reference"]


@dataclass(frozen=True)
class ReputationTable:
    epoch: int
    params: Params
    rows: Rows  # by subject id, in id order
    score_tree: MerkleTree  # the subjects' score leaves in id order, then the meta leaf
    state_tree: MerkleTree
    # the meta leaf's fields: (META, epoch, state root, subjects, staked, params digest)
    meta_values: list[Any]

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
        return self.score_tree.proof(self.rows.index(subject))

    def state_proof(self, subject: bytes) -> list[bytes]:
        return self.state_tree.proof(self.rows.index(subject))

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
    engine: Engine = "numpy",
    workers: int | None = None,
) -> ReputationTable:
    """The epoch's table: a pure function of ``inputs`` and ``params``."""
    params = params or Params()
    if engine == "reference":
        return assemble_table(inputs.epoch, params, score_reference(inputs, params))
    return compute_columns(columns_of(inputs), params, workers=workers)


def compute_columns(
    columns: EpochColumns, params: Params, *, workers: int | None = None
) -> ReputationTable:
    """:func:`compute_epoch` of an epoch given as columns (the vectorised engine;
    ``workers``: processes that hash the leaves, by default up to two, the second
    starting as soon as the verdicts are tallied)."""
    tallied = tally(columns, params)
    with LeafHasher(tallied, workers) as hasher:
        graph = build_graph(tallied, params)
        hasher.graph_built(graph)
        scored = score_graph(graph, params)
        return _committed(scored, params, hasher.finish(scored))


def commit_scored(scored: Scored, params: Params, *, workers: int | None = None) -> ReputationTable:
    """The table of an epoch scored by the vectorised engine: its trees hashed."""
    with LeafHasher(scored, workers) as hasher:
        return _committed(scored, params, hasher.finish(scored))


def _committed(
    scored: Scored, params: Params, hashed: tuple[bytes, bytes, list[bytes], list[bytes]]
) -> ReputationTable:
    columns = scored.columns
    state, score, state_made, score_made = hashed
    state_tree = MerkleTree.from_levels(state, state_made)
    staked = int(np.count_nonzero(scored.pretrust))
    meta: list[Any] = [
        META, columns.epoch, state_tree.root, len(state_tree), staked, params_digest(params),
    ]  # fmt: skip
    return ReputationTable(
        epoch=columns.epoch,
        params=params,
        rows=Rows(columns.subjects, row_maker(scored, params)),
        score_tree=MerkleTree.from_levels(score + leaf_hash(encode_words(meta)), score_made),
        state_tree=state_tree,
        meta_values=meta,
    )


def score_epoch(
    inputs: EpochInputs, params: Params, *, engine: Engine = "numpy"
) -> list[SubjectScore]:
    """The epoch's rows, in id order, without the trees (what a simulation needs)."""
    if engine == "reference":
        return score_reference(inputs, params)
    scored = score_columns(columns_of(inputs), params)
    make = row_maker(scored, params)
    return [make(j) for j in range(len(scored.columns.subjects))]


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
        rows=Rows.of(rows),
        score_tree=MerkleTree([*score_leaves, leaf_hash(encode_words(meta))]),
        state_tree=state_tree,
        meta_values=meta,
    )
