"""The Channels contract, through a client: open, top up, settle and close
payment channels, and take back what is left after the expiry
(:mod:`trustmesh.market.vouchers` makes and checks the vouchers)."""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.logs import DISCARD
from web3.types import TxReceipt

from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import load_contract
from trustmesh.errors import ChainError
from trustmesh.market.vouchers import Domain

__all__ = ["NATIVE", "Channel", "ChannelsContract", "deploy_channels"]

NATIVE = "0x" + "00" * 20  # the token of a channel in the chain's native currency


def deploy_channels(client: ChainClient, registry: str = NATIVE) -> str:
    """Deploy a Channels contract; returns its address. With a ``registry``,
    channels can be opened for a device (:meth:`ChannelsContract.open_for`)."""
    return client.deploy("Channels", Web3.to_checksum_address(registry))


@dataclass(frozen=True)
class Channel:
    """A channel as the contract holds it."""

    payer: str
    payee: str
    token: str
    deposit: int
    paid: int
    expiry: int
    closed: bool
    device: bytes = bytes(32)  # the device whose readings it buys (zeros: none)
    node_bps: int = 0  # the payee's share of each payment, for a device (else it gets all)


class ChannelsContract:
    """One deployed Channels contract, used through ``client``'s account."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.contract = client.contract(load_contract("Channels"), address)

    def domain(self) -> Domain:
        """Where this contract's vouchers are good."""
        return Domain(int(self.client.w3.eth.chain_id), self.address)

    def open(self, payee: str, deposit: int, expiry: int, token: str = NATIVE) -> int:
        """Open a channel (an ERC-20's deposit approved beforehand); returns its id."""
        value = deposit if token == NATIVE else 0
        fn = self.contract.functions.open(
            Web3.to_checksum_address(payee), Web3.to_checksum_address(token), deposit, expiry
        )
        return self.opened(self.client.transact(fn, value))

    def open_for(
        self, device: bytes, payee: str, deposit: int, expiry: int, token: str = NATIVE
    ) -> int:
        """Open a channel to the node ``payee`` buying the readings of the device with
        Registry id ``device``; returns its id."""
        value = deposit if token == NATIVE else 0
        fn = self.contract.functions.open_for(
            device, Web3.to_checksum_address(payee), Web3.to_checksum_address(token), deposit,
            expiry,
        )  # fmt: skip
        return self.opened(self.client.transact(fn, value))

    def owed(self, owner: str, token: str = NATIVE) -> int:
        """What sales have credited ``owner`` and it has not withdrawn yet."""
        fn = self.contract.functions.owed(
            Web3.to_checksum_address(token), Web3.to_checksum_address(owner)
        )
        return int(self.client.call(fn))

    def withdraw(self, token: str = NATIVE) -> TxReceipt:
        return self.client.transact(
            self.contract.functions.withdraw(Web3.to_checksum_address(token))
        )

    def opened(self, receipt: TxReceipt, payer: str | None = None) -> int:
        """The id of the channel a transaction opened (for ``payer``, where a bundle
        of several senders' operations may have opened others too)."""
        events = self.contract.events.Opened().process_receipt(receipt, errors=DISCARD)
        mine = [e for e in events if payer is None or e["args"]["payer"] == payer]
        if len(mine) != 1:
            raise ChainError(f"the transaction opened {len(mine)} channels for {payer}")
        return int(mine[0]["args"]["channel"])

    def top_up(self, channel: int, amount: int, expiry: int) -> TxReceipt:
        value = amount if self.channel(channel).token == NATIVE else 0
        return self.client.transact(self.contract.functions.top_up(channel, amount, expiry), value)

    def settle(self, channel: int, amount: int, signature: bytes) -> TxReceipt:
        return self.client.transact(self.contract.functions.settle(channel, amount, signature))

    def close(self, channel: int, amount: int, signature: bytes = b"") -> TxReceipt:
        return self.client.transact(self.contract.functions.close(channel, amount, signature))

    def refund(self, channel: int) -> TxReceipt:
        return self.client.transact(self.contract.functions.refund(channel))

    def channel(self, channel: int) -> Channel:
        fields = self.client.call(self.contract.functions.channels(channel))
        payer, payee, token, deposit, paid, expiry, closed, device, node_bps = fields
        return Channel(
            Web3.to_checksum_address(payer), Web3.to_checksum_address(payee),
            Web3.to_checksum_address(token), int(deposit), int(paid), int(expiry), bool(closed),
            bytes(device), int(node_bps),
        )  # fmt: skip

    def voucher_digest(self, channel: int, amount: int) -> bytes:
        return bytes(self.client.call(self.contract.functions.voucher_digest(channel, amount)))
