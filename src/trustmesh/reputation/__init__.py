"""Reputation that anyone can recompute: a pure function of public evidence,
in integers, committed as Merkle trees a contract checks.

Per epoch and subject (a device or a node, by Registry id): a beta reputation
with forgetting over the evidence the logs and the chain show
(:mod:`~trustmesh.reputation.beta`), scaled by a stake-anchored EigenTrust over
the witness graph (:mod:`~trustmesh.reputation.trust`). Every score comes with
its components and the evidence behind it (:meth:`SubjectScore.explain`).

>>> import hashlib
>>> node, device = (hashlib.sha256(name).digest() for name in (b"node", b"device"))
>>> ref = bytes(32)
>>> table = compute_epoch(EpochInputs(
...     epoch=1,
...     evidence=[Evidence(device, Kind.READINGS_LOGGED, ref, count=50)],
...     attestations=[Attestation(node, device, ref)],
...     stakes=[Stake(node, amount=10**18, age=30), Stake(device, amount=10**17, age=30)],
... ))
>>> row = table.rows[device]
>>> 0 < row.score < row.beta_score < ONE
True
>>> check_proof(table.score_proof(device), table.score_root, row.score_leaf(1))
"""

from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.evidence import Attestation, Evidence, Kind, Stake
from trustmesh.reputation.merkle import check_proof
from trustmesh.reputation.params import ONE, TRUST_MASS, UNIT, Params
from trustmesh.reputation.table import (
    EpochInputs,
    ReputationTable,
    SubjectScore,
    assemble_table,
    compute_epoch,
    params_digest,
)

__all__ = [
    "ONE",
    "TRUST_MASS",
    "UNIT",
    "Attestation",
    "BetaState",
    "EpochInputs",
    "Evidence",
    "Kind",
    "Params",
    "ReputationTable",
    "Stake",
    "SubjectScore",
    "assemble_table",
    "check_proof",
    "compute_epoch",
    "params_digest",
]
