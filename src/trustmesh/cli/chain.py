"""``trustmesh chain …``: deploy the contracts, inspect a chain, serve the embedded one."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from trustmesh._paths import default_data_dir
from trustmesh.chain.defaults import (
    DEFAULT_MAX_MERGE_DELAY,
    DEFAULT_MIN_STAKE,
    DEFAULT_REWARD_BPS,
    DEFAULT_UNBONDING_DELAY,
)
from trustmesh.cli._common import PASSWORD_ENV, UsageError, err, print_json
from trustmesh.errors import ChainError

if TYPE_CHECKING:
    from trustmesh.chain.client import ChainClient
    from trustmesh.chain.suite import Deployment

# web3, py-evm and vyper take seconds to import: commands import them when run,
# so that `trustmesh verify` and friends start fast.

app = typer.Typer(no_args_is_help=True, help="Chains: deploy the contracts, status, serve.")

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory (default: $TRUSTMESH_DATA_DIR or the user data dir)."
    ),
]
RpcOpt = Annotated[
    str | None, typer.Option("--rpc", help="A JSON-RPC chain instead of the embedded one.")
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="Ethereum JSON keystore of the sender (with --rpc; else $TRUSTMESH_CHAIN_KEY).",
        dir_okay=False,
    ),
]


@contextmanager
def connect(
    data_dir: Path | None, rpc: str | None, key_file: Path | None = None, *, read_only: bool = False
) -> Iterator[tuple[ChainClient, Path]]:
    """A client for the chain the options name, and the data directory.

    Read-only use of a JSON-RPC chain needs no sender key.
    """
    from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
    from trustmesh.chain.embedded import EmbeddedChain

    directory = data_dir or default_data_dir()
    if rpc is None:
        chain = EmbeddedChain.open(directory)
        try:
            yield (
                ChainClient(chain.w3, chain.dev_account, advance_time=chain.advance_time),
                directory,
            )
        finally:
            chain.close()
        return
    if read_only and key_file is None and not os.environ.get("TRUSTMESH_CHAIN_KEY"):
        from eth_account import Account

        account = Account.create()  # never used to sign: views only
    else:
        account = account_from_env_or_file(key_file, os.environ.get(PASSWORD_ENV))
    yield ChainClient(rpc_web3(rpc), account), directory


@app.command()
def deploy(
    data_dir: DataDirOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
    min_stake: Annotated[int, typer.Option(help="Least stake, in wei.")] = DEFAULT_MIN_STAKE,
    unbonding_delay: Annotated[int, typer.Option(help="Seconds.")] = DEFAULT_UNBONDING_DELAY,
    reward_bps: Annotated[
        int, typer.Option(help="Reporter share of a slash.")
    ] = DEFAULT_REWARD_BPS,
    max_merge_delay: Annotated[
        int,
        typer.Option(help="Seconds a node has to anchor a checkpoint it signed, once notarized."),
    ] = DEFAULT_MAX_MERGE_DELAY,
    redeploy: Annotated[bool, typer.Option(help="Deploy again even if recorded.")] = False,
    chain_id: Annotated[
        int | None, typer.Option("--chain-id", help="Refuse unless the chain has this id.")
    ] = None,
) -> None:
    """Deploy the contract suite; print {"chain_id", "contracts"} and record it."""
    from trustmesh.chain.accounts import deploy_account_contracts
    from trustmesh.chain.entrypoint import ENTRY_POINT
    from trustmesh.chain.suite import Deployment, deploy_suite

    if min_stake < 0 or unbonding_delay < 0 or not 0 <= reward_bps <= 10_000:
        raise UsageError("--min-stake and --unbonding-delay must be ≥ 0, --reward-bps 0..10000")
    if max_merge_delay <= 0:
        raise UsageError("--max-merge-delay must be positive")
    with connect(data_dir, rpc, key_file) as (client, directory):
        if chain_id is not None and chain_id != client.chain_id:
            raise ChainError(f"expected chain id {chain_id}, the chain says {client.chain_id}")
        existing = Deployment.load(directory, client.chain_id)
        if existing is not None and not redeploy and _deployed(client, existing):
            err.print(
                f"already deployed on chain {client.chain_id} (use --redeploy for a new suite)"
            )
            print_json(existing.to_json())
            return
        with err.status("deploying the contracts…"):
            deployment = deploy_suite(
                client,
                min_stake=min_stake,
                unbonding_delay=unbonding_delay,
                reward_bps=reward_bps,
                max_merge_delay=max_merge_delay,
            )
            try:  # device wallets: the EntryPoint and the account factory, where they land
                deployment.contracts["DeviceAccountFactory"] = deploy_account_contracts(client)
                deployment.contracts["EntryPoint"] = ENTRY_POINT
            except ChainError as exc:
                err.print(f"[yellow]no device wallets on this chain[/]: {escape(str(exc))}")
        deployment.save(directory)
        err.print(
            f"[green]deployed[/] on chain {client.chain_id}; recorded in {escape(str(directory))}"
        )
        print_json(deployment.to_json())


@app.command()
def status(data_dir: DataDirOpt = None, rpc: RpcOpt = None) -> None:
    """Print {"chain_id", "block", "contracts"} for the chain."""
    from trustmesh.chain.client import rpc_web3
    from trustmesh.chain.embedded import EmbeddedChain
    from trustmesh.chain.suite import Deployment

    directory = data_dir or default_data_dir()
    if rpc is None:
        chain = EmbeddedChain.open(directory)
        try:
            chain_id, block = chain.w3.eth.chain_id, chain.w3.eth.block_number
        finally:
            chain.close()
    else:
        w3 = rpc_web3(rpc)
        try:
            chain_id, block = w3.eth.chain_id, w3.eth.block_number
        except Exception as exc:  # any transport failure: report, no traceback
            raise ChainError(f"chain unreachable at {rpc} ({type(exc).__name__})") from None
    deployment = Deployment.load(directory, int(chain_id))
    contracts = deployment.contracts if deployment else {}
    print_json({"chain_id": int(chain_id), "block": int(block), "contracts": contracts})


@app.command()
def serve(
    data_dir: DataDirOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 8545,
) -> None:
    """Serve the embedded chain over Ethereum JSON-RPC, until interrupted.

    Prints one JSON line {"rpc", "chain_id"} when ready.
    """
    import uvicorn

    from trustmesh.chain.embedded import EmbeddedChain
    from trustmesh.chain.rpc import RpcServer

    chain = EmbeddedChain.open(data_dir or default_data_dir())
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(128)  # connections queue from now on, before uvicorn serves them
        url = f"http://{host}:{sock.getsockname()[1]}"
        print_json({"rpc": url, "chain_id": int(chain.w3.eth.chain_id)})
        err.print(f"serving the embedded chain on {url} (Ctrl-C to stop)")
        server = uvicorn.Server(uvicorn.Config(RpcServer(chain).app, log_level="warning"))
        server.run(sockets=[sock])
    finally:
        chain.close()


def _deployed(client: ChainClient, deployment: Deployment) -> bool:
    """Whether every recorded contract still has code (a reset dev chain loses it)."""
    with client.errors("checking the deployment"):
        return all(client.w3.eth.get_code(address) for address in deployment.contracts.values())  # type: ignore[arg-type]


StakeOpt = Annotated[int | None, typer.Option("--stake", help="Wei (default: the minimum).")]


def _suite(client: ChainClient, directory: Path) -> Deployment:
    from trustmesh.chain.suite import Deployment

    deployment = Deployment.load(directory, client.chain_id)
    if deployment is None:
        raise UsageError(
            f"no contracts recorded for chain {client.chain_id} in {directory}: "
            "run `trustmesh chain deploy` first"
        )
    return deployment


@app.command("register-device")
def register_device(
    did: Annotated[str, typer.Option("--did", help="The device's did:key.")],
    stake: StakeOpt = None,
    data_dir: DataDirOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Register a device by its DID (the key is in the DID); the sender owns it."""
    from trustmesh.chain.suite import Registry
    from trustmesh.identity import key_from_did

    key_from_did(did)  # a clear error for a malformed DID, before any transaction
    with connect(data_dir, rpc, key_file) as (client, directory):
        registry = Registry(client, _suite(client, directory))
        amount = registry.min_stake() if stake is None else stake
        receipt = registry.register_device(did, amount)
        print_json({**registry.device(did), "transaction": receipt["transactionHash"].hex()})


@app.command("device")
def device_record(
    did: Annotated[str, typer.Option("--did", help="The device's did:key.")],
    data_dir: DataDirOpt = None,
    rpc: RpcOpt = None,
) -> None:
    """Print a device's registry record as JSON."""
    from trustmesh.chain.suite import Registry

    with connect(data_dir, rpc, None, read_only=True) as (client, directory):
        print_json(Registry(client, _suite(client, directory)).device(did))


@app.command("register-node")
def register_node(
    verifier_key: Annotated[
        str, typer.Option("--verifier-key", help="The log's C2SP verifier key (name+id+key).")
    ],
    proof_key: Annotated[
        str,
        typer.Option(
            "--proof-key", help="The log's P-256 verifier key (type 0x02), checked on-chain."
        ),
    ],
    proof_signature: Annotated[
        str,
        typer.Option(
            "--proof-signature",
            help="Hex r || s: the P-256 key's signature of proof_key_message(origin, sender, "
            "chain id), proving it is held (`trustmesh node run` registers itself with it).",
        ),
    ],
    url: Annotated[str, typer.Option("--url", help="Where the node serves its API.")],
    stake: StakeOpt = None,
    data_dir: DataDirOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Register a node for the log whose origin is the verifier key's name."""
    from trustmesh.chain.suite import Registry
    from trustmesh.log.note import NoteVerifier
    from trustmesh.log.note_p256 import parse_p256_vkey

    verifier = NoteVerifier.from_vkey(verifier_key)
    p256 = parse_p256_vkey(proof_key)
    if p256.name != verifier.name:
        raise UsageError(f"the two keys name different logs: {verifier.name!r}, {p256.name!r}")
    with connect(data_dir, rpc, key_file) as (client, directory):
        registry = Registry(client, _suite(client, directory))
        amount = registry.min_stake() if stake is None else stake
        try:
            signature = bytes.fromhex(proof_signature.removeprefix("0x"))
        except ValueError:
            raise UsageError("--proof-signature must be hex (r || s, 64 bytes)") from None
        receipt = registry.register_node(
            verifier.name, verifier.public_key, url, amount, p256.public_key, signature
        )
        print_json(
            {**registry.node(verifier.name), "transaction": receipt["transactionHash"].hex()}
        )


@app.command()
def anchor(
    store: Annotated[
        str, typer.Option("--store", help="The log store: a SQLite path or postgresql:// URL.")
    ],
    origin: Annotated[str, typer.Option("--origin", help="The log's origin.")],
    data_dir: DataDirOpt = None,
    rpc: RpcOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Anchor the log's current tree, with a consistency proof from the last anchor."""
    from trustmesh.chain.anchoring import anchor_log
    from trustmesh.chain.suite import LogAnchor
    from trustmesh.log.store import open_store

    log = open_store(store)
    try:
        with connect(data_dir, rpc, key_file) as (client, directory):
            result = anchor_log(LogAnchor(client, _suite(client, directory)), log, origin)
    finally:
        log.close()
    print_json(result.to_json())
