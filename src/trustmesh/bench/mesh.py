"""Readings relayed over the mesh, against the same batches sent over HTTP.

A node runs with ``--mesh`` on loopback. One device's batches (signed beforehand)
go three ways, one batch in flight at a time (a device's uplink sends a batch,
waits for its receipts, then sends the next): straight to the node over HTTP
(the baseline), over the mesh through one relay peer, and through two. Each
way reports readings per second (receipt received and checked against the
node's log key) and each batch's p50/p99 time to its receipts; the mesh's rate
is also given as a ratio to HTTP's.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from trustmesh.device import MeshLink, MeshRoute
from trustmesh.errors import Error
from trustmesh.identity import PublicKey, SoftwareSigner, did_from_key, key_from_did
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint
from trustmesh.log.note import LineVerifier, NoteVerifier
from trustmesh.log.receipt import open_receipt
from trustmesh.mesh.peer import MeshPeer
from trustmesh.mesh.topics import READINGS, RECEIPTS
from trustmesh.mesh.validate import Keys
from trustmesh.reading import sign_reading
from trustmesh.up.network import spawn_node, stop_node

GOALS = {"relayed_vs_http_min": 0.5}
RESEND_SECONDS = 3.0  # a batch without its receipts by then is sent again
ATTEMPTS = 5
Progress = Callable[[str], None]


def run(batches: int = 40, batch: int = 100, progress: Progress | None = None) -> dict[str, Any]:
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
            return _measure(info, batches, batch, say)
        finally:
            stop_node(process)


def _measure(info: dict[str, Any], batches: int, size: int, say: Progress) -> dict[str, Any]:
    url = info["url"]
    log_key = NoteVerifier.from_vkey(info["verifier_key"])
    signer = SoftwareSigner.generate()
    did = did_from_key(signer.public_key)
    httpx.post(f"{url}/v1/devices", json={"did": did}, timeout=60).raise_for_status()
    seq = iter(range(1, 10**9))

    def batches_of(count: int) -> list[list[bytes]]:
        return [[sign_reading(signer, seq=next(seq), ts=int(time.time() * 1000),
                              sensor="temperature", value=k % 40) for k in range(size)]
                for _ in range(count)]  # fmt: skip

    _http(url, log_key, batches_of(2))  # warm: the node reads the device's key once
    say("over HTTP…")
    http = _http(url, log_key, batches_of(batches))
    results: dict[str, Any] = {"http": http}
    for hops in (1, 2):
        say(f"over the mesh, {hops} relay(s)…")
        results[f"mesh_{hops}_relay"] = _mesh(info, log_key, batches_of(batches), hops)
    one = results["mesh_1_relay"]["readings_per_s"] / http["readings_per_s"]
    return {
        "benchmark": "mesh",
        "batches": batches,
        "readings_per_batch": size,
        **results,
        "relayed_vs_http": round(one, 3),
        "relayed_2_vs_http": round(
            results["mesh_2_relay"]["readings_per_s"] / http["readings_per_s"], 3
        ),
        "goals": GOALS,
        "goals_met": {"relayed_vs_http": one >= GOALS["relayed_vs_http_min"]},
    }


def _summary(latencies: list[float], readings: int, seconds: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "readings_per_s": round(readings / seconds),
        "batch_p50_ms": round(statistics.median(ordered) * 1000, 1),
        "batch_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
    }


def _check(verifier: NoteVerifier, entries: list[bytes], proofs: list[str]) -> None:
    opened: dict[str, Checkpoint] = {}  # a batch's checkpoint, checked once (as a device does)
    for entry, proof in zip(entries, proofs, strict=True):
        open_receipt(proof, merkle.leaf_hash(entry), verifier, verifier.name, opened=opened)


def _http(url: str, verifier: NoteVerifier, batches: list[list[bytes]]) -> dict[str, Any]:
    latencies = []
    with httpx.Client(timeout=60) as client:
        start = time.perf_counter()
        for entries in batches:
            began = time.perf_counter()
            answer = client.post(f"{url}/v1/readings", content=b"".join(entries),
                                 headers={"content-type": "application/cbor-seq"})  # fmt: skip
            answer.raise_for_status()
            _check(verifier, entries, [str(item["proof"]) for item in answer.json()])
            latencies.append(time.perf_counter() - began)
        seconds = time.perf_counter() - start
    return _summary(latencies, sum(map(len, batches)), seconds)


def _mesh(info: dict[str, Any], verifier: NoteVerifier, batches: list[list[bytes]],
          hops: int) -> dict[str, Any]:  # fmt: skip
    def device_key(did: str, seq: int) -> PublicKey | None:
        return key_from_did(did)

    def log_key(origin: str) -> LineVerifier | None:
        return verifier if origin == verifier.name else None

    keys = Keys(device_key, log_key)
    relays = [MeshPeer(keys).start() for _ in range(hops)]
    own = MeshPeer(keys).start()
    try:
        previous = info["mesh"][0]
        for relay in relays:
            for topic in (READINGS, RECEIPTS):
                relay.subscribe(topic, lambda data: None)
            relay.connect(previous)
            previous = relay.addrs[0]
        own.connect(previous)
        link = MeshLink(MeshRoute(own, verifier), timeout=RESEND_SECONDS)
        _wait(lambda: own.peers(READINGS) >= 1 and relays[0].peers(READINGS) >= 1)
        latencies, resent = [], 0
        start = time.perf_counter()
        for entries in batches:
            began = time.perf_counter()
            answers: dict[str, dict[str, Any]] = {}
            for _ in range(ATTEMPTS):  # gossip is best effort: a device sends again
                answers |= link.exchange([e for e in entries
                                          if merkle.leaf_hash(e).hex() not in answers])  # fmt: skip
                if len(answers) == len(entries):
                    break
                resent += 1
            else:
                raise RuntimeError(f"{len(entries) - len(answers)} readings got no receipt")
            _check(verifier, entries,
                   [answers[merkle.leaf_hash(e).hex()]["proof"] for e in entries])  # fmt: skip
            latencies.append(time.perf_counter() - began)
        seconds = time.perf_counter() - start
    finally:
        for peer in (own, *relays):
            peer.close()
    return {**_summary(latencies, sum(map(len, batches)), seconds), "batches_resent": resent}


def _wait(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the mesh did not form")
        time.sleep(0.05)  # polling a condition the peers update
