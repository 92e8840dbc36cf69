"""``trustmesh device …``: create a device identity, show it, sign readings."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from trustmesh.cli import wallet
from trustmesh.cli._common import (
    UsageError,
    default_seq_file,
    err,
    one_key_source,
    open_signer,
    password,
    print_json,
    public_key_of,
)
from trustmesh.device import Device
from trustmesh.identity import (
    Alg,
    Pkcs11Signer,
    Signer,
    SoftwareSigner,
    create_keystore,
    did_from_key,
    read_keystore_info,
)
from trustmesh.reading import Value

app = typer.Typer(no_args_is_help=True, help="Device identities and signed readings.")
app.add_typer(wallet.app, name="wallet")

KeystoreOpt = Annotated[
    Path | None, typer.Option("--keystore", help="Encrypted keystore file.", dir_okay=False)
]
Pkcs11Opt = Annotated[
    str | None,
    typer.Option("--pkcs11", help="RFC 7512 URI of a key in a PKCS#11 token.", metavar="URI"),
]


@app.command()
def new(
    keystore: KeystoreOpt = None,
    pkcs11: Pkcs11Opt = None,
    alg: Annotated[
        str, typer.Option("--alg", help="ES256 (P-256, default) or EdDSA (Ed25519).")
    ] = "ES256",
) -> None:
    """Create a device key pair and print its DID.

    With --keystore the key is encrypted under a password ($TRUSTMESH_PASSWORD or a
    prompt); with --pkcs11 it is generated inside the token and never leaves it.
    """
    one_key_source(keystore, pkcs11)
    try:
        algorithm = Alg.from_label(alg)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if keystore is not None:
        info = create_keystore(keystore, SoftwareSigner.generate(algorithm), password(confirm=True))
        err.print(f"[green]created[/] keystore {escape(str(keystore))} ({algorithm.label})")
        print(info.did)
        return
    assert pkcs11 is not None
    with Pkcs11Signer.generate(pkcs11, algorithm) as signer:
        err.print(f"[green]generated[/] {algorithm.label} key inside the token")
        print(did_from_key(signer.public_key))


@app.command()
def show(keystore: KeystoreOpt = None, pkcs11: Pkcs11Opt = None) -> None:
    """Print the device's identity as JSON: {"did", "alg", "public_key"} (no password needed)."""
    key = public_key_of(keystore, pkcs11)
    print_json({"did": did_from_key(key), "alg": key.alg.label, "public_key": key.raw.hex()})


@app.command()
def sign(
    sensor: Annotated[str, typer.Option("--sensor", help="Sensor name (≤ 64 bytes).")],
    value: Annotated[str, typer.Option("--value", help="Integer, number or text.")],
    keystore: KeystoreOpt = None,
    pkcs11: Pkcs11Opt = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit, e.g. C or kWh.")] = None,
    text: Annotated[
        bool, typer.Option("--text", help="Keep --value as text even if it looks numeric.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of stdout.", dir_okay=False)
    ] = None,
    seq_file: Annotated[
        Path | None,
        typer.Option(
            "--seq-file",
            help="The device's seq counter (default: KEYSTORE.seq, or under the user data dir).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Sign one reading with the next seq and the current time; write the COSE_Sign1 bytes."""
    if out is None and sys.stdout.isatty():
        raise UsageError("the reading is binary: give --out FILE or redirect stdout")
    signer: Signer = open_signer(keystore, pkcs11)
    try:
        device = Device(signer, seq_file or default_seq_file(keystore, signer))
        entry = device.sign(sensor, parse_value(value, text=text), unit=unit)
    finally:
        if isinstance(signer, Pkcs11Signer):
            signer.close()
    if out is None:
        sys.stdout.buffer.write(entry)
        sys.stdout.buffer.flush()
    else:
        try:
            out.write_bytes(entry)
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror}") from None
        err.print(f"[green]signed[/] {len(entry)} bytes to {escape(str(out))}")


def parse_value(text_value: str, *, text: bool) -> Value:
    """``"21"`` → 21, ``"21.5"`` → 21.5, anything else (or with --text) stays text."""
    if text:
        return text_value
    try:
        return int(text_value)
    except ValueError:
        pass
    try:
        number = float(text_value)
    except ValueError:
        return text_value
    return number if math.isfinite(number) else text_value


@app.command()
def register(
    node: Annotated[
        str, typer.Option("--node", help="URL of the node whose chain to register on.")
    ],
    keystore: KeystoreOpt = None,
    did: Annotated[str | None, typer.Option("--did", help="Register this did:key instead.")] = None,
    stake: Annotated[
        int | None, typer.Option("--stake", help="Wei (default: the minimum).")
    ] = None,
    rpc: Annotated[
        str | None,
        typer.Option("--rpc", help="The chain's JSON-RPC URL (default: what the node says)."),
    ] = None,
) -> None:
    """Register a device on the node's chain, by its DID (the key is in the DID).

    The owner ($TRUSTMESH_CHAIN_KEY) pays the stake; on a node's embedded
    development chain the node funds it instead.
    """
    import httpx

    from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
    from trustmesh.chain.suite import Deployment, Registry
    from trustmesh.errors import ChainError
    from trustmesh.identity import key_from_did

    if (keystore is None) == (did is None):
        raise UsageError("give exactly one of --keystore PATH or --did DID")
    if stake is not None and stake < 0:
        raise UsageError("--stake must not be negative")
    device_did = read_keystore_info(keystore).did if keystore is not None else str(did)
    key_from_did(device_did)
    base = node.rstrip("/")
    try:
        info = httpx.get(f"{base}/v1/log", timeout=10).raise_for_status().json()
        if rpc is None and info.get("rpc") is None:
            answer = httpx.post(
                f"{base}/v1/devices", json={"did": device_did, "stake": stake}, timeout=60
            )
            if answer.status_code != 200:
                raise ChainError(f"the node refused: {answer.json().get('detail', answer.text)}")
            print_json(answer.json())
            return
    except (httpx.HTTPError, ValueError) as exc:
        raise ChainError(f"cannot reach the node at {base}: {exc}") from None
    client = ChainClient(
        rpc_web3(rpc or info["rpc"]),
        account_from_env_or_file(None, None),
        chain_id=int(info["chain_id"]),
    )
    registry = Registry(client, Deployment(int(info["chain_id"]), dict(info["contracts"])))
    registry.register_device(device_did, registry.min_stake() if stake is None else stake)
    print_json(registry.device(device_did))
