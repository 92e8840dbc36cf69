"""A payee's ledger of its channels: each request's voucher checked off-chain, in
microseconds and without a chain call, and the best voucher of each channel kept
until it is settled in a batch.

A voucher is accepted when it is for a channel the payee tracks, open and not
about to expire (``margin`` seconds are left to settle it), signed by the
channel's payer (an EOA's ECDSA, or a device's own P-256 key), within the
deposit, and above the best voucher so far by at least the request's price:
so a replayed voucher, one below the last, or one that pays too little is
refused by name and changes nothing.

>>> from eth_account import Account
>>> from trustmesh.market.vouchers import Domain, Voucher, sign
>>> payer = Account.from_key(b"\\x02" * 32)
>>> ledger = Ledger(Domain(31337, "0x" + "11" * 20))
>>> ledger.track(1, Terms(payer.address, deposit=1_000, expiry=10_000))
>>> voucher = Voucher(ledger.domain, 1, 30)
>>> ledger.accept(1, 30, sign(voucher, payer), price=30, now=5_000)
30
>>> ledger.to_settle()  # doctest: +ELLIPSIS
[(1, 30, b'...')]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_utils.address import to_checksum_address

from trustmesh.errors import InvalidVoucher
from trustmesh.identity import PublicKey
from trustmesh.market.vouchers import (
    Domain,
    SafeSigners,
    Voucher,
    check_device,
    check_safe,
    signer,
)

__all__ = ["Ledger", "Terms"]

DEFAULT_MARGIN = 300  # seconds before the expiry from which no voucher is accepted


@dataclass
class Terms:
    """A channel as the chain says it was opened (and topped up, settled)."""

    payer: str | PublicKey | SafeSigners  # an EOA (any case), a device's key, or a Safe
    deposit: int
    expiry: int  # a timestamp
    paid: int = 0  # settled on-chain so far
    closed: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.payer, str):
            try:
                self.payer = to_checksum_address(self.payer)
            except ValueError:
                raise InvalidVoucher(f"not a payer address: {self.payer!r}") from None


@dataclass
class _Best:
    amount: int = 0
    signature: bytes = b""


@dataclass
class Ledger:
    """One payee's channels on one Channels contract (``domain``)."""

    domain: Domain
    margin: int = DEFAULT_MARGIN
    _terms: dict[int, Terms] = field(default_factory=dict)
    _best: dict[int, _Best] = field(default_factory=dict)

    def track(self, channel: int, terms: Terms) -> None:
        """Start (or update, after a top-up or a settlement) tracking ``channel``."""
        self._terms[channel] = terms
        best = self._best.setdefault(channel, _Best())
        if terms.paid > best.amount:
            self._best[channel] = _Best(terms.paid)

    def accept(self, channel: int, amount: int, signature: bytes, *, price: int, now: int) -> int:
        """Check a request's voucher for ``amount`` (cumulative) against ``price``;
        keep it and return what it adds, or raise :class:`InvalidVoucher`."""
        added = self.check(channel, amount, signature, price=price, now=now)
        self.keep(channel, amount, signature)
        return added

    def keep(self, channel: int, amount: int, signature: bytes) -> None:
        """Take a voucher :meth:`check` passed as the channel's best (under the same
        lock as the check: nothing may have moved in between)."""
        self._best[channel] = _Best(amount, signature)

    def check(self, channel: int, amount: int, signature: bytes, *, price: int, now: int) -> int:
        """What :meth:`accept` checks, keeping nothing: what the voucher would add."""
        terms = self._terms.get(channel)
        if terms is None:
            raise InvalidVoucher(f"unknown channel {channel}")
        if terms.closed:
            raise InvalidVoucher(f"channel {channel} is closed")
        if now >= terms.expiry - self.margin:
            raise InvalidVoucher(f"channel {channel} expires too soon to settle a voucher")
        if amount > terms.deposit:
            raise InvalidVoucher(f"a voucher for {amount} is over the deposit of {terms.deposit}")
        best = self._best[channel]
        if amount <= best.amount:
            raise InvalidVoucher(f"a voucher for {amount} is not above the last, {best.amount}")
        if amount - best.amount < price:
            raise InvalidVoucher(
                f"a voucher adding {amount - best.amount} is under the price {price}"
            )
        voucher = Voucher(self.domain, channel, amount)
        if isinstance(terms.payer, PublicKey):
            check_device(voucher, signature, terms.payer)
        elif isinstance(terms.payer, SafeSigners):
            check_safe(voucher, signature, terms.payer)
        elif signer(voucher, signature) != terms.payer:
            raise InvalidVoucher("the voucher is not signed by the channel's payer")
        return amount - best.amount

    def restore(self, channel: int, amount: int, signature: bytes) -> None:
        """Take back a voucher accepted before a restart (the channel tracked first)."""
        if channel in self._terms and amount > self.best(channel):
            self._best[channel] = _Best(amount, signature)

    def terms(self, channel: int) -> Terms | None:
        return self._terms.get(channel)

    def best_signature(self, channel: int) -> bytes:
        found = self._best.get(channel)
        return b"" if found is None else found.signature

    def settled_amount(self, channel: int) -> int:
        terms = self._terms.get(channel)
        return 0 if terms is None else terms.paid

    def tracks(self, channel: int) -> bool:
        return channel in self._terms

    def best(self, channel: int) -> int:
        """The highest voucher accepted on ``channel`` (or what was settled), 0 if none."""
        found = self._best.get(channel)
        return 0 if found is None else found.amount

    def to_settle(self) -> list[tuple[int, int, bytes]]:
        """(channel, amount, signature) of each channel whose best voucher is above
        what was settled: one settlement each pays every request since the last."""
        return [
            (channel, best.amount, best.signature)
            for channel, best in sorted(self._best.items())
            if best.amount > self._terms[channel].paid and not self._terms[channel].closed
        ]

    def settled(self, channel: int, amount: int) -> None:
        """Record that ``amount`` (cumulative) was settled on-chain."""
        terms = self._terms[channel]
        terms.paid = max(terms.paid, amount)
