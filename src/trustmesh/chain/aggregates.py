"""The Aggregates contract through a client: post a claim with its bond, read a
claim's state and final result, release a final claim's bond (or collect one
its claimer refused), and submit the proof of a lie
(:mod:`trustmesh.aggregate.challenge` makes the arguments)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxReceipt

from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.chain.defaults import DEFAULT_CLAIM_BOND, DEFAULT_CLAIM_WINDOW
from trustmesh.errors import ChainError

__all__ = ["AggregatesContract", "ClaimState", "Posted", "deploy_aggregates"]

STATES = {0: "none", 1: "pending", 2: "refuted", 3: "final"}


def deploy_aggregates(
    client: ChainClient,
    log_anchor: str,
    disputes: str,
    *,
    bond: int = DEFAULT_CLAIM_BOND,
    window: int = DEFAULT_CLAIM_WINDOW,
) -> dict[str, str]:
    """Deploy the model evaluator and the Aggregates contract: their addresses."""
    model = client.deploy("AggregateModel")
    aggregates = client.deploy("Aggregates", log_anchor, disputes, model, bond, window)
    return {"AggregateModel": model, "Aggregates": aggregates}


@dataclass(frozen=True)
class ClaimState:
    state: str  # none, pending, refuted, final
    claimer: str
    deadline: int
    final: bool  # its result can be read (final, or pending past its deadline)


@dataclass(frozen=True)
class Posted:
    """A claim as its Posted event tells it."""

    claim_id: bytes
    claimer: str
    query_hash: bytes
    root: bytes
    result: int
    count: int
    sizes: tuple[int, ...]
    deadline: int
    uri: str
    block: int


class AggregatesContract:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.contract = client.contract(load_contract("Aggregates"), address)

    @property
    def bond(self) -> int:
        return int(self.client.call(self.contract.functions.bond()))

    @property
    def window(self) -> int:
        return int(self.client.call(self.contract.functions.window()))

    def post(
        self,
        claim: tuple[Any, Sequence[int], bytes],
        result: int,
        count: int,
        uri: str,
    ) -> tuple[bytes, TxReceipt]:
        """Post ``claim`` ((query, sizes, root) as the contract takes them) with the
        bond; returns the claim's id and the receipt."""
        query, sizes, root = claim
        fn = self.contract.functions.post(query, list(sizes), root, result, count, uri)
        receipt = self.client.transact(fn, self.bond)
        (event,) = self.contract.events.Posted().process_receipt(receipt, errors=DISCARD)
        return bytes(event["args"]["claim_id"]), receipt

    def state(self, claim_id: bytes) -> ClaimState:
        state, claimer, deadline = self.client.call(self.contract.functions.status(claim_id))
        block = self.client.w3.eth.get_block("latest")
        final = state == 3 or (state == 1 and int(block["timestamp"]) >= deadline)
        return ClaimState(STATES[int(state)], str(claimer), int(deadline), final)

    def result_of(self, claim_id: bytes) -> tuple[bytes, int]:
        query_hash, result = self.client.call(self.contract.functions.result_of(claim_id))
        return bytes(query_hash), int(result)

    def release(self, claim_id: bytes) -> TxReceipt:
        """Make a claim past its window final and pay its claimer the bond (a
        claimer that refuses it is owed it)."""
        return self.client.transact(self.contract.functions.release(claim_id))

    def owed(self, claimer: str) -> int:
        """The bonds ``claimer`` refused at release and has not collected yet."""
        fn = self.contract.functions.owed(Web3.to_checksum_address(claimer))
        return int(self.client.call(fn))

    def collect(self) -> TxReceipt:
        """Take the bonds this client's account refused at release."""
        return self.client.transact(self.contract.functions.collect())

    def challenge(
        self, claim: tuple[Any, Sequence[int], bytes], method: str, args: Sequence[Any]
    ) -> TxReceipt:
        """Submit the proof of a lie: ``method`` with ``args`` after the claim's own."""
        query, sizes, root = claim
        try:
            function = self.contract.get_function_by_name(method)
        except ValueError:
            raise ChainError(f"the Aggregates contract has no {method}") from None
        return self.client.transact(function(query, list(sizes), root, *args))

    def refuted(self, receipt: TxReceipt) -> dict[str, Any]:
        """The Refuted event a successful challenge logged."""
        (event,) = self.contract.events.Refuted().process_receipt(receipt, errors=DISCARD)
        return dict(event["args"])

    def posted(self, from_block: int = 0, to_block: int | str = "latest") -> list[Posted]:
        """Every claim posted in the blocks given."""
        with self.client.errors("reading claims"):
            events = self.contract.events.Posted().get_logs(
                from_block=from_block, to_block=to_block
            )
        return [
            Posted(bytes(a["claim_id"]), str(a["claimer"]), bytes(a["query_hash"]),
                   bytes(a["root"]), int(a["result"]), int(a["count"]), tuple(a["sizes"]),
                   int(a["deadline"]), str(a["uri"]), int(e["blockNumber"]))
            for e in events
            for a in [e["args"]]
        ]  # fmt: skip
