"""Wire a node together and run it: ``trustmesh node run``.

Embedded chain and SQLite by default; PostgreSQL, a JSON-RPC chain and an MQTT
broker when given. On the first start of an embedded chain it deploys the
contracts; on every start it makes sure it is registered as the gateway of its
log origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from trustmesh._durable import write_new
from trustmesh._paths import private_dir
from trustmesh.chain.accounts import deploy_account_contracts
from trustmesh.chain.bundler import LocalBundler
from trustmesh.chain.bundler_rpc import BundlerRpc
from trustmesh.chain.channels import ChannelsContract
from trustmesh.chain.client import ChainClient, account_from_env_or_file, rpc_web3
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.reputation import ReputationContract
from trustmesh.chain.rpc import RpcServer
from trustmesh.chain.stakes import ChainFacts
from trustmesh.chain.suite import Deployment, LogAnchor, Registry, deploy_suite
from trustmesh.errors import ChainError, Error
from trustmesh.identity import Alg, SoftwareSigner, create_keystore, open_keystore
from trustmesh.log.note import NoteSigner
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import open_store
from trustmesh.node._aggregates import ClaimShelf
from trustmesh.node._anchorer import Anchorer
from trustmesh.node._devices import DeviceDirectory
from trustmesh.node._ingest import Ingestor
from trustmesh.node._latest import LatestCheckpoint
from trustmesh.node._market import Market
from trustmesh.node._mesh import MeshBridge, gossip_checkpoints, node_keys
from trustmesh.node._metrics import Metrics
from trustmesh.node._mqtt import MqttBridge
from trustmesh.node._processes import VerifierProcesses
from trustmesh.node._reputation import ReputationKeeper, TablePoster
from trustmesh.node._state import NodeState
from trustmesh.node._verify import BatchVerifier
from trustmesh.node.app import NodeContext, create_app

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra)
    from trustmesh.mesh.peer import MeshPeer

log = logging.getLogger("trustmesh.node")

GOSSIP_SECONDS = 0.1  # a new checkpoint is on the mesh within this (ten a second at most)

REFRESH_SECONDS = 1.0
EMBEDDED_GAS_LIMIT = 25_000_000  # under the embedded chain's block gas limit (30M)


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    db: str | None = None
    rpc: str | None = None
    mqtt: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    epoch: float = 30.0
    reputation_epoch: float = 600.0  # seconds; 0: keep no reputation tables
    origin: str | None = None
    verify_workers: int | None = None  # default: every core
    body_timeout: float = 30.0  # seconds a client has to send a whole body
    settle_seconds: float = 60.0  # how often payment channels are settled, in a batch
    mesh: bool = False  # also take readings from the libp2p mesh, receipts back on it
    mesh_port: int = 0
    peers: tuple[str, ...] = ()  # mesh peers to dial at start (multiaddrs with /p2p/ ids)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def node_signer(data_dir: Path, state: NodeState, origin: str | None) -> LogSigner:
    """The node's checkpoint keys (Ed25519, and P-256 derived from its seed), in an
    encrypted keystore in the data dir.

    The password is $TRUSTMESH_PASSWORD; without it, a random one is kept in
    ``node.password`` (mode 0600), and a warning says so.
    """
    keystore = data_dir / "node.keystore"
    password = os.environ.get("TRUSTMESH_PASSWORD")
    password_file = data_dir / "node.password"
    if password is None:
        if not password_file.exists():
            write_new(password_file, secrets.token_urlsafe(24).encode())
        password = password_file.read_text()
        log.warning(
            "the node key's password is kept in %s; set TRUSTMESH_PASSWORD instead", password_file
        )
    if not keystore.exists():
        create_keystore(keystore, SoftwareSigner.generate(Alg.EDDSA), password)
    seed = open_keystore(keystore, password).private_bytes()
    name = origin or state.get("origin")
    if name is None:
        probe = NoteSigner.from_seed("x", seed).verifier.public_key.hex()[:12]
        name = f"trustmesh.local/{probe}"
    if state.get("origin") not in (None, name):
        raise Error(f"this data directory's log is {state.get('origin')!r}, not {name!r}")
    state.put("origin", name)
    return LogSigner.from_seed(name, seed)


class NodeRuntime:
    """Everything a running node holds; closed in reverse order."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        private_dir(config.data_dir)
        self._closers: list[Callable[[], Any]] = []
        self.store = open_store(config.db or config.data_dir / "log.db")
        self._closers.append(self.store.close)
        self.state = NodeState(config.data_dir / "node.db")
        self._closers.append(self.state.close)
        self.signer = node_signer(config.data_dir, self.state, config.origin)
        self.chain: EmbeddedChain | None = None
        if config.rpc is None:
            self.chain = EmbeddedChain.open(config.data_dir)
            self._closers.append(self.chain.close)
            self.client = ChainClient(
                self.chain.w3,
                self.chain.dev_account,
                advance_time=self.chain.advance_time,
                gas_limit=EMBEDDED_GAS_LIMIT,
            )
        else:
            account = account_from_env_or_file(None, None)
            self.client = ChainClient(rpc_web3(config.rpc), account)
        self.deployment = self._deployment()
        self.registry = Registry(self.client, self.deployment)
        self.anchor = LogAnchor(self.client, self.deployment)
        self.metrics = Metrics()
        self.mesh: MeshPeer | None = self._mesh() if config.mesh else None

    def _mesh(self) -> MeshPeer:
        """This node's mesh peer, started, dialled to the configured peers."""
        from trustmesh.mesh.peer import MeshPeer  # (libp2p: the optional 'mesh' extra)

        def registered(origin: str) -> bytes | None:
            record = self.registry.node(origin)
            return (
                bytes.fromhex(record["checkpoint_key"]) if record["status"] != "unknown" else None
            )

        keys = node_keys(self.signer.verifier, registered)
        dropped = self.metrics.mesh_dropped

        def on_drop(topic: str, kind: str) -> None:
            dropped.labels(topic, kind).inc()

        peer = MeshPeer(keys, host=self.config.host, port=self.config.mesh_port, on_drop=on_drop)
        peer.start()
        self._closers.append(peer.close)
        peer.join(list(self.config.peers))
        return peer

    def join_mesh(self) -> None:
        """Publish on the Registry where this node's peer listens (if its record says
        otherwise), and dial the peers of the other nodes it lists. A chain that
        fails here is logged: the mesh is joined through ``--peer`` alone."""
        if self.mesh is None:
            return
        origin = self.signer.name
        try:
            if self.registry.mesh_addrs(origin) != self.mesh.addrs:
                self.registry.set_mesh_addrs(origin, self.mesh.addrs)
            others = self.registry.mesh_bootstrap()
        except (ChainError, ValueError) as exc:
            log.warning("mesh: the Registry could not be used to join the mesh: %s", exc)
            return
        reached = self.mesh.join([a for o, addrs in others.items() if o != origin for a in addrs])
        log.info("mesh: joined %d peer(s) of other nodes the Registry lists", len(reached))

    def _deployment(self) -> Deployment:
        deployment = Deployment.load(self.config.data_dir, self.client.chain_id)
        if deployment is not None:
            return deployment
        if self.chain is None:
            raise ChainError(
                f"no contracts recorded for chain {self.client.chain_id}: run "
                "`trustmesh chain deploy --rpc …` with this --data-dir first"
            )
        deployment = deploy_suite(self.client)
        deployment.save(self.config.data_dir)
        log.info("deployed the contracts on the embedded chain: %s", deployment.contracts)
        return deployment

    def register_self(self, url: str) -> None:
        node = self.registry.node(self.signer.name)
        keys = (self.signer.verifier.public_key, self.signer.p256.verifier.public_key)
        if node["status"] == "unknown":
            self.registry.register_log(self.signer, url, self.registry.min_stake())
            log.info("registered as the gateway of %s", self.signer.name)
        elif node["status"] != "active" or (node["checkpoint_key"], node["proof_key"]) != (
            keys[0].hex(),
            keys[1].hex(),
        ):
            raise Error(f"the registry's record of {self.signer.name} is not this node: {node}")

    def info(self) -> dict[str, Any]:
        return {
            "origin": self.signer.name,
            "verifier_key": self.signer.verifier.vkey,
            "proof_key": self.signer.p256.verifier.vkey,
            "epoch_seconds": self.config.epoch,
            "reputation_epoch_seconds": self.config.reputation_epoch,
            "chain_id": self.client.chain_id,
            "contracts": self.deployment.contracts,
            "rpc": self.config.rpc,
            "mesh": self.mesh.addrs if self.mesh is not None else [],
        }

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()


def serve(config: NodeConfig, ready: Callable[[dict[str, Any]], None]) -> None:
    """Run the node until interrupted; ``ready`` gets the node's info once it listens."""
    runtime = NodeRuntime(config)
    try:
        # IPPROTO_TCP named: only then does asyncio set TCP_NODELAY on accepted
        # connections; with proto 0 every response waits ~40 ms (Nagle, delayed ACK).
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, config.port))
        sock.listen(1024)
        url = f"http://{config.host}:{sock.getsockname()[1]}"
        runtime.register_self(url)
        runtime.join_mesh()
        workers = (
            config.verify_workers if config.verify_workers is not None else (os.cpu_count() or 1)
        )
        processes = VerifierProcesses(workers) if workers > 0 else None
        if processes is not None:  # started now, not by the first readings (a spawn takes a second)
            processes.wait_ready()
        app = _app(runtime, processes)
        _settle_garbage_collector()
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", timeout_keep_alive=30, limit_concurrency=256)
        )
        ready({**runtime.info(), "url": url})
        server.run(sockets=[sock])
        if processes is not None:
            processes.close()
    finally:
        runtime.close()


def _bundler(runtime: NodeRuntime) -> list[Mount]:
    """On the embedded chain the node bundles its devices' user operations
    (``POST /bundler``), with the EntryPoint and the account factory deployed at
    their deterministic addresses (once: later starts find them there)."""
    if runtime.chain is None:
        return []
    try:
        deploy_account_contracts(runtime.client)
    except ChainError as exc:  # a chain made before device accounts: no wallets on it
        log.warning("no device wallets on this chain: %s", exc)
        return []
    return [Mount("/bundler", BundlerRpc(LocalBundler(runtime.client)).app)]


def _settle_garbage_collector() -> None:
    """What is loaded and built by now lives as long as the node: it is moved out of
    the cyclic collector's sight, and the young generation collected every 10,000
    allocations instead of 700.

    Measured under the ingest benchmark's load: a full collection walked the ~155,000
    objects of web3, py-evm and the contracts' compiler, a 60-90 ms pause of the event
    loop every few seconds, and collections took ~14% of the loop's time in all; with
    this, under 2%. Cycles are still collected; a request makes a few hundred."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


def _app(runtime: NodeRuntime, processes: VerifierProcesses | None) -> Starlette:
    directory = DeviceDirectory(runtime.registry)
    latest = LatestCheckpoint(runtime.signer, runtime.store.size, runtime.store.root())
    anchorer = Anchorer(
        store=runtime.store,
        latest=latest,
        anchor=runtime.anchor,
        metrics=runtime.metrics,
        epoch_seconds=runtime.config.epoch,
    )
    keeper = _keeper(runtime)
    ingestor = Ingestor(
        store=runtime.store,
        signer=runtime.signer,
        latest=latest,
        directory=directory,
        state=runtime.state,
        verifier=BatchVerifier(processes),
        metrics=runtime.metrics,
        clock_ms=wall_ms,
        lookup=asyncio.to_thread,
        on_logged=keeper.logged if keeper is not None else None,
    )
    market = _market(runtime)
    extra: list[BaseRoute] = []
    if runtime.chain is not None:
        extra.append(Mount("/rpc", RpcServer(runtime.chain).app))
    extra += _bundler(runtime)
    shelf = ClaimShelf(runtime.config.data_dir / "aggregates", runtime.config.body_timeout)
    extra += shelf.routes()
    ctx = NodeContext(
        store=runtime.store,
        ingestor=ingestor,
        anchorer=anchorer,
        registry=runtime.registry,
        state=runtime.state,
        metrics=runtime.metrics,
        info=runtime.info(),
        extra_routes=extra,
        fund_registrations=runtime.chain is not None,
        reputation=keeper,
        market=market,
        body_timeout=runtime.config.body_timeout,
        mesh=runtime.mesh,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(ingestor.run()), asyncio.create_task(_refresh(directory))]
        if market is not None:
            tasks.append(asyncio.create_task(market.run()))
        anchorer.start()
        if keeper is not None:
            keeper.start(interval=min(5.0, runtime.config.reputation_epoch / 4))
        bridge = MqttBridge(runtime.config.mqtt, ingestor, loop) if runtime.config.mqtt else None
        if bridge is not None:
            bridge.start()
        if runtime.mesh is not None:
            MeshBridge(runtime.mesh, ingestor, loop).start()
            gossip = gossip_checkpoints(runtime.mesh, latest, GOSSIP_SECONDS)
            tasks.append(asyncio.create_task(gossip))
        try:
            yield
        finally:
            if bridge is not None:
                bridge.stop()
            anchorer.stop()
            if keeper is not None:
                keeper.stop()
            for task in tasks:
                task.cancel()

    return create_app(ctx, lifespan=lifespan)


def _market(runtime: NodeRuntime) -> Market | None:
    """The node sells priced devices' readings when its deployment has Channels."""
    address = runtime.deployment.contracts.get("Channels")
    if address is None:  # deployments older than the contract have none
        return None
    return Market(
        ChannelsContract(runtime.client, address),
        runtime.registry,
        runtime.state,
        settle_seconds=runtime.config.settle_seconds,
    )


def _keeper(runtime: NodeRuntime) -> ReputationKeeper | None:
    """The node's reputation tables, rebuilt from its log up to the recorded cuts."""
    if runtime.config.reputation_epoch <= 0:
        return None
    epoch_ms = round(runtime.config.reputation_epoch * 1000)
    keeper = ReputationKeeper(
        store=runtime.store,
        origin=runtime.signer.name,
        state=runtime.state,
        facts=ChainFacts(runtime.registry, runtime.anchor, epoch_ms),
        current_block=runtime.registry.current_block,
        epoch_ms=epoch_ms,
        clock_ms=wall_ms,
        scratch=runtime.config.data_dir / "reputation-scratch.db",
    )
    keeper.restore()
    address = runtime.deployment.contracts.get("Reputation")
    if address is not None:  # deployments older than the contract have none
        keeper.poster = TablePoster(ReputationContract(runtime.client, address), time.time)
        keeper.on_close = keeper.poster
    return keeper


async def _refresh(directory: DeviceDirectory) -> None:
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        try:
            await asyncio.to_thread(directory.refresh)
        except Error as exc:
            log.warning("registry refresh failed: %s", exc)


def print_ready(info: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
