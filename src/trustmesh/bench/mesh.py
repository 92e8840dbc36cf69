"""Readings relayed over the mesh, against the same batches sent over HTTP.

A node runs with ``--mesh`` on loopback. One device's batches (signed beforehand)
go three ways, one batch in flight at a time (a device's uplink sends a batch,
waits for its receipts, then sends the next): straight to the node over HTTP
(the baseline), over the mesh through one relay peer, and through two (each
relay a process of its own, as it is another device or a gateway). The ways
take turns, batch by batch (HTTP, then the mesh, then HTTP…), so that what else
the machine and the node do meanwhile (the node's anchoring every epoch and its
reputation steps; the machine's drift) falls on both alike; each way's first
batch is a warm-up, not counted. Each way reports readings per second (its
readings over the time its batches took, each until its receipts arrived and
were checked against the node's log key) and each batch's p50/p99 time to its
receipts; the mesh's rate is also given as a ratio to that of the HTTP batches
it took turns with. Then: a new checkpoint's time to each of N watchers that
found each other on the mesh, and a fleet with 30% of it partitioned for a
minute and healed (:mod:`trustmesh.bench.mesh_partition`), readings counted.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from trustmesh.batch_verify import warm_up
from trustmesh.bench.mesh_partition import partition
from trustmesh.device import MeshLink, MeshRoute
from trustmesh.errors import Error
from trustmesh.identity import SoftwareSigner, did_from_key, key_from_did
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.log.receipt import open_receipt
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.relay import Relay
from trustmesh.mesh.topics import CHECKPOINTS, READINGS, RECEIPTS
from trustmesh.mesh.validate import Keys, did_key
from trustmesh.reading import sign_reading
from trustmesh.up.network import spawn_node, stop_node

GOALS = {"relayed_vs_http_min": 0.5, "checkpoint_p99_ms_max": 1000}
RESEND_SECONDS = 3.0  # a batch without its receipts by then is sent again
ATTEMPTS = 5
DIALLING_THE_NODE = 3  # watchers that dial the node; the others dial watchers
START_SECONDS = 60.0  # for a relay's process to start and join the mesh
Progress = Callable[[str], None]


def run(
    batches: int = 40,
    batch: int = 100,
    progress: Progress | None = None,
    watchers: int = 20,
    checkpoints: int = 20,
    partition_seconds: float = 60.0,
) -> dict[str, Any]:
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--data-dir", str(Path(tmp) / "node"), "--port", "0", "--epoch", "1", "--mesh"]
        env = {**os.environ, "TRUSTMESH_PASSWORD": "bench"}
        try:
            process, info = spawn_node(args, env, Path(tmp) / "node.log")
        except Error:
            log = (Path(tmp) / "node.log").read_text()
            raise RuntimeError(f"the node did not start: {log}") from None
        try:
            result = _measure(info, batches, batch, say)
            say(f"checkpoints to {watchers} watchers…")
            heard = _propagation(info, watchers, checkpoints)
            say(f"30% of a fleet partitioned for {partition_seconds:g} s, then healed…")
            cut = partition(info, Path(tmp), partition_seconds)
        finally:
            stop_node(process)
    p99 = heard["p99_ms"]
    return {
        **{key: value for key, value in result.items() if key != "goals_met"},
        "checkpoint_propagation": heard,
        "partition": cut,
        "goals": GOALS,
        "goals_met": {
            **result["goals_met"],
            "checkpoint_p99": p99 <= GOALS["checkpoint_p99_ms_max"],
            "nothing_lost": cut["lost"] == 0 and cut["still_queued"] == 0,
        },
    }


def _measure(info: dict[str, Any], batches: int, size: int, say: Progress) -> dict[str, Any]:
    url = info["url"]
    log_key = NoteVerifier.from_vkey(info["verifier_key"])
    signer = SoftwareSigner.generate()
    did = did_from_key(signer.public_key)
    httpx.post(f"{url}/v1/devices", json={"did": did}, timeout=60).raise_for_status()
    seq = iter(range(1, 10**9))

    def batch() -> list[bytes]:  # (signed in seq order: the node takes a device's so only)
        return [sign_reading(signer, seq=next(seq), ts=int(time.time() * 1000),
                             sensor="temperature", value=k % 40) for k in range(size)]  # fmt: skip

    signed = [batch() for _ in range(2 + 2 * (2 + 2 * batches))]  # in the order they go
    _settle()
    with httpx.Client(timeout=60) as client:
        for _ in range(2):  # warm: the node reads the device's key once
            _http(client, url, log_key, signed.pop(0))
        http: list[float] = []
        results: dict[str, Any] = {}
        for hops in (1, 2):
            say(f"over HTTP and over the mesh through {hops} relay(s), in turns…")
            with _route(info, log_key, hops) as link:
                _mesh(link, log_key, signed.pop(0))  # warm: the route's first batch
                _http(client, url, log_key, signed.pop(0))
                paired, relayed, resent = [], [], 0
                for _ in range(batches):
                    paired.append(_http(client, url, log_key, signed.pop(0)))
                    took, again = _mesh(link, log_key, signed.pop(0))
                    relayed.append(took)
                    resent += again
            http += paired
            results[f"mesh_{hops}_relay"] = {
                **_summary(relayed, size),
                "batches_resent": resent,
                "http_readings_per_s": _summary(paired, size)["readings_per_s"],
            }
    ratios = {}
    for hops in (1, 2):
        way = results[f"mesh_{hops}_relay"]
        ratios[hops] = way["readings_per_s"] / way["http_readings_per_s"]
    return {
        "benchmark": "mesh",
        "batches": batches,
        "readings_per_batch": size,
        "http": _summary(http, size),
        **results,
        "relayed_vs_http": round(ratios[1], 3),
        "relayed_2_vs_http": round(ratios[2], 3),
        "goals_met": {"relayed_vs_http": ratios[1] >= GOALS["relayed_vs_http_min"]},
    }


def _summary(latencies: list[float], size: int) -> dict[str, Any]:
    """A way's rate (its readings over the time its batches took) and batch times."""
    ordered = sorted(latencies)
    return {
        "readings_per_s": round(size * len(latencies) / sum(latencies)),
        "batch_p50_ms": round(statistics.median(ordered) * 1000, 1),
        "batch_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
    }


def _check(verifier: NoteVerifier, entries: list[bytes], proofs: list[str]) -> None:
    opened: dict[str, Checkpoint] = {}  # a batch's checkpoint, checked once (as a device does)
    for entry, proof in zip(entries, proofs, strict=True):
        open_receipt(proof, merkle.leaf_hash(entry), verifier, verifier.name, opened=opened)


def _http(client: httpx.Client, url: str, verifier: NoteVerifier, entries: list[bytes]) -> float:
    """One batch over HTTP, until its receipts are checked: the seconds it took."""
    began = time.perf_counter()
    answer = client.post(f"{url}/v1/readings", content=b"".join(entries),
                         headers={"content-type": "application/cbor-seq"})  # fmt: skip
    answer.raise_for_status()
    _check(verifier, entries, [str(item["proof"]) for item in answer.json()])
    return time.perf_counter() - began


@contextlib.contextmanager
def _route(info: dict[str, Any], verifier: NoteVerifier, hops: int) -> Iterator[MeshLink]:
    """A device's mesh link to the node through ``hops`` relays, each in a process."""

    def log_key(origin: str) -> LineVerifier | None:
        return verifier if origin == verifier.name else None

    own = MeshPeer(Keys(did_key, log_key)).start()
    relays: list[_RelayProcess] = []
    try:
        previous = info["mesh"][0]
        for _ in range(hops):
            relays.append(relay := _RelayProcess(info["verifier_key"], previous))
            previous = relay.address
        own.connect(previous)
        link = MeshLink(MeshRoute(own, verifier), timeout=RESEND_SECONDS)
        _wait(lambda: own.peers(READINGS) >= 1 and own.peers(RECEIPTS) >= 1)
        yield link
    finally:
        own.close()
        for relay in relays:
            relay.stop()


def _mesh(link: MeshLink, verifier: NoteVerifier, entries: list[bytes]) -> tuple[float, int]:
    """One batch over the mesh, until its receipts are checked: the seconds it took,
    and how many times it was sent again (gossip is best effort: a device resends)."""
    began = time.perf_counter()
    answers: dict[str, dict[str, Any]] = {}
    sent = 0
    while len(answers) < len(entries):
        if sent == ATTEMPTS:
            raise RuntimeError(f"{len(entries) - len(answers)} readings got no receipt")
        answers |= link.exchange([e for e in entries
                                  if merkle.leaf_hash(e).hex() not in answers])  # fmt: skip
        sent += 1
    _check(verifier, entries, [answers[merkle.leaf_hash(e).hex()]["proof"] for e in entries])
    return time.perf_counter() - began, sent - 1


class _RelayProcess:
    """A relay peer in a process of its own, as a relay is another device or a gateway
    (in this process, it would share the device's interpreter lock): it checks
    readings against their did:key and receipts against the node's log key, and
    passes both on."""

    def __init__(self, vkey: str, previous: str) -> None:
        self._pipe, theirs = get_context("spawn").Pipe()
        self._process = get_context("spawn").Process(
            target=_relay, args=(vkey, previous, theirs)
        )  # (not a daemon: its signature checks have processes of their own)
        self._process.start()
        if not self._pipe.poll(START_SECONDS):
            self.stop()
            raise RuntimeError("a relay peer did not start")
        answer = self._pipe.recv()
        if answer.startswith("error: "):
            self.stop()
            raise RuntimeError(f"a relay peer did not start: {answer}")
        self.address: str = answer

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._pipe.send("stop")
        self._process.join(START_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _relay(vkey: str, previous: str, pipe: Connection) -> None:
    """The relay process: a mesh peer joined to ``previous``, until told to stop. Its
    signature checks run in a process pool of its own, on every core, as a gateway's
    would (threads get ~1.6 of two cores out of them: the checks hold the GIL in part)."""
    verifier = NoteVerifier.from_vkey(vkey)
    keys = Keys(did_key, lambda origin: verifier if origin == verifier.name else None)
    workers = os.cpu_count() or 1
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            warm_up(pool, workers)
            _settle()
            peer = MeshPeer(keys, verifier=pool).start()
            try:
                Relay(peer).start()
                peer.connect(previous)
                _wait(lambda: peer.peers(READINGS) >= 1)  # the mesh of the peer before it
                pipe.send(peer.addrs[0])
                with contextlib.suppress(EOFError):  # (the bench ended without a word)
                    pipe.recv()
            finally:
                peer.close()
    except Exception as exc:  # whatever stops it starting: told at once, not in a minute
        pipe.send(f"error: {exc!r}")


def _settle() -> None:
    """Keep what this process holds so far out of the garbage collector's full passes.
    A bench process holds what the whole CLI imports (web3, the chain…), unlike a
    device: a full pass over it stopped a batch for ~130 ms, in every run."""
    gc.collect()
    gc.freeze()


def _wait(condition: Callable[[], bool], seconds: float = 30.0, what: str = "the mesh") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling a condition the peers update


def _propagation(info: dict[str, Any], watchers: int, checkpoints: int) -> dict[str, Any]:
    """Each of ``checkpoints`` readings is posted to the node over HTTP; the time from
    the post until each of ``watchers`` mesh peers has heard a checkpoint that holds
    it. Watchers join as a mesh would: a few dial the node, the others two watchers
    that joined before them (a seeded draw), so most hear the node through others."""
    verifier = NoteVerifier.from_vkey(info["verifier_key"])
    keys = Keys(lambda did, seq: key_from_did(did),
                lambda origin: verifier if origin == verifier.name else None)  # fmt: skip
    heard: list[dict[int, float]] = [{} for _ in range(watchers)]  # size → first heard at

    def hearing(k: int) -> Callable[[bytes], None]:
        def hear(note: bytes) -> None:
            heard[k].setdefault(int(note.split(b"\n")[1]), time.perf_counter())

        return hear

    draw = random.Random(watchers)
    peers: list[MeshPeer] = []
    try:
        for k in range(watchers):
            peer = MeshPeer(keys).start()
            peers.append(peer)
            peer.subscribe(CHECKPOINTS, hearing(k))
            dials = [info["mesh"][0]] if k < DIALLING_THE_NODE else [
                p.addrs[0] for p in draw.sample(peers[:-1], min(2, k))]  # fmt: skip
            for address in dials:
                peer.connect(address)
        _wait(lambda: all(peer.peers(CHECKPOINTS) >= 1 for peer in peers))
        signer = SoftwareSigner.generate()
        url = info["url"]
        httpx.post(f"{url}/v1/devices", json={"did": did_from_key(signer.public_key)},
                   timeout=60).raise_for_status()  # fmt: skip
        latencies: list[float] = []
        with httpx.Client(timeout=60) as client:
            for seq in range(1, checkpoints + 1):
                entry = sign_reading(signer, seq=seq, ts=int(time.time() * 1000),
                                     sensor="temperature", value=seq)  # fmt: skip
                posted = time.perf_counter()
                answer = client.post(f"{url}/v1/readings", content=entry,
                                     headers={"content-type": "application/cbor-seq"})  # fmt: skip
                answer.raise_for_status()
                size = int(answer.json()[0]["size"])

                def arrival(k: int, size: int = size) -> float | None:
                    return min((at for s, at in list(heard[k].items()) if s >= size), default=None)

                _wait(lambda: all(arrival(k) is not None for k in range(watchers)),
                      seconds=30, what="every watcher to hear the checkpoint")  # fmt: skip
                latencies += [max(0.0, (arrival(k) or 0.0) - posted) for k in range(watchers)]
    finally:
        for peer in peers:
            peer.close()
    ordered = sorted(latencies)
    return {
        "watchers": watchers,
        "checkpoints": checkpoints,
        "dialling_the_node": min(watchers, DIALLING_THE_NODE),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }
