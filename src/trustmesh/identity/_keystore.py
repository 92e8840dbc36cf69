"""Encrypted keystore files: a device's private key at rest.

A keystore is a small JSON document. The public half (DID, algorithm, public
key) is readable without the password; the 32-byte private key is encrypted
with AES-256-GCM under a key derived from the password with Argon2id
(RFC 9106). Every other field is bound to the ciphertext as associated data,
so swapping the DID or weakening the KDF parameters makes decryption fail.

The file is created with mode 0600, never overwritten, and a private key is
never written to disk in plaintext.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from trustmesh._durable import write_new
from trustmesh.errors import KeystoreError, WrongPassword
from trustmesh.identity._did import Did, did_from_key
from trustmesh.identity._keys import Alg, PublicKey, SoftwareSigner

FORMAT = "trustmesh-keystore"
VERSION = 1
SALT_SIZE = 16
NONCE_SIZE = 12
KEY_SIZE = 32
# Bounds on what a keystore file may ask of us when it is opened: a crafted
# file must not make us allocate gigabytes or spin for minutes.
MAX_MEMORY_KIB = 1 << 20
MAX_ITERATIONS = 64
MAX_LANES = 16
MAX_FILE_SIZE = 64 * 1024


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters. The defaults follow RFC 9106 §4's second
    recommended option (64 MiB, 3 passes); tests may lower them."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def check(self) -> None:
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise KeystoreError(f"argon2id memory {self.memory_kib} KiB out of range")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise KeystoreError(f"argon2id iterations {self.iterations} out of range")
        if not 1 <= self.lanes <= MAX_LANES:
            raise KeystoreError(f"argon2id lanes {self.lanes} out of range")


@dataclass(frozen=True)
class KeystoreInfo:
    """The public half of a keystore, readable without the password."""

    did: Did
    alg: Alg
    public_key: PublicKey


def create_keystore(
    path: Path, signer: SoftwareSigner, password: str, kdf: KdfParams | None = None
) -> KeystoreInfo:
    """Encrypt ``signer``'s key under ``password`` into a new file at ``path``.

    Refuses to overwrite an existing file: that would destroy a device key.
    """
    kdf = kdf or KdfParams()
    kdf.check()
    if not password:
        raise KeystoreError("the keystore password must not be empty")
    salt, nonce = os.urandom(SALT_SIZE), os.urandom(NONCE_SIZE)
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "did": did_from_key(signer.public_key),
        "alg": signer.alg.label,
        "public_key": signer.public_key.raw.hex(),
        "kdf": {
            "name": "argon2id",
            "salt": _b64(salt),
            "memory_kib": kdf.memory_kib,
            "iterations": kdf.iterations,
            "lanes": kdf.lanes,
        },
        "cipher": {"name": "aes-256-gcm", "nonce": _b64(nonce)},
    }
    key = _derive(password, salt, kdf)
    ciphertext = AESGCM(key).encrypt(nonce, signer.private_bytes(), _aad(header))
    document = json.dumps({**header, "ciphertext": _b64(ciphertext)}, indent=2) + "\n"
    try:
        write_new(path, document.encode(), mode=0o600)
    except FileExistsError:
        raise KeystoreError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeystoreError(f"cannot create keystore {path}: {exc.strerror}") from None
    return _info(header)


def read_keystore_info(path: Path) -> KeystoreInfo:
    """The DID, algorithm and public key stored in ``path``; no password needed."""
    return _info(_load(path))


def open_keystore(path: Path, password: str) -> SoftwareSigner:
    """Decrypt the key in ``path``; :class:`WrongPassword` if ``password`` is wrong."""
    document = _load(path)
    info = _info(document)
    try:
        kdf_fields = document["kdf"]
        kdf = KdfParams(
            memory_kib=_int(kdf_fields["memory_kib"]),
            iterations=_int(kdf_fields["iterations"]),
            lanes=_int(kdf_fields["lanes"]),
        )
        salt = _unb64(kdf_fields["salt"])
        nonce = _unb64(document["cipher"]["nonce"])
        ciphertext = _unb64(document["ciphertext"])
        if kdf_fields["name"] != "argon2id" or document["cipher"]["name"] != "aes-256-gcm":
            raise KeystoreError(f"{path}: unsupported kdf or cipher")
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"{path}: malformed keystore ({exc})") from None
    kdf.check()
    if len(salt) < SALT_SIZE or len(nonce) != NONCE_SIZE:
        raise KeystoreError(f"{path}: malformed keystore (salt or nonce size)")
    header = {k: v for k, v in document.items() if k != "ciphertext"}
    try:
        secret = AESGCM(_derive(password, salt, kdf)).decrypt(nonce, ciphertext, _aad(header))
    except InvalidTag:
        raise WrongPassword(f"{path}: wrong password, or the keystore was altered") from None
    signer = SoftwareSigner.from_private_bytes(info.alg, secret)
    if signer.public_key != info.public_key:
        raise KeystoreError(f"{path}: private key does not match the stored public key")
    return signer


def _derive(password: str, salt: bytes, kdf: KdfParams) -> bytes:
    return Argon2id(
        salt=salt,
        length=KEY_SIZE,
        iterations=kdf.iterations,
        lanes=kdf.lanes,
        memory_cost=kdf.memory_kib,
    ).derive(password.encode("utf-8"))


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _info(document: dict[str, Any]) -> KeystoreInfo:
    try:
        if document["format"] != FORMAT or document["version"] != VERSION:
            raise KeystoreError("not a trustmesh keystore (format or version)")
        alg = Alg.from_label(document["alg"])
        key = PublicKey(alg, bytes.fromhex(document["public_key"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise KeystoreError(f"malformed keystore ({exc})") from None
    did = did_from_key(key)
    if document.get("did") != did:
        raise KeystoreError("malformed keystore: did does not match the public key")
    return KeystoreInfo(did=did, alg=alg, public_key=key)


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            raw = f.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise KeystoreError(f"{path} is not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeystoreError(
            f"{path} is accessible by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    if len(raw) > MAX_FILE_SIZE:
        raise KeystoreError(f"{path} is too large to be a keystore")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise KeystoreError(f"{path} is not a keystore (not JSON)") from None
    if not isinstance(document, dict):
        raise KeystoreError(f"{path} is not a keystore (not a JSON object)")
    return document


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise TypeError("invalid base64") from None


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value
