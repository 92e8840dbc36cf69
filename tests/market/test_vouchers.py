"""Vouchers off-chain: signed by the payer's key, recovered by the payee; anything
else refused by name."""

from __future__ import annotations

import doctest

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SoftHsmToken
from trustmesh.errors import InvalidVoucher
from trustmesh.identity import Alg, Pkcs11Signer, SoftwareSigner
from trustmesh.market import vouchers
from trustmesh.market.vouchers import (
    Domain,
    Voucher,
    check_device,
    sign,
    sign_device,
    signer,
)
from trustmesh.market.x402_channel import ChannelPayment

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


def test_a_device_pays_with_its_own_p256_key() -> None:
    device = SoftwareSigner.generate()
    voucher = Voucher(DOMAIN, channel=9, amount=42)
    signature = sign_device(voucher, device)
    check_device(voucher, signature, device.public_key)  # raises if wrong
    for other, key in (
        (Voucher(DOMAIN, 9, 43), device.public_key),
        (voucher, SoftwareSigner.generate().public_key),
    ):
        with pytest.raises(InvalidVoucher, match="does not verify"):
            check_device(other, signature, key)
    with pytest.raises(InvalidVoucher, match="64 bytes"):
        check_device(voucher, signature[:63], device.public_key)
    ed25519 = SoftwareSigner.generate(Alg.EDDSA)
    for call in (
        lambda: sign_device(voucher, ed25519),
        lambda: check_device(voucher, signature, ed25519.public_key),
    ):
        with pytest.raises(InvalidVoucher, match="P-256"):
            call()


@pytest.mark.softhsm
def test_a_device_pays_from_its_secure_element(softhsm: SoftHsmToken) -> None:
    with Pkcs11Signer.generate(softhsm.uri("wallet-key"), Alg.ES256) as device:
        voucher = Voucher(DOMAIN, channel=1, amount=10**9)
        check_device(voucher, sign_device(voucher, device), device.public_key)


def test_a_safes_vouchers_are_checked_off_chain_as_its_eip1271_would() -> None:
    """Threshold owner signatures of the voucher's SafeMessage hash, in ascending
    owner order (the chain's side is held to the same by tests/chain/test_safe.py)."""
    from eth_account import Account
    from eth_utils.crypto import keccak

    from trustmesh.chain.safe import owner_signature, pack_signatures, safe_message_hash
    from trustmesh.market.vouchers import SafeSigners, check_safe

    owners = [Account.create() for _ in range(3)]
    safe = SafeSigners("0x" + "5a" * 20, frozenset(o.address for o in owners), threshold=2)
    voucher = Voucher(DOMAIN, channel=3, amount=10**6)
    message = safe_message_hash(DOMAIN.chain_id, safe.address, voucher.digest())
    signed = [owner_signature(o, message) for o in owners]
    check_safe(voucher, pack_signatures(signed[:2]), safe)
    check_safe(voucher, pack_signatures(signed), safe)  # more than needed is fine
    prefixed = keccak(b"\x19Ethereum Signed Message:\n32" + message)
    eth_sign = owner_signature(owners[0], prefixed)
    as_eth_sign = type(eth_sign)(eth_sign.owner, eth_sign.signature[:64]
                                 + bytes([eth_sign.signature[64] + 4]))  # fmt: skip
    check_safe(voucher, pack_signatures([as_eth_sign, signed[1]]), safe)
    ordered = sorted(signed[:2], key=lambda s: int(s.owner, 16))
    stranger = owner_signature(Account.create(), message)
    other = Voucher(DOMAIN, channel=3, amount=10**6 + 1)
    for signature, reason in (
        (pack_signatures(signed[:1]), "needs 2"),
        (ordered[1].signature + ordered[0].signature, "ascending"),
        (pack_signatures([signed[0], stranger]), "not an owner"),
        (b"\x00" * 130, "on-chain only"),
    ):
        with pytest.raises(InvalidVoucher, match=reason):
            check_safe(voucher, signature, safe)
    with pytest.raises(InvalidVoucher):  # signatures of another voucher
        check_safe(other, pack_signatures(signed[:2]), safe)


GOOD_PAYMENT = {"channel": "7", "amount": "1000", "signature": "0x" + "11" * 65,
                "payer": "0x" + "22" * 20}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channel", 2e222),  # (as JSON: a float, infinite once made an int)
        ("channel", float("inf")),
        ("amount", 1.9),  # (int() would pay 1)
        ("amount", "1_000"),
        ("amount", " 1000"),
        ("amount", "-5"),
        ("amount", "\u0661\u0660\u0660"),  # (Arabic-Indic digits, which int() takes)
        ("channel", True),
        ("amount", "9" * 79),
    ],
)
def test_a_channel_payments_numbers_are_decimal_integers(field: str, value: object) -> None:
    """Decimal digits or a JSON integer, nothing that int() would also take: the
    fuzzer's finding (a float channel raised OverflowError, not InvalidVoucher)."""
    assert ChannelPayment.from_payload(GOOD_PAYMENT).amount == 1000
    assert ChannelPayment.from_payload({**GOOD_PAYMENT, "amount": 1000}).amount == 1000
    with pytest.raises(InvalidVoucher, match="malformed|uint256"):
        ChannelPayment.from_payload({**GOOD_PAYMENT, field: value})
