"""The node sells priced devices' readings over HTTP 402, as x402 v2 does.

A device's owner sets a price per reading and the node's share in the Registry.
``GET /v1/devices/{did}/readings`` on a priced device answers 402 with x402's
``PAYMENT-REQUIRED`` (the ``trustmesh-channel`` scheme, :mod:`trustmesh.market.x402_channel`)
until the request carries a voucher for the price of the readings it asks for;
then it serves them with their proof bundles and x402's ``PAYMENT-RESPONSE``.
Each voucher is checked off-chain (the channel's terms are read from the chain
once per channel, never per request), kept durably before the readings go out,
and the best voucher of each channel is settled in a batch every
``settle_seconds``, which pays the node its share and credits the owner the rest.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from web3 import Web3
from x402 import AssetAmount, PaymentRequirements, x402FacilitatorSync, x402ResourceServer
from x402.http import (
    HTTPRequestContext,
    PaymentOption,
    RouteConfig,
    x402HTTPResourceServer,
)
from x402.mechanisms.evm.exact import ExactEvmServerScheme, register_exact_evm_facilitator
from x402.mechanisms.evm.signers import FacilitatorWeb3Signer

from trustmesh._problems import Problem
from trustmesh.chain.accounts import account_address, account_key
from trustmesh.chain.channels import NATIVE, ChannelsContract
from trustmesh.chain.client import ChainClient
from trustmesh.chain.safe import SafeContract
from trustmesh.chain.suite import Registry, device_id
from trustmesh.errors import ChainError, InvalidVoucher
from trustmesh.identity import PublicKey
from trustmesh.market.ledger import Ledger, Terms
from trustmesh.market.vouchers import SafeSigners
from trustmesh.market.x402_channel import (
    SCHEME,
    ChannelFacilitatorScheme,
    ChannelPayment,
    ChannelServerScheme,
    network,
)
from trustmesh.node._state import NodeState

__all__ = ["Market", "Sale"]

log = logging.getLogger(__name__)

TERMS_SECONDS = 5.0  # how long a device's price (or a channel's refusal) is taken as read
BPS = 10_000
MAX_TIMEOUT = 300
_ROUTE = "GET /v1/devices/*/readings"
_TOKEN_ABI = [
    {"type": "function", "name": n, "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]}
    for n in ("name", "version")
]  # fmt: skip


class ClientSigner(FacilitatorWeb3Signer):
    """x402's facilitator signer sending through the node's own chain client, so
    the ``exact`` settlements share its account's nonces with the anchors and the
    channel settlements (x402's signer would count them on its own)."""

    def __init__(self, client: ChainClient) -> None:  # (no super().__init__: no RPC URL)
        self._client = client
        self._account = client.account
        self._w3 = client.w3
        self._confirmation_timeout_seconds = client.timeout
        self._gas_limit = 500_000
        self._chain_id = client.chain_id
        self._nonce_lock = threading.Lock()
        self._next_nonce = None

    def write_contract(
        self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any,
        data_suffix: str | None = None,
    ) -> str:  # fmt: skip
        contract = self._w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
        receipt = self._client.transact(getattr(contract.functions, function_name)(*args))
        return "0x" + bytes(receipt["transactionHash"]).hex()

    def send_transaction(self, to: str, data: bytes) -> str:
        receipt = self._client.send_raw(to, data, "settling a payment")
        return "0x" + bytes(receipt["transactionHash"]).hex()


@dataclass(frozen=True)
class Sale:
    """A priced request: what it asks for and what it costs."""

    did: str
    readings: int
    price: int  # per reading, in ``currency``
    node_bps: int
    currency: str = NATIVE  # the native currency, or an ERC-20's address

    @property
    def amount(self) -> int:
        return self.readings * self.price


class _Adapter:
    """x402's HTTPAdapter over a Starlette request, carrying the sale it prices."""

    def __init__(self, request: Request, sale: Sale) -> None:
        self.request, self.sale = request, sale

    def get_header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def get_method(self) -> str:
        return self.request.method

    def get_path(self) -> str:
        return self.request.url.path

    def get_url(self) -> str:
        return str(self.request.url)

    def get_accept_header(self) -> str:
        return self.request.headers.get("accept", "")

    def get_user_agent(self) -> str:
        return self.request.headers.get("user-agent", "")

    def get_query_params(self) -> dict[str, str | list[str]]:
        return dict(self.request.query_params)

    def get_query_param(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def get_body(self) -> Any:
        return None


class _Facilitator:
    """x402's FacilitatorClient over the node's own (synchronous) facilitator, its
    checks run off the event loop (the first voucher of a channel reads the chain)."""

    def __init__(self, facilitator: x402FacilitatorSync) -> None:
        self._facilitator = facilitator

    async def verify(self, payload: Any, requirements: Any) -> Any:
        return await asyncio.to_thread(self._facilitator.verify, payload, requirements)

    async def settle(self, payload: Any, requirements: Any) -> Any:
        return await asyncio.to_thread(self._facilitator.settle, payload, requirements)

    def get_supported(self) -> Any:
        return self._facilitator.get_supported()


class Market:
    def __init__(
        self,
        channels: ChannelsContract,
        registry: Registry,
        state: NodeState,
        *,
        clock: Callable[[], float] = time.time,
        settle_seconds: float = 60.0,
    ) -> None:
        self.channels = channels
        self.registry = registry
        self.state = state
        self.clock = clock
        self.settle_seconds = settle_seconds
        self.payee = channels.client.address
        self.network = network(channels.client.chain_id)
        self.ledger = Ledger(channels.domain())
        self._lock = threading.Lock()
        self._terms: dict[str, tuple[float, tuple[int, int, str]]] = {}
        self._tokens: dict[str, dict[str, str] | None] = {}  # EIP-3009 tokens: EIP-712 domain
        extra = {"channels": channels.address, "name": "trustmesh Channels", "version": "1"}
        facilitator = x402FacilitatorSync()
        facilitator.register([self.network], ChannelFacilitatorScheme(self._check, extra))
        register_exact_evm_facilitator(facilitator, ClientSigner(channels.client), self.network)
        server = x402ResourceServer(_Facilitator(facilitator))
        server.register(self.network, ChannelServerScheme(self._keep))
        server.register(self.network, ExactEvmServerScheme())  # type: ignore[arg-type,no-untyped-call]
        channel = PaymentOption(
            scheme=SCHEME, network=self.network, pay_to=self.payee, price=self._price,
            max_timeout_seconds=MAX_TIMEOUT,
        )  # fmt: skip
        exact = PaymentOption(
            scheme="exact", network=self.network, pay_to=self.payee, price=self._exact_price,
            max_timeout_seconds=MAX_TIMEOUT,
        )  # fmt: skip
        # Every sale is offered over channels; a sale whose whole price goes to the node
        # (a node share of 100%: x402's `exact` pays one account) in an EIP-3009 token,
        # by `exact` too, each payment settled at once.
        self.http = {
            exact_too: x402HTTPResourceServer(server, {_ROUTE: RouteConfig(
                accepts=options, description="A device's readings", mime_type="application/json",
            )})
            for exact_too, options in ((False, [channel]), (True, [channel, exact]))
        }  # fmt: skip
        self._refused: dict[tuple[int, str, str], float] = {}  # not to read again a while
        for http in self.http.values():
            http.initialize()
        self._restore()

    # --- pricing --------------------------------------------------------------------

    def sale(self, did: str, readings: int) -> Sale | None:
        """The sale of ``readings`` of ``did``, or None if the device is free. Reads
        the chain at most every few seconds a device: run it off the event loop."""
        now = time.monotonic()
        cached = self._terms.get(did)
        if cached is None or now - cached[0] > TERMS_SECONDS:
            terms = self.registry.contract.functions.terms(device_id(did))
            _, price, node_bps, currency = self.registry.client.call(terms)
            cached = (now, (int(price), int(node_bps), Web3.to_checksum_address(currency)))
            self._terms[did] = cached
        price, node_bps, currency = cached[1]
        if price == 0:
            return None
        if currency != NATIVE and node_bps == BPS and currency not in self._tokens:
            self._tokens[currency] = self._token_domain(currency)
        return Sale(did, readings, price, node_bps, currency)

    def _token_domain(self, token: str) -> dict[str, str] | None:
        """An EIP-3009 token's EIP-712 name and version (x402's ``exact`` needs them);
        None for a token without them (sold over channels only)."""
        contract = self.channels.client.w3.eth.contract(
            address=Web3.to_checksum_address(token), abi=_TOKEN_ABI
        )
        try:
            return {
                "name": str(self.channels.client.call(contract.functions.name())),
                "version": str(self.channels.client.call(contract.functions.version())),
            }
        except ChainError:
            return None

    def _exact(self, sale: Sale) -> bool:
        return sale.node_bps == BPS and self._tokens.get(sale.currency) is not None

    def _price(self, context: HTTPRequestContext) -> AssetAmount:
        sale: Sale = context.adapter.sale  # type: ignore[attr-defined]
        return AssetAmount(
            amount=str(sale.amount), asset=sale.currency,
            extra={"device": "0x" + device_id(sale.did).hex(), "readings": sale.readings,
                   "pricePerReading": str(sale.price), "nodeBps": sale.node_bps},
        )  # fmt: skip

    def _exact_price(self, context: HTTPRequestContext) -> AssetAmount:
        sale: Sale = context.adapter.sale  # type: ignore[attr-defined]
        return AssetAmount(amount=str(sale.amount), asset=sale.currency,
                           extra=dict(self._tokens[sale.currency] or {}))  # fmt: skip

    # --- one request ----------------------------------------------------------------

    async def charge(self, request: Request, sale: Sale) -> tuple[Response | None, Any]:
        """x402 for one request: a 402 response, or None and the verified payment
        (to :meth:`settle_headers` once the readings are ready)."""
        adapter = _Adapter(request, sale)
        header = request.headers.get("payment-signature") or request.headers.get("x-payment")
        context = HTTPRequestContext(
            adapter=adapter, path=request.url.path, method=request.method, payment_header=header
        )
        if request.method != "GET":
            raise Problem("method-not-allowed", "a priced device's readings are sold to GET")
        http = self.http[self._exact(sale)]
        result = await http.process_http_request(context)
        if result.type == "payment-verified":
            return None, (http, result, context)
        instructions = result.response
        assert instructions is not None, result.type
        headers = {k: v for k, v in instructions.headers.items() if k.lower() != "content-type"}
        body = instructions.body if isinstance(instructions.body, dict) else {}
        return JSONResponse(body, instructions.status, headers), None

    async def settle_headers(self, verified: Any) -> tuple[int, dict[str, str]]:
        """Keep the payment (x402's settle step); the status and headers to send."""
        http, result, context = verified
        settled = await http.process_settlement(
            result.payment_payload, result.payment_requirements, context=context,
            declared_extensions=result.declared_extensions,
        )  # fmt: skip
        return (200 if settled.success else 402), dict(settled.headers)

    def _check(self, payment: ChannelPayment, requirements: PaymentRequirements) -> None:
        """x402's verify step, in a worker thread: the chain is read (a channel new
        to the node, or one whose voucher asks for more deposit or time than it last
        had) outside the lock the event loop's steps take."""
        channel, now = payment.channel, int(self.clock())
        with self._lock:
            terms = self.ledger.terms(channel)
        stale = (
            terms is None
            or payment.amount > terms.deposit
            or (now >= terms.expiry - self.ledger.margin)
        )  # (a top-up raises both)
        if stale:
            fresh = self._read_channel(channel, requirements)
            with self._lock:
                self.ledger.track(channel, fresh)
        with self._lock:
            self.ledger.check(
                channel, payment.amount, payment.signature, price=int(requirements.amount),
                now=now,
            )  # fmt: skip

    def _keep(self, payment: ChannelPayment, requirements: PaymentRequirements) -> None:
        """x402's settle step (in a worker thread): the voucher is checked again,
        written to disk, and only then taken as the channel's best."""
        with self._lock:
            self.ledger.check(
                payment.channel, payment.amount, payment.signature,
                price=int(requirements.amount), now=int(self.clock()),
            )  # fmt: skip
            self.state.keep_voucher(payment.channel, payment.amount, payment.signature)
            self.ledger.keep(payment.channel, payment.amount, payment.signature)

    def _read_channel(self, channel: int, requirements: PaymentRequirements) -> Terms:
        """A channel as the chain holds it, held to the request: paying this node,
        for this device, in its currency, at the node's share as it stands."""
        # (keyed by what was asked too: a bad request naming someone's channel must not
        # shut out the channel's own payer)
        key = (channel, str((requirements.extra or {}).get("device")), requirements.asset)
        refused = self._refused.get(key)
        if refused is not None and time.monotonic() - refused < TERMS_SECONDS:
            raise InvalidVoucher(f"channel {channel} was refused moments ago")
        try:
            return self._terms_of(channel, requirements)
        except InvalidVoucher:
            self._refused[key] = time.monotonic()
            raise

    def _terms_of(self, channel: int, requirements: PaymentRequirements) -> Terms:
        extra = requirements.extra or {}
        try:
            found = self.channels.channel(channel)
            if found.payer == NATIVE:
                raise InvalidVoucher(f"unknown channel {channel}")
            payer = self._payer(found.payer)
            device = bytes.fromhex(str(extra.get("device", "0x"))[2:])
            share = int(extra.get("nodeBps", BPS))
        except ChainError as exc:
            raise InvalidVoucher(f"channel {channel}: {exc}") from None
        except ValueError:
            raise InvalidVoucher("malformed payment requirements") from None
        if found.payee != self.payee:
            raise InvalidVoucher(f"channel {channel} does not pay this node")
        if found.device != device:
            raise InvalidVoucher(f"channel {channel} is not for this device")
        if found.token != Web3.to_checksum_address(requirements.asset):
            raise InvalidVoucher(f"channel {channel} is not in the device's currency")
        if found.node_bps < share:
            raise InvalidVoucher(f"channel {channel} gives the node less than its share now")
        return Terms(payer, found.deposit, found.expiry, found.paid, found.closed)

    def _payer(self, address: str) -> str | PublicKey | SafeSigners:
        """A payer as its vouchers are checked: an EOA by its address; a device
        account by its device's P-256 key; a Safe by its owners and threshold (each
        read from the chain once, when the channel is first seen; a Safe that
        changes its owners after that has its channel settled as its owners then
        sign, and a voucher the Safe no longer accepts fails to settle)."""
        client = self.channels.client
        with client.errors("reading the payer"):
            if not client.w3.eth.get_code(Web3.to_checksum_address(address)):
                return address
        try:
            key = account_key(client, address)
        except ChainError:
            return self._safe(address)
        try:
            device = PublicKey.from_cryptography(
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + key)
            )
        except ValueError:
            raise InvalidVoucher(f"the payer {address} holds no valid P-256 key") from None
        # Only a device account is taken at its word: its address follows from its key.
        if account_address(device) != Web3.to_checksum_address(address):
            raise InvalidVoucher(f"the payer {address} is not the device account of its key")
        return device

    def _safe(self, address: str) -> SafeSigners:
        safe = SafeContract(self.channels.client, address)
        try:
            owners = self.channels.client.call(safe.contract.functions.getOwners())
            threshold = int(self.channels.client.call(safe.contract.functions.getThreshold()))
        except ChainError:
            raise InvalidVoucher(
                f"the payer {address} is a contract whose vouchers this node cannot check"
            ) from None
        checksummed = frozenset(Web3.to_checksum_address(owner) for owner in owners)
        return SafeSigners(safe.address, checksummed, threshold)

    def held(self, channel: int) -> dict[str, Any]:
        """The best voucher accepted on ``channel`` (its amount and signature: a
        buyer resuming the channel checks the signature is its own) and what was
        settled (0s if this node never saw the channel)."""
        with self._lock:
            return {
                "accepted": self.ledger.best(channel),
                "signature": "0x" + self.ledger.best_signature(channel).hex(),
                "settled": self.ledger.settled_amount(channel),
            }

    # --- batches --------------------------------------------------------------------

    def settle_due(self) -> int:
        """Settle the best voucher of every channel above what was paid; returns how
        many settled (a channel that fails is left for the next batch)."""
        with self._lock:
            due = self.ledger.to_settle()
        done = 0
        for channel, amount, signature in due:
            try:
                self.channels.settle(channel, amount, signature)
            except ChainError as exc:
                log.warning(
                    "settling channel %d failed (kept for the next batch): %s", channel, exc
                )
                continue
            with self._lock:
                self.ledger.settled(channel, amount)
            done += 1
        return done

    async def run(self) -> None:
        """Settle in batches every ``settle_seconds``, until cancelled."""
        while True:
            await asyncio.sleep(self.settle_seconds)
            await asyncio.to_thread(self.settle_due)

    def _restore(self) -> None:
        """Vouchers kept before a restart: their channels tracked again, ready to settle."""
        for channel, amount, signature in self.state.vouchers():
            try:
                found = self.channels.channel(channel)
                payer = self._payer(found.payer)
            except (ChainError, InvalidVoucher) as exc:
                log.warning("channel %d of a kept voucher cannot be read: %s", channel, exc)
                continue
            terms = Terms(payer, found.deposit, found.expiry, found.paid, found.closed)
            self.ledger.track(channel, terms)
            self.ledger.restore(channel, amount, signature)
