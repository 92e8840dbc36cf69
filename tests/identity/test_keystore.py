"""The encrypted keystore: round trip, no plaintext at rest, mode 0600, tamper and
bad-input handling."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_KDF
from trustmesh.errors import KeystoreError, WrongPassword
from trustmesh.identity import (
    Alg,
    KdfParams,
    SoftwareSigner,
    create_keystore,
    did_from_key,
    open_keystore,
    read_keystore_info,
)


@pytest.fixture(params=list(Alg), ids=lambda a: a.label)
def signer(request: pytest.FixtureRequest) -> SoftwareSigner:
    alg: Alg = request.param
    return SoftwareSigner.generate(alg)


def test_round_trip(tmp_path: Path, signer: SoftwareSigner) -> None:
    path = tmp_path / "device.keystore"
    info = create_keystore(path, signer, "correct horse", FAST_KDF)
    assert info.did == did_from_key(signer.public_key)
    assert read_keystore_info(path) == info
    opened = open_keystore(path, "correct horse")
    assert opened.public_key == signer.public_key
    assert opened.private_bytes() == signer.private_bytes()


def test_file_is_0600_and_holds_no_plaintext_key(tmp_path: Path, signer: SoftwareSigner) -> None:
    os.umask(0o022)
    path = tmp_path / "device.keystore"
    create_keystore(path, signer, "pw", FAST_KDF)
    assert path.stat().st_mode & 0o777 == 0o600
    content = path.read_bytes()
    secret = signer.private_bytes()
    for encoding in (secret, secret.hex().encode(), base64.b64encode(secret)):
        assert encoding not in content


def test_default_kdf_is_argon2id_with_rfc9106_costs(tmp_path: Path) -> None:
    path = tmp_path / "k"
    create_keystore(path, SoftwareSigner.generate(), "pw")
    kdf = json.loads(path.read_text())["kdf"]
    assert kdf["name"] == "argon2id"
    assert (kdf["memory_kib"], kdf["iterations"]) == (65536, 3)


def test_wrong_password(tmp_path: Path, signer: SoftwareSigner) -> None:
    path = tmp_path / "k"
    create_keystore(path, signer, "right", FAST_KDF)
    with pytest.raises(WrongPassword, match="wrong password"):
        open_keystore(path, "wrong")


def test_never_overwrites(tmp_path: Path, signer: SoftwareSigner) -> None:
    path = tmp_path / "k"
    create_keystore(path, signer, "pw", FAST_KDF)
    before = path.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        create_keystore(path, SoftwareSigner.generate(), "pw", FAST_KDF)
    assert path.read_bytes() == before


def test_empty_password_refused(tmp_path: Path, signer: SoftwareSigner) -> None:
    with pytest.raises(KeystoreError, match="empty"):
        create_keystore(tmp_path / "k", signer, "", FAST_KDF)
    assert not (tmp_path / "k").exists()


def _rewrite(path: Path, change: dict[str, Any]) -> None:
    document = json.loads(path.read_text())
    for dotted, value in change.items():
        target = document
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "change",
    [
        {"kdf.iterations": 2},
        {"kdf.salt": base64.b64encode(bytes(16)).decode()},
        {"cipher.nonce": base64.b64encode(bytes(12)).decode()},
        {"ciphertext": base64.b64encode(bytes(48)).decode()},
    ],
)
def test_tampering_fails_decryption(
    tmp_path: Path, signer: SoftwareSigner, change: dict[str, Any]
) -> None:
    path = tmp_path / "k"
    create_keystore(path, signer, "pw", FAST_KDF)
    _rewrite(path, change)
    with pytest.raises(WrongPassword):
        open_keystore(path, "pw")


def test_swapped_identity_is_detected(tmp_path: Path, signer: SoftwareSigner) -> None:
    path = tmp_path / "k"
    create_keystore(path, signer, "pw", FAST_KDF)
    other = SoftwareSigner.generate(signer.alg).public_key
    _rewrite(path, {"public_key": other.raw.hex(), "did": did_from_key(other)})
    with pytest.raises(WrongPassword):  # the header is bound as associated data
        open_keystore(path, "pw")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other"}, "not a trustmesh keystore"),
        ({"version": 2}, "not a trustmesh keystore"),
        ({"alg": "RS256"}, "malformed keystore"),
        ({"public_key": "zz"}, "malformed keystore"),
        ({"did": "did:key:z6Mkother"}, "did does not match"),
        ({"kdf.memory_kib": 1 << 30}, "memory .* out of range"),
        ({"kdf.iterations": 10_000}, "iterations .* out of range"),
        ({"kdf.lanes": 0}, "lanes .* out of range"),
        ({"kdf.iterations": "3"}, "malformed keystore"),
        ({"kdf.salt": "!!"}, "malformed keystore"),
        ({"kdf.salt": base64.b64encode(b"short").decode()}, "salt or nonce size"),
        ({"kdf.name": "pbkdf2"}, "unsupported kdf or cipher"),
        ({"cipher.name": "aes-128-cbc"}, "unsupported kdf or cipher"),
    ],
)
def test_malformed_keystores_give_clear_errors(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "k"
    create_keystore(path, SoftwareSigner.generate(), "pw", FAST_KDF)
    _rewrite(path, change)
    with pytest.raises(KeystoreError, match=message):
        open_keystore(path, "pw")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"{}", "malformed keystore"),
        (b"x" * 70_000, "too large"),
    ],
)
def test_files_that_are_not_keystores(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeystoreError, match=message):
        read_keystore_info(path)


def test_refuses_a_keystore_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "k"
    create_keystore(path, SoftwareSigner.generate(), "pw", FAST_KDF)
    path.chmod(0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        open_keystore(path, "pw")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot read keystore"):
        read_keystore_info(tmp_path / "absent")
    with pytest.raises(KeystoreError, match="cannot read keystore"):
        read_keystore_info(tmp_path)
    with pytest.raises(KeystoreError, match="cannot create keystore"):
        create_keystore(tmp_path / "no" / "dir", SoftwareSigner.generate(), "pw", FAST_KDF)


def test_kdf_params_bounds() -> None:
    KdfParams().check()
    with pytest.raises(KeystoreError):
        KdfParams(memory_kib=4, iterations=1, lanes=1).check()
