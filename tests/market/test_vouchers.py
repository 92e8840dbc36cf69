"""Vouchers off-chain: signed by the payer's key, recovered by the payee; anything
else refused by name."""

from __future__ import annotations

import doctest

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from trustmesh.errors import InvalidVoucher
from trustmesh.market import vouchers
from trustmesh.market.vouchers import Domain, Voucher, sign, signer

DOMAIN = Domain(31337, "0x" + "22" * 20)


def test_the_docstring_example_runs() -> None:
    result = doctest.testmod(vouchers)
    assert result.failed == 0 and result.attempted > 0


def test_a_voucher_binds_its_channel_amount_contract_and_chain() -> None:
    payer = Account.create()
    voucher = Voucher(DOMAIN, channel=3, amount=10**12)
    signature = sign(voucher, payer)
    assert signer(voucher, signature) == payer.address
    for other in (
        Voucher(DOMAIN, 4, 10**12),
        Voucher(DOMAIN, 3, 10**12 + 1),
        Voucher(Domain(1, DOMAIN.contract), 3, 10**12),
        Voucher(Domain(31337, "0x" + "33" * 20), 3, 10**12),
    ):
        assert other.digest() != voucher.digest()
        assert signer(other, signature) != payer.address


@pytest.mark.parametrize(
    ("signature", "message"),
    [(b"", "65 bytes"), (b"\x01" * 64, "65 bytes"), (b"\xff" * 65, "not a voucher signature")],
)
def test_malformed_signatures_are_refused(signature: bytes, message: str) -> None:
    with pytest.raises(InvalidVoucher, match=message):
        signer(Voucher(DOMAIN, 1, 1), signature)


@pytest.mark.parametrize("field", ["channel", "amount"])
def test_fields_out_of_range_are_refused(field: str) -> None:
    values = {"channel": 1, "amount": 1, field: 1 << 256}
    with pytest.raises(InvalidVoucher, match=f"{field} is a uint256"):
        Voucher(DOMAIN, **values)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, (1 << 256) - 1), st.integers(0, (1 << 256) - 1), st.integers(1, 1 << 64))
def test_the_digest_is_eth_accounts_eip_712_hash(channel: int, amount: int, chain: int) -> None:
    voucher = Voucher(Domain(chain, DOMAIN.contract), channel, amount)
    message = voucher.message()  # eth-account's encoding of the typed data
    assert voucher.digest() == keccak(b"\x19" + message.version + message.header + message.body)
