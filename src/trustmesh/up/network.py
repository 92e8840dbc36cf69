"""Start, wire and stop the nodes and the watcher of a single-machine network."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from trustmesh._paths import private_dir
from trustmesh._server import ThreadedServer
from trustmesh.chain.client import ChainClient, rpc_web3
from trustmesh.chain.embedded import dev_keys
from trustmesh.chain.suite import Deployment
from trustmesh.errors import Error
from trustmesh.watcher.api import create_watcher_app
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher

# Development keys (embedded chain only): 0 is the first node's; then one per
# extra node; the watcher pays its proofs with the last.
WATCHER_KEY = -1


@dataclass
class NodeProcess:
    url: str
    info: dict[str, Any]
    process: subprocess.Popen[str]
    log: Path


def free_port(preferred: int) -> int:
    """``preferred`` if it is free on loopback, else the next free one."""
    for port in range(preferred, preferred + 100):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise Error(f"no free port from {preferred} to {preferred + 99}")


@dataclass
class Network:
    data_dir: Path
    nodes: int = 2
    port: int = 8080
    epoch: float = 5.0
    reputation_epoch: float = 60.0
    mesh: bool = False  # nodes and the watcher on the libp2p mesh, joined through the Registry
    started: list[NodeProcess] = field(default_factory=list)
    watcher: Watcher | None = None
    watcher_url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        private_dir(self.data_dir)
        try:
            first = self._node(1, ["--port", str(free_port(self.port))], {})
            rpc = first.url + "/rpc"
            deployment = Deployment(int(first.info["chain_id"]), dict(first.info["contracts"]))
            for number in range(2, self.nodes + 1):
                directory = self.data_dir / f"node{number}"
                private_dir(directory)
                deployment.save(directory)
                env = {"TRUSTMESH_CHAIN_KEY": dev_keys()[number - 1]}
                self._node(number, ["--port", "0", "--rpc", rpc], env)
            self._start_watcher(rpc, deployment)
        except BaseException:
            self.stop()
            raise

    def _node(self, number: int, args: list[str], env: dict[str, str]) -> NodeProcess:
        directory = self.data_dir / f"node{number}"
        log = self.data_dir / f"node{number}.log"
        process, info = spawn_node(
            [
                "--data-dir",
                str(directory),
                "--epoch",
                str(self.epoch),
                "--reputation-epoch",
                str(self.reputation_epoch),
                *(["--mesh"] if self.mesh else []),
                *args,
            ],
            {**os.environ, **env},
            log,
            on_start=lambda started: self._stack.callback(stop_node, started),
        )
        node = NodeProcess(str(info["url"]), info, process, log)
        self.started.append(node)
        return node

    def _start_watcher(self, rpc: str, deployment: Deployment) -> None:
        from eth_account import Account

        http = httpx.Client(timeout=30)
        self._stack.callback(http.close)
        client = ChainClient(rpc_web3(rpc), Account.from_key(dev_keys()[WATCHER_KEY]))
        chain = ChainView(client, deployment)
        urls = [node.url for node in self.started]
        mesh = None
        if self.mesh:
            from trustmesh.watcher.mesh import watcher_peer  # (libp2p: the 'mesh' extra)

            mesh = watcher_peer(http, urls, chain, [], registry=True)
            self._stack.callback(mesh.close)
        watcher = Watcher(urls, http, chain=chain, report=self._report, mirror=self.data_dir,
                          mesh=mesh)  # fmt: skip
        self._stack.callback(watcher.close)  # after its loop and server stop (last-first)
        server = ThreadedServer(create_watcher_app(watcher)).start()
        self._stack.callback(server.stop)
        self.watcher, self.watcher_url = watcher, server.url
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(0.5):  # the watcher's cadence
                watcher.tick()

        thread = threading.Thread(target=loop, name="watcher", daemon=True)
        thread.start()
        self._stack.callback(thread.join, 30)
        self._stack.callback(stop.set)  # (callbacks run last first: set, then join)

    def _report(self, document: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(document)

    def recent_events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def stop(self) -> None:
        self._stack.close()


def spawn_node(
    args: list[str],
    env: dict[str, str],
    log: Path,
    on_start: Callable[[subprocess.Popen[str]], object] = lambda process: None,
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``trustmesh node run *args`` in a subprocess (stderr appended to ``log``), and
    the info it prints once it listens; :class:`Error` if it exits first.
    ``on_start`` gets the process as soon as it runs (to stop it whatever happens)."""
    with log.open("a") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "trustmesh", "node", "run", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    on_start(process)
    assert process.stdout is not None
    line = process.stdout.readline()  # the node prints its info once it listens
    if not line:
        process.wait(timeout=30)
        raise Error(f"the node did not start: see {log}")
    info: dict[str, Any] = json.loads(line)
    return process, info


def stop_node(process: subprocess.Popen[str]) -> None:
    """Stop a node started by :func:`spawn_node` (Ctrl-C, then kill after 30 s)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
