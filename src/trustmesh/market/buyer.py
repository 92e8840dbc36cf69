"""A consumer buying a device's readings from a node over HTTP 402.

The buyer asks ``GET /v1/devices/{did}/readings``; a priced device answers 402
with x402's ``PAYMENT-REQUIRED``. The buyer opens a channel to the node for the
device once (or reuses the one it has), signs the next cumulative voucher for
the price asked, sends it in ``PAYMENT-SIGNATURE`` (x402's client picks the
scheme and encodes the payload), and checks every proof bundle it gets before
counting a reading as bought. It never promises more than its budget: a
request whose price would take it over is not paid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from eth_account.signers.local import LocalAccount
from web3 import Web3
from x402 import PaymentRequired, PaymentRequirements, SpendControls
from x402.client import x402ClientSync
from x402.http import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.signers import EthAccountSigner

from trustmesh.bundle import ChainLookup, verify_bundle
from trustmesh.chain.channels import NATIVE, ChannelsContract
from trustmesh.chain.client import ChainClient
from trustmesh.chain.safe import SafeContract, owner_signature, pack_signatures, safe_message_hash
from trustmesh.errors import ChainError, Error, InvalidVoucher
from trustmesh.market.ledger import DEFAULT_MARGIN
from trustmesh.market.vouchers import SafeSigners, Voucher, check_safe, sign, signer
from trustmesh.market.x402_channel import SCHEME, ChannelClientScheme, ChannelPayment, network

__all__ = ["Bought", "Buyer", "OverBudget"]

DEFAULT_LIFETIME = 24 * 3600  # seconds a channel the buyer opens stays open
_APPROVE_ABI = [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
]  # fmt: skip


class OverBudget(Error):
    """The next request would take the buyer over its budget."""


@dataclass
class Bought:
    """What a purchase got: the readings' bundles (each verified) and their cost."""

    did: str
    bundles: list[dict[str, Any]] = field(default_factory=list)
    spent: int = 0
    requests: int = 0
    channel: int | None = None


class Payer(Protocol):
    """Who pays: opens channels and signs their vouchers."""

    @property
    def address(self) -> str: ...

    def open_channel(
        self, channels: ChannelsContract, device: bytes, payee: str, deposit: int, expiry: int,
        token: str,
    ) -> int:  # fmt: skip
        """Open a channel in ``token`` to ``payee`` for ``device``; returns its id."""
        ...

    def sign(self, voucher: Voucher) -> bytes: ...

    def signed(self, voucher: Voucher, signature: bytes) -> bool:
        """Whether ``signature`` is this payer's own of ``voucher``."""
        ...


class AccountPayer:
    """An EOA pays: the client's account."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client

    @property
    def address(self) -> str:
        return self.client.address

    def open_channel(
        self, channels: ChannelsContract, device: bytes, payee: str, deposit: int, expiry: int,
        token: str,
    ) -> int:  # fmt: skip
        if token != NATIVE:  # the deposit is drawn by the contract: approve it first
            erc20 = self.client.w3.eth.contract(address=Web3.to_checksum_address(token),
                                                abi=_APPROVE_ABI)  # fmt: skip
            self.client.transact(erc20.functions.approve(channels.address, deposit))
        return ChannelsContract(self.client, channels.address).open_for(
            device, payee, deposit, expiry, token
        )

    def sign(self, voucher: Voucher) -> bytes:
        return sign(voucher, self.client.account)

    def signed(self, voucher: Voucher, signature: bytes) -> bool:
        try:
            return signer(voucher, signature) == self.client.address
        except InvalidVoucher:
            return False


class SafePayer:
    """A Safe pays: its owners (EOAs, enough for its threshold) sign the channel's
    opening as a Safe transaction and each voucher as the Safe's EIP-1271 message."""

    def __init__(self, safe: SafeContract, owners: list[LocalAccount]) -> None:
        self.safe = safe
        self.owners = owners

    @property
    def address(self) -> str:
        return self.safe.address

    def open_channel(
        self, channels: ChannelsContract, device: bytes, payee: str, deposit: int, expiry: int,
        token: str,
    ) -> int:  # fmt: skip
        if token != NATIVE:
            raise ValueError("this Safe payer pays in the native currency")
        call = channels.contract.functions.open_for(
            device, Web3.to_checksum_address(payee), NATIVE, deposit, expiry
        )
        data = bytes.fromhex(call._encode_transaction_data()[2:])
        digest = self.safe.tx_hash(channels.address, deposit, data)
        receipt = self.safe.execute(
            channels.address, deposit, data, [owner_signature(o, digest) for o in self.owners]
        )
        return channels.opened(receipt)

    def sign(self, voucher: Voucher) -> bytes:
        message = safe_message_hash(voucher.domain.chain_id, self.safe.address, voucher.digest())
        return pack_signatures([owner_signature(o, message) for o in self.owners])

    def signed(self, voucher: Voucher, signature: bytes) -> bool:
        """Signed by enough of the Safe's owners (as the chain lists them now)."""
        client, contract = self.safe.client, self.safe.contract
        owners = frozenset(client.call(contract.functions.getOwners()))
        threshold = int(client.call(contract.functions.getThreshold()))
        try:
            check_safe(voucher, signature, SafeSigners(self.safe.address, owners, threshold))
        except InvalidVoucher:
            return False
        return True


class Buyer:
    """Buys readings from the node at ``node_url``, spending at most ``budget`` wei
    over the buyer's life; ``payer`` pays (default: ``client``'s account; a device
    pays from its own account with :class:`trustmesh.device.wallet.WalletPayer`),
    ``client`` reads the chain."""

    def __init__(
        self,
        client: ChainClient,
        node_url: str,
        budget: int,
        *,
        payer: Payer | None = None,
        scheme: str = SCHEME,
        deposit: int | None = None,
        lifetime: int = DEFAULT_LIFETIME,
        chain: ChainLookup | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        if budget <= 0:
            raise ValueError("a budget must be positive")
        self.client = client
        self.payer = payer or AccountPayer(client)
        self.base = node_url.rstrip("/")
        self.budget = budget
        self.deposit = deposit or budget
        self.lifetime = lifetime
        self.chain = chain
        self.http = http or httpx.Client(timeout=30.0)
        info = self._json(self.http.get(f"{self.base}/v1/log"))
        if int(info["chain_id"]) != client.chain_id:
            raise ChainError(f"the node is on chain {info['chain_id']}, not {client.chain_id}")
        try:
            address = info["contracts"]["Channels"]
        except (KeyError, TypeError):
            raise Error("the node sells nothing: its deployment has no Channels") from None
        self.channels = ChannelsContract(client, address)
        self.verifier_key = str(info["verifier_key"])
        self.spent = 0  # promised in vouchers the node kept
        self._confirmed: dict[int, int] = {}  # channel -> cumulative the node kept
        self._signed: dict[int, int] = {}  # channel -> the last cumulative amount signed
        self._channels: dict[tuple[str, bytes], int] = {}  # (node, device) -> channel
        self.scheme = scheme
        self._x402 = x402ClientSync()
        if scheme == SCHEME:
            self._x402.register(network(client.chain_id), ChannelClientScheme(self._pay))
        elif scheme == "exact" and payer is None:  # (an EOA signs EIP-3009 transfers)
            signer = ExactEvmClientScheme(EthAccountSigner(client.account))
            self._x402.register(network(client.chain_id), signer)
        else:
            raise ValueError(f"a buyer pays by {SCHEME!r}, or by 'exact' from its own account")
        # Any asset the node names: the budget, checked before each payment, is the control.
        self._x402.set_spend_controls(
            SpendControls(allowed_assets=True, max_amount_per_payment=False)
        )

    def buy(self, did: str, limit: int = 100) -> Bought:
        """Buy the device's latest ``limit`` readings (one request), each bundle
        verified (a failing one raises Error naming the step)."""
        bought = Bought(did)
        url = f"{self.base}/v1/devices/{did}/readings"
        params = {"limit": str(limit)}
        answer = self.http.get(url, params=params)
        if answer.status_code == 402:
            answer = self._paid(url, params, answer, bought)
        document = self._json(answer)
        for bundle in document.get("readings", []):
            report = verify_bundle(bundle, verifier_key=self.verifier_key, chain=self.chain)
            if not report.valid:
                raise Error(f"a bought reading fails its proof at step {report.failed!r}")
            bought.bundles.append(bundle)
        bought.requests += 1
        return bought

    def _paid(
        self, url: str, params: dict[str, str], answer: httpx.Response, bought: Bought
    ) -> httpx.Response:
        header = answer.headers.get("payment-required")
        if header is None:
            raise Error(f"the node answered 402 without PAYMENT-REQUIRED: {answer.text[:200]}")
        required = decode_payment_required_header(header)
        if not isinstance(required, PaymentRequired):
            raise Error("the node answered with an x402 v1 402: trustmesh speaks v2")
        offers = [offer for offer in required.accepts if offer.scheme == self.scheme]
        if not offers:
            raise Error(f"the node does not take {self.scheme!r} payments for this")
        price = int(offers[0].amount)
        if self.spent + price > self.budget:
            raise OverBudget(
                f"{price} more would take the buyer over its budget "
                f"({self.spent} of {self.budget} spent)"
            )
        required.accepts = offers
        payload = self._x402.create_payment_payload(required)
        signature = encode_payment_signature_header(payload)
        paid = self.http.get(url, params=params, headers={"PAYMENT-SIGNATURE": signature})
        response = paid.headers.get("payment-response")
        if paid.status_code != 200 or response is None:
            reason: object = paid.status_code
            if "payment-required" in paid.headers:
                reason = decode_payment_required_header(paid.headers["payment-required"]).error
            raise InvalidVoucher(f"the node refused the payment: {reason}")
        settled = decode_payment_response_header(response)
        extra = settled.extra or {}
        if self.scheme != SCHEME:  # settled on-chain, this one payment
            self.spent += price
            bought.spent += price
            return paid
        try:
            channel, cumulative = int(extra["channel"]), int(extra["amount"])
        except (KeyError, TypeError, ValueError):
            raise Error("the node's PAYMENT-RESPONSE names no channel and amount") from None
        if self._signed.get(channel) != cumulative:
            raise Error(
                f"the node says it kept {cumulative} on channel {channel}, "
                f"not the {self._signed.get(channel)} signed"
            )
        added = cumulative - self._confirmed.get(channel, 0)
        self._confirmed[channel] = cumulative
        self.spent += added
        bought.spent += added
        bought.channel = channel
        return paid

    def _pay(self, requirements: PaymentRequirements) -> ChannelPayment:
        price = int(requirements.amount)
        extra = requirements.extra or {}
        if extra.get("channels", "").lower() != self.channels.address.lower():
            raise InvalidVoucher("the node asks for payment to another Channels contract")
        device = bytes.fromhex(str(extra["device"]).removeprefix("0x"))
        channel = self._channel(requirements.pay_to, device, price, requirements.asset)
        amount = self._confirmed.get(channel, 0) + price
        signature = self.payer.sign(Voucher(self.channels.domain(), channel, amount))
        self._signed[channel] = amount
        return ChannelPayment(channel, amount, signature, self.payer.address)

    def price(self, did: str) -> int:
        """The device's price per reading at the node (0: free), from its 402."""
        answer = self.http.get(f"{self.base}/v1/devices/{did}/readings", params={"limit": "1"})
        if answer.status_code != 402:
            self._json(answer)  # (a problem, say an unknown device, raises here)
            return 0
        header = answer.headers.get("payment-required")
        if header is None:
            raise Error("the node answered 402 without PAYMENT-REQUIRED")
        required = decode_payment_required_header(header)
        for offer in required.accepts:
            if offer.scheme == SCHEME and offer.extra and "pricePerReading" in offer.extra:
                return int(offer.extra["pricePerReading"])
        raise Error("the node offers no trustmesh-channel payment for this device")

    def _channel(self, payee: str, device: bytes, price: int, token: str) -> int:
        """The open channel to ``payee`` for ``device`` with room for ``price`` (one
        this buyer opened before, even in an earlier run, resumed from what the node
        holds of it), or a new one (its deposit what is left of the budget, at most
        ``deposit``)."""
        key = (Web3.to_checksum_address(payee), device)
        known = self._channels.get(key)
        for channel in [known] if known is not None else self._opened(key[0]):
            found = self.channels.channel(channel)
            if channel not in self._confirmed:
                self._confirmed[channel] = max(self._held(channel), found.paid)
            room = found.deposit - self._confirmed[channel]
            fresh = found.expiry > time.time() + 2 * DEFAULT_MARGIN
            usable = found.device == device and found.token.lower() == token.lower()
            if usable and not found.closed and fresh and room >= price:
                self._channels[key] = channel
                return channel
        deposit = min(self.deposit, self.budget - self.spent)
        chain_now = int(self.client.w3.eth.get_block("latest")["timestamp"])
        expiry = max(int(time.time()), chain_now) + self.lifetime
        channel = self.payer.open_channel(self.channels, device, key[0], deposit, expiry, token)
        self._channels[key] = channel
        self._confirmed[channel] = 0
        return channel

    def _held(self, channel: int) -> int:
        """What the node holds of a channel this buyer opened before: the amount of
        the best voucher it accepted, whose signature must be the payer's own (a
        node cannot make the buyer resume from more than it signed)."""
        held = self._json(self.http.get(f"{self.base}/v1/channels/{channel}"))
        try:
            accepted = int(held["accepted"])
            signature = bytes.fromhex(str(held["signature"]).removeprefix("0x"))
        except (KeyError, TypeError, ValueError):
            raise Error(f"the node's record of channel {channel} is malformed") from None
        voucher = Voucher(self.channels.domain(), channel, accepted)
        if accepted and not self.payer.signed(voucher, signature):
            raise Error(f"the node claims a voucher for {accepted} on channel {channel} "
                        "that the payer never signed")  # fmt: skip
        return accepted

    def _opened(self, payee: str) -> list[int]:
        """Channels this buyer opened to ``payee``, newest first (from the chain's logs)."""
        opened = self.channels.contract.events.Opened()
        with self.client.errors("reading the buyer's channels"):
            logs = opened.get_logs(
                from_block=0,
                argument_filters={"payer": self.payer.address, "payee": payee},
            )
        return sorted((int(log["args"]["channel"]) for log in logs), reverse=True)

    @staticmethod
    def _json(answer: httpx.Response) -> dict[str, Any]:
        try:
            document = answer.raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Error(f"the node answered {answer.status_code}: {answer.text[:200]}") from exc
        if not isinstance(document, dict):
            raise Error("the node's answer is not a JSON object")
        return document
