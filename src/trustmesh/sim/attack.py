"""One attack, start to finish: an honest setup, the attacker, watchers; measured.

:func:`run_attack` deploys the contracts on a chain, registers devices (ES256)
and simulated logs (:class:`~trustmesh.sim.lognode.SimLog`), feeds readings,
runs watchers (:class:`~trustmesh.watcher.service.Watcher`, over HTTP and the
chain, as ``trustmesh watch`` does), lets one epoch pass honestly, then makes
one party lie and waits for the alert and the on-chain proof:

========================  ====================================================
``invalid-entry``         the log logs a reading with a broken signature
``equivocation``          a device signs two payloads under one seq, one per log
``split-view``            the log shows one watcher a tree the other never sees
``broken-receipt``        the log receipts one reading (a tlog-proof in a tree
                          it signs) and logs another there
``stall``                 the log stops anchoring what it signs: notarized, then
                          late past the chain's maximum merge delay
``none``                  nobody lies: the run must raise no alert
========================  ====================================================

The chain gets a block every ``BLOCK_S`` seconds (``evm_mine``), as a real
chain makes blocks whether or not anyone transacts: lateness is judged by the
chain's clock (blocks closer than a second apart would run it ahead of the wall
clock: a block's time is at least its parent's plus one). The contracts are
deployed with a maximum merge delay of two epochs. The latency is from the
moment of the lie (for ``stall``: the first anchor the log skipped) to the
watcher's alert.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from web3 import Web3

from trustmesh._server import ThreadedServer
from trustmesh.chain.client import ChainClient
from trustmesh.chain.suite import Deployment, LogAnchor, Registry, deploy_suite
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log import merkle
from trustmesh.log.note_p256 import LogSigner
from trustmesh.reading import sign_reading
from trustmesh.sim.lognode import SimLog
from trustmesh.watcher.api import create_watcher_app
from trustmesh.watcher.onchain import ChainView
from trustmesh.watcher.service import Watcher

__all__ = ["KINDS", "ChainSetup", "run_attack"]

KINDS = ("invalid-entry", "equivocation", "split-view", "broken-receipt", "stall", "none")
MIN_STAKE = 10**15
REWARD_BPS = 4000
READINGS_PER_S = 20.0
POLL_S = 0.05
BLOCK_S = 1.0


@dataclass(frozen=True)
class ChainSetup:
    """A chain and four funded accounts: operator, device owner, two watchers."""

    name: str
    w3: Web3
    accounts: list[LocalAccount]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class _Every:
    """Run ``action`` every ``seconds`` in a thread until stopped."""

    def __init__(self, seconds: float, action: Callable[[], None]) -> None:
        self._stop = threading.Event()
        self.errors: list[str] = []

        def loop() -> None:
            while not self._stop.wait(seconds):
                try:
                    action()
                except Exception as exc:  # kept and reported, never lost
                    self.errors.append(repr(exc))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class _Devices:
    """Registered ES256 devices, each with its own seq counter."""

    def __init__(self, registry: Registry, count: int, rng: random.Random) -> None:
        self.rng = rng
        self.signers = [SoftwareSigner.generate() for _ in range(count)]
        registry.register_devices([did_from_key(s.public_key) for s in self.signers], MIN_STAKE)
        self.seqs = [0] * count
        self.lock = threading.Lock()

    def next(self, device: int | None = None, seq: int | None = None) -> bytes:
        with self.lock:
            if device is None:
                device = self.rng.randrange(len(self.signers))
            if seq is None:
                self.seqs[device] += 1
                seq = self.seqs[device]
            value = round(self.rng.uniform(-20, 40), 2)
        return sign_reading(
            self.signers[device], seq=seq, ts=wall_ms(), sensor="temperature", value=value
        )


class _Run:
    def __init__(self, chain: ChainSetup, epoch: float, seed: int, stack: ExitStack) -> None:
        self.chain = chain
        self.epoch = epoch
        self.rng = random.Random(seed)
        operator, owner, *watchers = (ChainClient(chain.w3, a) for a in chain.accounts)
        self.operator = operator
        self.deployment: Deployment = deploy_suite(
            operator,
            min_stake=MIN_STAKE,
            unbonding_delay=3600,
            reward_bps=REWARD_BPS,
            max_merge_delay=max(1, round(2 * epoch)),
        )
        self.registry = Registry(operator, self.deployment)
        self.devices = _Devices(Registry(owner, self.deployment), 4, self.rng)
        # Held while a reading is drawn and logged (by the feeder, or by a lie), so
        # that each device's readings reach the logs in seq order.
        self.feeding = threading.Lock()
        self.watcher_clients = watchers
        self.stack = stack
        self.events: list[dict[str, Any]] = []
        self.events_lock = threading.Lock()
        self.heartbeat = self._every(BLOCK_S, self._mine)

    def _every(self, seconds: float, action: Callable[[], None]) -> _Every:
        job = _Every(seconds, action)
        self.stack.callback(job.stop)
        return job

    def _mine(self) -> None:
        self.chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def log(self, views: int = 1) -> SimLog:
        origin = f"sim.trustmesh.dev/{self.rng.getrandbits(48):012x}"
        signer = LogSigner.from_seed(origin, self.rng.randbytes(32))
        log = SimLog(
            signer,
            LogAnchor(self.operator, self.deployment),
            epoch=self.epoch,
            checkpoint_interval=self.epoch / 8,
            views=views,
        )
        self.registry.register_log(signer, log.url, MIN_STAKE)
        log.start()
        self.stack.callback(log.stop)
        return log

    def feed(self, logs: list[SimLog]) -> _Every:
        """Readings from the devices, to every log, at READINGS_PER_S."""

        def one() -> None:
            with self.feeding:
                for log in logs:
                    log.append(self.devices.next())

        return self._every(1 / READINGS_PER_S, one)

    def watcher(self, nodes: list[str], client: ChainClient, peers: list[str]) -> Watcher:
        http = httpx.Client(timeout=10)
        self.stack.callback(http.close)

        def report(document: dict[str, Any]) -> None:
            with self.events_lock:
                self.events.append(document)

        watcher = Watcher(
            nodes, http, chain=ChainView(client, self.deployment), peers=peers, report=report
        )
        self.stack.callback(watcher.close)  # after its poll job stops (callbacks run last-first)
        self._every(POLL_S, watcher.tick)
        return watcher

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], seconds: float
    ) -> dict[str, Any] | None:
        """The first event matching ``predicate``, waiting at most ``seconds``."""
        deadline = time.monotonic() + seconds
        pause = threading.Event()
        while time.monotonic() < deadline:
            with self.events_lock:
                found = next((e for e in self.events if predicate(e)), None)
            if found is not None:
                return found
            pause.wait(POLL_S)  # polls the events the watchers report
        return None

    def node_stake(self, log: SimLog) -> int:
        return int(self.registry.node(log.signer.name)["stake"])

    def device_stake(self, device: int) -> int:
        did = did_from_key(self.devices.signers[device].public_key)
        return int(self.registry.device(did)["stake"])


def _serve_watcher(run: _Run, watcher: Watcher) -> str:
    server = ThreadedServer(create_watcher_app(watcher)).start()
    run.stack.callback(server.stop)
    return server.url


def run_attack(
    kind: str, chain: ChainSetup, *, epoch: float = 2.0, seed: int = 1, honest_seconds: float = 0
) -> dict[str, Any]:
    """Run one attack of ``kind`` (see the module's table); the measured outcome."""
    if kind not in KINDS:
        raise ValueError(f"unknown attack {kind!r}: one of {', '.join(KINDS)}")
    with ExitStack() as stack:
        run = _Run(chain, epoch, seed, stack)
        return _ATTACKS[kind](run, honest_seconds or epoch)


def _outcome(
    run: _Run,
    kind: str,
    lied_at: int,
    stake: Callable[[], int],
    stake_before: int,
    alert: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    timeout = 10 * run.epoch + 10
    found = run.wait_for(lambda e: e["event"] == "alert" and alert(e), timeout)
    proof = run.wait_for(
        lambda e: e["event"] == "proof" and e["accepted"] and e["proof"] != "notarize", timeout
    )
    with run.events_lock:
        others = sorted({e["kind"] for e in run.events if e["event"] == "alert" and not alert(e)})
    return {
        "kind": kind,
        "chain": run.chain.name,
        "epoch_s": run.epoch,
        "detected": found is not None,
        "latency_ms": found["at_ms"] - lied_at if found is not None else None,
        "proof_accepted": proof is not None,
        "stake_before": stake_before,
        "stake_after": stake(),
        "reporter_reward": proof["reward"] if proof is not None else 0,
        "other_alerts": others,
    }


def _one_log(run: _Run, warmup: float) -> tuple[SimLog, str, int]:
    """One fed log, a watcher with its API (its URL), an honest phase; the log's stake."""
    log = run.log()
    run.feed([log])
    url = _serve_watcher(run, run.watcher([log.url], run.watcher_clients[0], []))
    _honest(run, warmup)
    return log, url, run.node_stake(log)


def _invalid_entry(run: _Run, warmup: float) -> dict[str, Any]:
    log, _, before = _one_log(run, warmup)
    with run.feeding:
        entry = run.devices.next()
        broken = entry[:-1] + bytes([entry[-1] ^ 1])
        lied_at = wall_ms()
        log.append(broken)
    return _outcome(
        run, "invalid-entry", lied_at, lambda: run.node_stake(log), before,
        lambda e: e["kind"] == "invalid-entry",
    )  # fmt: skip


def _equivocation(run: _Run, warmup: float) -> dict[str, Any]:
    first, second = run.log(), run.log()
    run.feed([first, second])
    run.watcher([first.url, second.url], run.watcher_clients[0], [])
    _honest(run, warmup)
    before = run.device_stake(0)
    with run.devices.lock:
        run.devices.seqs[0] += 1
        seq = run.devices.seqs[0]
    with run.feeding:
        first.append(run.devices.next(0, seq))
        twin = run.devices.next(0, seq)
        lied_at = wall_ms()
        second.append(twin)
    return _outcome(
        run, "equivocation", lied_at, lambda: run.device_stake(0), before,
        lambda e: e["kind"] == "equivocation",
    )  # fmt: skip


def _split_view(run: _Run, warmup: float) -> dict[str, Any]:
    log = run.log(views=2)
    run.feed([log])
    one, two = run.watcher_clients
    first = run.watcher([log.urls[0]], one, [])
    second = run.watcher([log.urls[1]], two, [_serve_watcher(run, first)])
    first.peers.append(_serve_watcher(run, second))
    _honest(run, warmup)
    before = run.node_stake(log)
    lied_at = wall_ms()
    with run.feeding:
        log.diverge(run.devices.next(), run.devices.next())
    return _outcome(
        run, "split-view", lied_at, lambda: run.node_stake(log), before,
        lambda e: e["kind"] == "split-view",
    )  # fmt: skip


def _broken_receipt(run: _Run, warmup: float) -> dict[str, Any]:
    log, url, before = _one_log(run, warmup)
    with run.feeding:  # the feeder waits: the receipt's index is the next one
        promised = merkle.leaf_hash(run.devices.next())
        index = log.size
        note = log.false_receipt(index, promised)
        lied_at = wall_ms()  # the log logs another reading in the receipt's place
        log.append(run.devices.next())
    # The device forwards its receipt to the watcher, as devices do.
    receipt = {"leaf_hash": promised.hex(), "proof": note}
    answer = httpx.post(f"{url}/v1/receipts", json={"receipts": [receipt]}, timeout=10)
    answer.raise_for_status()
    return _outcome(
        run, "broken-receipt", lied_at, lambda: run.node_stake(log), before,
        lambda e: e["kind"] == "broken-receipt",
    )  # fmt: skip


def _stall(run: _Run, warmup: float) -> dict[str, Any]:
    log, url, before = _one_log(run, warmup)
    log.stall()
    with run.feeding:
        entry = run.devices.next()
        index = log.append(entry)
    receipt = {"leaf_hash": merkle.leaf_hash(entry).hex(), "proof": log.receipt(index)}
    httpx.post(f"{url}/v1/receipts", json={"receipts": [receipt]}, timeout=10).raise_for_status()
    pause, limit = threading.Event(), time.monotonic() + 10 * run.epoch + 10
    while log.missed_at is None and time.monotonic() < limit:  # the lie: its first skipped anchor
        pause.wait(POLL_S)
    lied_at = int(log.missed_at * 1000) if log.missed_at is not None else wall_ms()
    return _outcome(
        run, "stall", lied_at, lambda: run.node_stake(log), before,
        lambda e: e["kind"] in ("stall", "unanchored"),
    )  # fmt: skip


def _none(run: _Run, seconds: float) -> dict[str, Any]:
    logs = [run.log(), run.log()]
    run.feed(logs)
    watcher = run.watcher([log.url for log in logs], run.watcher_clients[0], [])
    started = wall_ms()
    _honest(run, seconds)
    with run.events_lock:
        alerts = [e for e in run.events if e["event"] == "alert"]
    return {
        "kind": "none",
        "chain": run.chain.name,
        "epoch_s": run.epoch,
        "seconds": round((wall_ms() - started) / 1000, 1),
        "audited": sum(f.audited for f in watcher.followers.values()),
        "anchored": [log.anchored for log in logs],
        "alerts": len(alerts),
        "alert_kinds": sorted({e["kind"] for e in alerts}),
        "proofs": len(watcher.proofs),
    }


def _honest(run: _Run, seconds: float) -> None:
    threading.Event().wait(seconds)  # the honest phase lasts this long, by design


_ATTACKS: dict[str, Callable[[_Run, float], dict[str, Any]]] = {
    "invalid-entry": _invalid_entry,
    "equivocation": _equivocation,
    "split-view": _split_view,
    "broken-receipt": _broken_receipt,
    "stall": _stall,
    "none": _none,
}


@contextmanager
def embedded_setup(data_dir: Path) -> Iterator[ChainSetup]:
    """The embedded chain in ``data_dir``, with its development accounts."""
    from trustmesh.chain.embedded import EmbeddedChain

    chain = EmbeddedChain.open(data_dir)
    try:
        yield ChainSetup("embedded", chain.w3, chain.dev_accounts[:4])
    finally:
        chain.close()
