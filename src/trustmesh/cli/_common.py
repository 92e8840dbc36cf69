"""What the CLI commands share: consoles, JSON output, the password, key sources."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import platformdirs
import typer
from rich.console import Console

from trustmesh._paths import private_dir
from trustmesh.errors import Error
from trustmesh.identity import (
    Pkcs11Signer,
    PublicKey,
    Signer,
    did_from_key,
    open_keystore,
    read_keystore_info,
)

PASSWORD_ENV = "TRUSTMESH_PASSWORD"

# Humans read stderr; stdout carries only what scripts parse (JSON, DIDs, bytes).
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


class UsageError(Error):
    """A command line that cannot be carried out as given (exit code 2)."""


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, sort_keys=False) + "\n")
    sys.stdout.flush()


def password(*, confirm: bool) -> str:
    """The keystore password: ``$TRUSTMESH_PASSWORD``, else a prompt on the terminal."""
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise UsageError(f"no password: set ${PASSWORD_ENV} or run on a terminal")
    entered: str = typer.prompt("Keystore password", hide_input=True, confirmation_prompt=confirm)
    return entered


def one_key_source(keystore: Path | None, pkcs11: str | None) -> None:
    if (keystore is None) == (pkcs11 is None):
        raise UsageError("give exactly one of --keystore PATH or --pkcs11 URI")


def open_signer(keystore: Path | None, pkcs11: str | None) -> Signer:
    one_key_source(keystore, pkcs11)
    if keystore is not None:
        return open_keystore(keystore, password(confirm=False))
    assert pkcs11 is not None
    return Pkcs11Signer.open(pkcs11)


def public_key_of(keystore: Path | None, pkcs11: str | None) -> PublicKey:
    """The device's public key, from its keystore (no password needed) or its token."""
    one_key_source(keystore, pkcs11)
    if keystore is not None:
        return read_keystore_info(keystore).public_key
    assert pkcs11 is not None
    with Pkcs11Signer.open(pkcs11) as signer:
        return signer.public_key


def default_seq_file(keystore: Path | None, signer: Signer) -> Path:
    """Beside the keystore; for a token key, under the user's data directory."""
    if keystore is not None:
        return keystore.with_name(keystore.name + ".seq")
    digest = hashlib.sha256(did_from_key(signer.public_key).encode()).hexdigest()[:32]
    directory = Path(platformdirs.user_data_dir("trustmesh")) / "seq"
    private_dir(directory)
    return directory / f"{digest}.seq"
