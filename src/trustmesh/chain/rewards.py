"""The Rewards contract and its pools, through a client: fund a pool with a
distribution's root (it becomes a RewardPool contract of its own), claim shares
with their proofs, take back what is left after the expiry
(:mod:`trustmesh.market.rewards` computes the distribution)."""

from __future__ import annotations

from collections.abc import Sequence

from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from trustmesh.chain.channels import NATIVE
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract

__all__ = ["RewardsContract", "deploy_rewards"]


def deploy_rewards(client: ChainClient) -> str:
    """Deploy the pools' implementation and the Rewards factory; returns the latter."""
    return client.deploy("Rewards", client.deploy("RewardPool"))


class RewardsContract:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.contract = client.contract(load_contract("Rewards"), address)

    def fund(self, epoch: int, root: bytes, total: int, expiry: int, token: str = NATIVE) -> str:
        """Put up a pool (native: ``total`` sent along); returns its address."""
        fn = self.contract.functions.fund(
            epoch, root, total, Web3.to_checksum_address(token), expiry
        )
        receipt = self.client.transact(fn, total if token == NATIVE else 0)
        (event,) = self.contract.events.Funded().process_receipt(receipt, errors=DISCARD)
        return str(event["args"]["pool"])

    def claim(
        self, pool: str, index: int, account: str, amount: int, proof: Sequence[bytes]
    ) -> TxReceipt:
        fn = self._pool(pool).functions.claim(
            index, Web3.to_checksum_address(account), amount, list(proof)
        )
        return self.client.transact(fn)

    def is_claimed(self, pool: str, index: int) -> bool:
        return bool(self.client.call(self._pool(pool).functions.is_claimed(index)))

    def reclaim(self, pool: str) -> TxReceipt:
        return self.client.transact(self._pool(pool).functions.reclaim())

    def _pool(self, pool: str) -> Contract:
        return self.client.contract(load_contract("RewardPool"), pool)
