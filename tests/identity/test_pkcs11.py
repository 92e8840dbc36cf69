"""The PKCS#11 signer against a real SoftHSM2 token."""

from __future__ import annotations

from pathlib import Path

import pkcs11
import pytest

from tests.conftest import SOFTHSM_MODULE, SoftHsmToken
from trustmesh.errors import SignerError
from trustmesh.identity import (
    Alg,
    Pkcs11Signer,
    Pkcs11Uri,
    Signer,
    did_from_key,
    key_from_did,
)
from trustmesh.reading import sign_reading, verify_reading

pytestmark = pytest.mark.softhsm


@pytest.mark.parametrize("alg", list(Alg), ids=lambda a: a.label)
def test_generate_sign_verify_reopen(softhsm: SoftHsmToken, alg: Alg) -> None:
    uri = softhsm.uri(f"device-{alg.label}")
    with Pkcs11Signer.generate(uri, alg) as signer:
        assert isinstance(signer, Signer)
        assert signer.alg is alg
        did = did_from_key(signer.public_key)
        signature = signer.sign(b"hello")
        assert len(signature) == 64
        key_from_did(did).verify(b"hello", signature)
        entry = sign_reading(signer, seq=1, ts=1_700_000_000_000, sensor="t", value=1)
    assert verify_reading(entry).did == did
    with Pkcs11Signer.open(uri) as again:
        assert did_from_key(again.public_key) == did
        key_from_did(did).verify(b"again", again.sign(b"again"))


def test_private_key_never_leaves_the_token(softhsm: SoftHsmToken) -> None:
    uri = softhsm.uri("sealed")
    Pkcs11Signer.generate(uri).close()
    token = pkcs11.lib(str(SOFTHSM_MODULE)).get_token(token_label=softhsm.label)
    with token.open(user_pin=softhsm.pin) as session:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="sealed")
        assert key[pkcs11.Attribute.SENSITIVE] is True
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        assert key[pkcs11.Attribute.TOKEN] is True
        with pytest.raises(pkcs11.PKCS11Error):
            key[pkcs11.Attribute.VALUE]  # reading it must fail


def test_refuses_a_second_key_with_the_same_label(softhsm: SoftHsmToken) -> None:
    uri = softhsm.uri("twice")
    Pkcs11Signer.generate(uri).close()
    with pytest.raises(SignerError, match="already holds a key labelled 'twice'"):
        Pkcs11Signer.generate(uri)


def test_missing_key_token_and_wrong_pin(softhsm: SoftHsmToken) -> None:
    with pytest.raises(SignerError, match="no private key labelled 'absent'"):
        Pkcs11Signer.open(softhsm.uri("absent"))
    with pytest.raises(SignerError, match="no PKCS#11 token labelled 'nope'"):
        Pkcs11Signer.open(f"pkcs11:token=nope;object=x?module-path={SOFTHSM_MODULE}&pin-value=1")
    wrong_pin = softhsm.uri("x").replace(f"pin-value={softhsm.pin}", "pin-value=0000")
    with pytest.raises(SignerError, match="wrong PIN"):
        Pkcs11Signer.open(wrong_pin)


def test_missing_module(softhsm: SoftHsmToken) -> None:
    with pytest.raises(SignerError, match="module /nonexistent.so not found"):
        Pkcs11Signer.open("pkcs11:token=t;object=k?module-path=/nonexistent.so&pin-value=1")


def test_pin_from_file_and_environment(
    softhsm: SoftHsmToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.pin + "\n")
    base = f"pkcs11:token={softhsm.label};object=k?module-path={SOFTHSM_MODULE}"
    assert Pkcs11Uri.parse(f"{base}&pin-source={pin_file}").pin == softhsm.pin
    monkeypatch.setenv("TRUSTMESH_PKCS11_PIN", "from-env")
    assert Pkcs11Uri.parse(base).pin == "from-env"
    monkeypatch.delenv("TRUSTMESH_PKCS11_PIN")
    with pytest.raises(SignerError, match="no PIN"):
        Pkcs11Signer.open(base)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "not a PKCS#11 URI"),
        ("pkcs11:", "not a PKCS#11 URI"),
        ("file:token=a;object=b", "not a PKCS#11 URI"),
        ("pkcs11:object=b", "needs a 'token=' attribute"),
        ("pkcs11:token=a", "needs a 'object=' attribute"),
        ("pkcs11:token=a;object", "malformed PKCS#11 URI attribute"),
        ("pkcs11:token=a;object=b?pin-source=/nonexistent/pin", "cannot read the PIN"),
    ],
)
def test_uri_errors(uri: str, message: str) -> None:
    with pytest.raises(SignerError, match=message):
        Pkcs11Uri.parse(uri)


def test_uri_percent_decoding_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTMESH_PKCS11_MODULE", raising=False)
    parsed = Pkcs11Uri.parse("pkcs11:token=my%20token;object=k%3B1?pin-value=12%2634")
    assert (parsed.token, parsed.object, parsed.pin) == ("my token", "k;1", "12&34")
    assert parsed.module_path == "/usr/lib/softhsm/libsofthsm2.so"
