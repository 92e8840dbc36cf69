"""The Reputation contract, typed: deploy it for a parameter set, post an epoch's
table, read a score with its proof, and prove a wrong value of a posted table.

A proof is made from the table *as posted* (whoever posted it publishes it; a
checker rebuilds it with :func:`~trustmesh.reputation.assemble_table` and compares
it with its own recomputation): the contract checks each leaf against the posted
root, then recomputes the one value from them.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.chain.defaults import DEFAULT_REWARD_BPS
from trustmesh.reputation import Params, ReputationTable, params_digest
from trustmesh.reputation.check import Wrong

__all__ = ["ReputationContract", "deploy_gate", "deploy_reputation"]

DEFAULT_BOND = 10**16  # wei a post carries
DEFAULT_WINDOW = 3600  # seconds a posted table can be disproven


def deploy_reputation(
    client: ChainClient,
    params: Params | None = None,
    *,
    min_stake: int,
    bond: int = DEFAULT_BOND,
    window: int = DEFAULT_WINDOW,
    reward_bps: int = DEFAULT_REWARD_BPS,
) -> str:
    """Deploy a Reputation contract for ``params``; returns its address."""
    params = params or Params()
    return client.deploy(
        "Reputation",
        params_digest(params),
        params.teleport_num,
        params.teleport_den,
        params.prior,
        params.trust_scale_num,
        params.trust_scale_den,
        params.steps,
        min_stake,
        bond,
        window,
        reward_bps,
    )


def deploy_gate(client: ChainClient, reputation: str, threshold: int) -> Contract:
    """Deploy a ReputationGate (an example consumer: it admits a subject whose proven
    score in a final table of ``reputation`` reaches ``threshold``); the contract,
    used through ``client``'s account."""
    address = client.deploy("ReputationGate", reputation, threshold)
    return client.contract(load_contract("ReputationGate"), address)


class ReputationContract:
    """One deployed Reputation contract, used through ``client``'s account."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.contract = client.contract(load_contract("Reputation"), address)

    def join(self, stake: int) -> TxReceipt:
        return self.client.transact(self.contract.functions.join(), stake)

    def leave(self) -> TxReceipt:
        """Start unbonding (one window), after which :meth:`withdraw` pays the stake."""
        return self.client.transact(self.contract.functions.leave())

    def withdraw(self) -> TxReceipt:
        return self.client.transact(self.contract.functions.withdraw())

    def stake(self, attester: str | None = None) -> int:
        who = Web3.to_checksum_address(attester or self.client.address)
        return int(self.client.call(self.contract.functions.stake(who)))

    def post(self, table: ReputationTable, bond: int | None = None) -> TxReceipt:
        """Post ``table``'s root, with the contract's bond (or ``bond``, to be refused)."""
        value = self.bond() if bond is None else bond
        fn = self.contract.functions.post(
            table.epoch, table.score_root, table.state_root, len(table.rows)
        )
        return self.client.transact(fn, value)

    def window(self) -> int:
        """Seconds a posted table stays open to proofs."""
        return int(self.client.call(self.contract.functions.window()))

    def min_stake(self) -> int:
        return int(self.client.call(self.contract.functions.min_stake()))

    def bond(self) -> int:
        return int(self.client.call(self.contract.functions.bond()))

    def finalize(self, epoch: int) -> TxReceipt:
        return self.client.transact(self.contract.functions.finalize(epoch))

    def is_final(self, epoch: int) -> bool:
        return bool(self.client.call(self.contract.functions.is_final(epoch)))

    def root(self, epoch: int) -> bytes:
        return bytes(self.client.call(self.contract.functions.roots(epoch)))

    def score_of(self, table: ReputationTable, subject: bytes, score: int | None = None) -> int:
        """The contract's answer for ``subject``'s score in ``table`` (the table's own
        score, or ``score`` to try another); reverts unless it is in a final table."""
        value = table.rows[subject].score if score is None else score
        fn = self.contract.functions.score_of(
            subject, table.epoch, value, table.score_proof(subject)
        )
        return int(self.client.call(fn))

    def prove_wrong_trust(self, table: ReputationTable, subject: bytes, step: int) -> TxReceipt:
        """Prove ``subject``'s trust at ``step`` in the posted ``table`` wrong."""
        row = table.rows[subject]
        # step 0 is checked against the pre-trust alone: no attesters named
        attesters, weights = (list(row.attesters), list(row.weights)) if step > 0 else ([], [])
        fn = self.contract.functions.prove_wrong_trust(
            *self._state_args(table, subject),
            step,
            attesters,
            weights,
            [table.rows[a].state_values(table.epoch) for a in attesters],
            [table.state_proof(a) for a in attesters],
        )
        return self.client.transact(fn)

    def prove(self, table: ReputationTable, wrong: Wrong) -> TxReceipt:
        """Prove the value :func:`~trustmesh.reputation.check.first_provable` found."""
        if wrong.kind == "trust":
            return self.prove_wrong_trust(table, wrong.subject, wrong.step)
        return self.prove_wrong_score(table, wrong.subject)

    def prove_wrong_score(self, table: ReputationTable, subject: bytes) -> TxReceipt:
        fn = self.contract.functions.prove_wrong_score(
            *self._state_args(table, subject),
            table.rows[subject].score,
            table.score_proof(subject),
        )
        return self.client.transact(fn)

    def prove_wrong_count(self, table: ReputationTable, subject: bytes) -> TxReceipt:
        fn = self.contract.functions.prove_wrong_count(*self._state_args(table, subject))
        return self.client.transact(fn)

    def prove_broken_chain(self, table: ReputationTable, first: bytes, second: bytes) -> TxReceipt:
        row = table.rows[second]
        fn = self.contract.functions.prove_broken_chain(
            *self._state_args(table, first),
            row.state_values(table.epoch),
            table.state_proof(second),
        )
        return self.client.transact(fn)

    @staticmethod
    def _state_args(table: ReputationTable, subject: bytes) -> list[Any]:
        """(meta, meta proof, the subject's state leaf, its proof)."""
        meta = table.meta_values[1:]  # the struct has no META tag
        return [
            meta,
            table.meta_proof(),
            table.rows[subject].state_values(table.epoch),
            table.state_proof(subject),
        ]
