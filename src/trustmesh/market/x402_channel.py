"""``trustmesh-channel``: an x402 payment scheme over trustmesh's Channels
contract, shaped after x402's ``batch-settlement`` vouchers.

A request's ``PAYMENT-SIGNATURE`` carries a cumulative EIP-712 voucher
(``Voucher(uint256 channel,uint256 amount)`` under the Channels domain, see
:mod:`trustmesh.market.vouchers`) for a channel the payer opened to the node for
the device: ``amount`` is everything owed on the channel so far, so each request
adds its price and no request costs a transaction. The node checks the voucher
off-chain (the facilitator side's ``verify``), keeps it once the readings are
served (the server side's ``before_settle``, which answers for the settlement
itself: settlement is deferred and batched) and settles the best voucher of each
channel now and then. The buyer's side (``create_payment_payload``) signs the
next voucher.

The three classes are the x402 scheme interfaces (``SchemeNetworkClient``,
``SchemeNetworkServer``, ``SchemeNetworkFacilitator``), each given the function
that does the role's work, so the roles' state stays with the roles.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_address, to_checksum_address
from x402 import (
    AbortResult,
    AssetAmount,
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SkipSettleResult,
    SupportedKind,
    VerifyResponse,
)
from x402.payment_flow import AUTHORIZATION_PAYMENT_FLOW
from x402.schemas.hooks import SettleContext

from trustmesh.errors import InvalidVoucher

__all__ = [
    "SCHEME",
    "ChannelClientScheme",
    "ChannelFacilitatorScheme",
    "ChannelPayment",
    "ChannelServerScheme",
    "network",
]

SCHEME = "trustmesh-channel"
UINT256 = 1 << 256


def network(chain_id: int) -> str:
    """x402's (CAIP-2) name of an EVM chain."""
    return f"eip155:{chain_id}"


@dataclass(frozen=True)
class ChannelPayment:
    """The payload of one payment: the channel's cumulative voucher and its payer."""

    channel: int
    amount: int  # cumulative, in the channel's token
    signature: bytes
    payer: str  # the channel's payer: an EOA, or a contract (a device account, a Safe)

    def to_payload(self) -> dict[str, Any]:
        return {
            "channel": str(self.channel),
            "amount": str(self.amount),
            "signature": "0x" + self.signature.hex(),
            "payer": to_checksum_address(self.payer),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ChannelPayment:
        """Parse a payload; :class:`InvalidVoucher` naming what is wrong."""
        try:
            channel, amount = _uint(payload["channel"]), _uint(payload["amount"])
            signature = bytes.fromhex(str(payload["signature"]).removeprefix("0x"))
            payer = payload["payer"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidVoucher(f"a malformed channel payment: {exc!r}") from None
        if not (0 < channel < UINT256 and 0 < amount < UINT256):
            raise InvalidVoucher("a channel payment's channel and amount are uint256 above 0")
        if not isinstance(payer, str) or not is_address(payer):
            raise InvalidVoucher("a channel payment's payer is not an address")
        if not 0 < len(signature) <= 1024:
            raise InvalidVoucher("a channel payment's signature is 1 to 1024 bytes")
        return cls(channel, amount, signature, to_checksum_address(payer))


def _uint(value: object) -> int:
    """A payload's integer: decimal digits (as :meth:`ChannelPayment.to_payload`
    writes it) or a JSON integer; never a float (1e400 is no channel, 1.9 no amount)."""
    if type(value) is int:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ValueError(f"{value!r} is not a decimal integer")


_DIGITS = re.compile(r"[0-9]{1,78}")  # (uint256 has at most 78 digits)

Check = Callable[[ChannelPayment, PaymentRequirements], None]


class ChannelClientScheme:
    """The buyer's side: ``pay`` makes the payment for a 402's requirements."""

    scheme = SCHEME

    def __init__(self, pay: Callable[[PaymentRequirements], ChannelPayment]) -> None:
        self._pay = pay

    def create_payment_payload(self, requirements: PaymentRequirements) -> dict[str, Any]:
        return self._pay(requirements).to_payload()


class ChannelServerScheme:
    """The seller's side: prices are atomic amounts; ``keep`` records a verified
    payment before the response goes out (raising InvalidVoucher if, meanwhile,
    another request took its place), in lieu of settling it."""

    scheme = SCHEME
    default_asset_transfer_method = "default"
    payment_flows = {"default": AUTHORIZATION_PAYMENT_FLOW}  # noqa: RUF012 - x402's shape

    def __init__(self, keep: Check) -> None:
        self._keep = keep

    def parse_price(self, price: Any, network: str) -> AssetAmount:
        if isinstance(price, AssetAmount):
            return price
        raise ValueError(f"{SCHEME} prices are atomic amounts (AssetAmount), not {price!r}")

    def enhance_payment_requirements(
        self,
        requirements: PaymentRequirements,
        supported_kind: SupportedKind,
        extensions: list[str],
    ) -> PaymentRequirements:
        requirements.extra = {**(supported_kind.extra or {}), **(requirements.extra or {})}
        return requirements

    async def before_settle(self, context: SettleContext) -> SkipSettleResult | AbortResult:
        """x402's settle step, in lieu of settling: ``keep`` (a durable write) runs
        in a worker thread, off the event loop (x402 awaits a hook that is async)."""
        requirements = context.requirements
        if not isinstance(requirements, PaymentRequirements):  # (x402 v1: not this scheme)
            return AbortResult(reason="invalid_voucher", message="x402 v2 payments only")
        try:
            payment = ChannelPayment.from_payload(context.payment_payload.payload)
            await asyncio.to_thread(self._keep, payment, requirements)
        except InvalidVoucher as exc:
            return AbortResult(reason="invalid_voucher", message=str(exc))
        extra = {"channel": str(payment.channel), "amount": str(payment.amount), "deferred": True}
        settled = SettleResponse(
            success=True,
            transaction="",
            network=requirements.network,
            payer=payment.payer,
            amount=requirements.amount,
            extra=extra,
        )
        return SkipSettleResult(result=settled)


class ChannelFacilitatorScheme:
    """The node's own facilitator for the scheme: ``check`` verifies a payment
    off-chain (no chain call per request); settlement is the node's, in batches."""

    scheme = SCHEME
    caip_family = "eip155:*"

    def __init__(self, check: Check, extra: Mapping[str, Any]) -> None:
        self._check = check
        self._extra = dict(extra)

    def get_extra(self, network: str) -> dict[str, Any]:
        return dict(self._extra)

    def get_signers(self, network: str) -> list[str]:
        return []

    def verify(
        self, payload: PaymentPayload, requirements: PaymentRequirements, context: Any = None
    ) -> VerifyResponse:
        try:
            payment = ChannelPayment.from_payload(payload.payload)
            self._check(payment, requirements)
        except InvalidVoucher as exc:
            # x402 passes the reason on to the payer (not the message): it says both
            reason = f"invalid_voucher: {exc}"
            return VerifyResponse(is_valid=False, invalid_reason=reason, invalid_message=str(exc))
        return VerifyResponse(is_valid=True, payer=payment.payer)

    def settle(
        self, payload: PaymentPayload, requirements: PaymentRequirements, context: Any = None
    ) -> SettleResponse:
        return SettleResponse(
            success=False, error_reason="deferred_settlement", transaction="",
            network=requirements.network,
        )  # fmt: skip
