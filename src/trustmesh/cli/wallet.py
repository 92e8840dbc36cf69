"""``trustmesh device wallet …``: the device's own ERC-4337 account.

``address`` needs nothing but the key (or the DID): the account's address
follows from it. The others reach the chain and a bundler: a node's (``--node``:
its embedded chain at ``/rpc`` and its bundler at ``/bundler``), or any chain
and any ERC-4337 bundler (``--rpc`` and ``--bundler``, e.g. anvil and Alto).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from trustmesh.cli._common import UsageError, err, open_signer, print_json, public_key_of
from trustmesh.errors import ChainError

if TYPE_CHECKING:
    from trustmesh.device.wallet import Wallet

app = typer.Typer(no_args_is_help=True, help="The device's own ERC-4337 wallet (P-256 key).")

KeystoreOpt = Annotated[
    Path | None, typer.Option("--keystore", help="Encrypted keystore file.", dir_okay=False)
]
Pkcs11Opt = Annotated[
    str | None,
    typer.Option("--pkcs11", help="RFC 7512 URI of a key in a PKCS#11 token.", metavar="URI"),
]
NodeOpt = Annotated[
    str | None,
    typer.Option("--node", help="A node on an embedded chain: its /rpc and /bundler."),
]
RpcOpt = Annotated[str | None, typer.Option("--rpc", help="The chain's JSON-RPC URL.")]
BundlerOpt = Annotated[
    str | None, typer.Option("--bundler", help="An ERC-4337 bundler's JSON-RPC URL.")
]


@app.command()
def address(
    keystore: KeystoreOpt = None,
    pkcs11: Pkcs11Opt = None,
    did: Annotated[str | None, typer.Option("--did", help="A P-256 did:key instead.")] = None,
) -> None:
    """Print {"did", "address"}: where the wallet is, deployed or not (offline)."""
    from trustmesh.chain.accounts import account_address
    from trustmesh.identity import did_from_key, key_from_did

    if sum(x is not None for x in (keystore, pkcs11, did)) != 1:
        raise UsageError("give exactly one of --keystore PATH, --pkcs11 URI or --did DID")
    key = key_from_did(did) if did is not None else public_key_of(keystore, pkcs11)
    try:
        print_json({"did": did_from_key(key), "address": account_address(key)})
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@app.command()
def balance(
    keystore: KeystoreOpt = None,
    pkcs11: Pkcs11Opt = None,
    node: NodeOpt = None,
    rpc: RpcOpt = None,
    bundler: BundlerOpt = None,
) -> None:
    """Print {"address", "deployed", "balance", "deposit", "nonce"} (wei)."""
    with _wallet(keystore, pkcs11, node, rpc, bundler) as wallet:
        print_json(
            {
                "address": wallet.address,
                "deployed": wallet.deployed(),
                "balance": wallet.balance(),
                "deposit": wallet.deposit(),
                "nonce": wallet.nonce(),
            }
        )


@app.command()
def deploy(
    keystore: KeystoreOpt = None,
    pkcs11: Pkcs11Opt = None,
    node: NodeOpt = None,
    rpc: RpcOpt = None,
    bundler: BundlerOpt = None,
) -> None:
    """Deploy the wallet (a user operation with no call, paid from the wallet)."""
    with _wallet(keystore, pkcs11, node, rpc, bundler) as wallet:
        with err.status("deploying the wallet…"):
            receipt = wallet.deploy()
        print_json(
            {
                "address": wallet.address,
                "deployed": True,
                "gas_cost": None if receipt is None else receipt.actual_gas_cost,
            }
        )


@app.command()
def pay(
    to: Annotated[str, typer.Option("--to", help="The payee's address.")],
    amount: Annotated[int, typer.Option("--amount", help="Wei.")],
    keystore: KeystoreOpt = None,
    pkcs11: Pkcs11Opt = None,
    node: NodeOpt = None,
    rpc: RpcOpt = None,
    bundler: BundlerOpt = None,
) -> None:
    """Pay from the wallet: one user operation signed by the device's key."""
    from eth_utils.address import is_address

    if amount <= 0:
        raise UsageError("--amount must be positive (wei)")
    if not is_address(to):
        raise UsageError(f"--to is not an address: {to!r}")
    with _wallet(keystore, pkcs11, node, rpc, bundler) as wallet:
        with err.status("paying…"):
            receipt = wallet.pay(to, amount)
        print_json(
            {
                "from": wallet.address,
                "to": to,
                "amount": amount,
                "user_op_hash": "0x" + receipt.op_hash.hex(),
                "transaction": "0x" + receipt.transaction_hash.hex(),
                "gas_cost": receipt.actual_gas_cost,
            }
        )


@contextmanager
def _wallet(
    keystore: Path | None,
    pkcs11: str | None,
    node: str | None,
    rpc: str | None,
    bundler: str | None,
) -> Iterator[Wallet]:
    from trustmesh.chain.bundler import RpcBundler
    from trustmesh.chain.client import rpc_web3
    from trustmesh.device.wallet import Wallet
    from trustmesh.identity import Alg, Pkcs11Signer

    if node is not None and (rpc is not None or bundler is not None):
        raise UsageError("give --node, or --rpc and --bundler, not both")
    if node is not None:
        rpc, bundler = node.rstrip("/") + "/rpc", node.rstrip("/") + "/bundler"
    if rpc is None or bundler is None:
        raise UsageError("give --node URL, or --rpc URL and --bundler URL")
    signer = open_signer(keystore, pkcs11)
    rpc_bundler = RpcBundler(bundler)
    try:
        if signer.public_key.alg is not Alg.ES256:
            raise UsageError("a device wallet needs a P-256 (ES256) key")
        try:
            yield Wallet(signer, rpc_web3(rpc), rpc_bundler)
        except (OSError, ValueError) as exc:
            raise ChainError(f"the wallet's chain: {exc}") from None
    finally:
        rpc_bundler.close()
        if isinstance(signer, Pkcs11Signer):
            signer.close()
