"""A payee's ledger: each request's voucher checked off-chain; every bad one refused
by name and changing nothing; the best voucher of each channel settled in a batch."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from eth_account import Account

from trustmesh.errors import InvalidVoucher
from trustmesh.identity import SoftwareSigner
from trustmesh.market import ledger as ledger_module
from trustmesh.market.ledger import Ledger, Terms
from trustmesh.market.vouchers import Domain, Voucher, sign, sign_device

DOMAIN = Domain(31337, "0x" + "44" * 20)
PRICE = 10
NOW = 1_000_000


def test_the_docstring_example_runs() -> None:
    result = doctest.testmod(ledger_module)
    assert result.failed == 0 and result.attempted > 0


def _ledger() -> tuple[Ledger, Any]:
    payer = Account.create()
    ledger = Ledger(DOMAIN, margin=60)
    ledger.track(1, Terms(payer.address, deposit=100, expiry=NOW + 3600))
    return ledger, payer


def test_requests_pay_by_cumulative_vouchers_settled_in_one_batch() -> None:
    ledger, payer = _ledger()
    for k in range(1, 6):
        voucher = Voucher(DOMAIN, 1, k * PRICE)
        assert ledger.accept(1, k * PRICE, sign(voucher, payer), price=PRICE, now=NOW) == PRICE
    ((channel, amount, signature),) = ledger.to_settle()
    assert (channel, amount) == (1, 5 * PRICE) and len(signature) == 65
    ledger.settled(1, 5 * PRICE)
    assert ledger.to_settle() == []


def test_every_bad_voucher_is_refused_and_changes_nothing() -> None:
    ledger, payer = _ledger()
    first = sign(Voucher(DOMAIN, 1, 20), payer)
    ledger.accept(1, 20, first, price=PRICE, now=NOW)
    stranger = Account.create()
    cases = [
        ((1, 20, first), NOW, "not above the last"),  # replayed
        ((1, 25, sign(Voucher(DOMAIN, 1, 25), payer)), NOW, "under the price"),
        ((1, 30, sign(Voucher(DOMAIN, 1, 30), stranger)), NOW, "not signed by the channel's"),
        ((1, 30, sign(Voucher(Domain(1, DOMAIN.contract), 1, 30), payer)), NOW, "not signed"),
        ((1, 101, sign(Voucher(DOMAIN, 1, 101), payer)), NOW, "over the deposit"),
        ((2, 30, sign(Voucher(DOMAIN, 2, 30), payer)), NOW, "unknown channel 2"),
        ((1, 30, sign(Voucher(DOMAIN, 1, 30), payer)), NOW + 3600 - 60, "expires too soon"),
        ((1, 30, b"\x00" * 10), NOW, "65 bytes"),
    ]
    for (channel, amount, signature), now, reason in cases:
        with pytest.raises(InvalidVoucher, match=reason):
            ledger.accept(channel, amount, signature, price=PRICE, now=now)
    assert ledger.to_settle() == [(1, 20, first)]
    ledger.track(1, Terms(payer.address, deposit=100, expiry=NOW + 3600, paid=20, closed=True))
    with pytest.raises(InvalidVoucher, match="closed"):
        ledger.accept(1, 30, sign(Voucher(DOMAIN, 1, 30), payer), price=PRICE, now=NOW)
    assert ledger.to_settle() == []


def test_a_device_payer_signs_with_its_own_key() -> None:
    device = SoftwareSigner.generate()
    ledger = Ledger(DOMAIN)
    ledger.track(7, Terms(device.public_key, deposit=10**6, expiry=NOW + 3600))
    voucher = Voucher(DOMAIN, 7, 500)
    assert ledger.accept(7, 500, sign_device(voucher, device), price=PRICE, now=NOW) == 500
    other = SoftwareSigner.generate()
    with pytest.raises(InvalidVoucher, match="does not verify"):
        ledger.accept(7, 600, sign_device(Voucher(DOMAIN, 7, 600), other), price=PRICE, now=NOW)


def test_a_settlement_seen_on_chain_raises_the_floor() -> None:
    ledger, payer = _ledger()
    ledger.track(1, Terms(payer.address, deposit=100, expiry=NOW + 3600, paid=40))
    with pytest.raises(InvalidVoucher, match="not above the last, 40"):
        ledger.accept(1, 40, sign(Voucher(DOMAIN, 1, 40), payer), price=PRICE, now=NOW)
    assert ledger.accept(1, 50, sign(Voucher(DOMAIN, 1, 50), payer), price=PRICE, now=NOW) == 10


def test_a_payer_address_in_any_case_is_the_same_payer() -> None:
    payer = Account.create()
    ledger = Ledger(DOMAIN)
    ledger.track(3, Terms(payer.address.lower(), deposit=100, expiry=NOW + 3600))
    assert ledger.accept(3, 10, sign(Voucher(DOMAIN, 3, 10), payer), price=PRICE, now=NOW) == 10
    with pytest.raises(InvalidVoucher, match="not a payer address"):
        Terms("0x1234", deposit=1, expiry=1)
