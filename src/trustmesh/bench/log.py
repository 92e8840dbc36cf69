"""Log store throughput, proof latency and size, against pymerkle in the same run.

The same N entries (default 1,000,000 of 200 bytes, from a seeded generator)
are appended in batches of 1,000 to a trustmesh store on SQLite and to
pymerkle's ``SqliteTree`` (an independent RFC 6962/9162 library, one
transaction per batch as well); then the same random indices are proven in
both, each store reopened first, so proofs read from disk as a fresh process
would. The entries are appended once more to a third store, indexed by
(did, seq) as a node indexes them (``DEVICES`` devices taking turns): that
append should cost little more than the plain one, and not grow with the log.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trustmesh.log import merkle
from trustmesh.log.store import DeviceKey, open_store

ENTRY_BYTES = 200
BATCH = 1_000
PROOFS = 2_000
EDGE = 10_000  # append cost is compared over the first and the last EDGE entries
DEVICES = 100  # whose readings the indexed append takes


def run(
    entries: int = 1_000_000,
    seed: int = 1,
    directory: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure; returns the JSON object that ``trustmesh bench log --json`` prints."""
    if entries < 2 * BATCH:
        raise ValueError(f"use at least {2 * BATCH} entries")
    rng = random.Random(seed)
    data = [rng.randbytes(ENTRY_BYTES) for _ in range(entries)]
    batches = [data[i : i + BATCH] for i in range(0, entries, BATCH)]
    indices = [rng.randrange(entries) for _ in range(PROOFS)]
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        progress("trustmesh: appending")
        ours = _trustmesh(Path(tmp) / "trustmesh.db", batches, indices)
        progress("pymerkle: appending")
        peer = _pymerkle(Path(tmp) / "pymerkle.db", batches, indices, ours.pop("_root"))
        progress("trustmesh: appending, indexed by device")
        indexed = _indexed(Path(tmp) / "indexed.db", batches)
    return {
        "benchmark": "log",
        "entries": entries,
        "entry_bytes": ENTRY_BYTES,
        "batch": BATCH,
        **ours,
        **peer,
        **indexed,
        "indexed_append_ratio_vs_plain": round(
            indexed["indexed_append_per_s"] / ours["append_per_s"], 2
        ),
        "append_ratio_vs_pymerkle": round(ours["append_per_s"] / peer["pymerkle_append_per_s"], 2),
        "proof_p99_ratio_vs_pymerkle": round(
            peer["pymerkle_proof_p99_ms"] / ours["proof_p99_ms"], 1
        ),
        "goals": {
            "append_ratio_min": 5,
            "proof_p99_ms_max": 1.0,
            "bytes_per_entry_max": 300,
        },
    }


def _timed_appends(
    append: Callable[[Sequence[bytes]], object], batches: list[list[bytes]]
) -> list[float]:
    seconds = []
    for batch in batches:
        start = time.perf_counter()
        append(batch)
        seconds.append(time.perf_counter() - start)
    return seconds


def _rates(seconds: list[float], prefix: str) -> dict[str, float]:
    # The first and the last 10^4 entries (or halves, for a small run): the
    # append cost should not grow with the size of the log.
    edge = min(EDGE // BATCH, len(seconds) // 2)
    return {
        f"{prefix}append_per_s": round(len(seconds) * BATCH / sum(seconds)),
        f"{prefix}append_per_s_first_1e4": round(edge * BATCH / sum(seconds[:edge])),
        f"{prefix}append_per_s_last_1e4": round(edge * BATCH / sum(seconds[-edge:])),
    }


def _percentiles(samples: list[float], prefix: str) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        f"{prefix}proof_p50_ms": round(statistics.median(ordered) * 1e3, 4),
        f"{prefix}proof_p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1e3, 4),
    }


def _trustmesh(path: Path, batches: list[list[bytes]], indices: list[int]) -> dict[str, Any]:
    store = open_store(path)
    seconds = _timed_appends(store.append, batches)
    size, root = store.size, store.root()
    disk = store.disk_bytes()
    store.close()
    store = open_store(path)  # a cold reader, as a fresh process would be
    samples = []
    for index in indices:
        start = time.perf_counter()
        proof = store.inclusion_proof(index, size)
        samples.append(time.perf_counter() - start)
        merkle.verify_inclusion(store.leaf_hash(index), index, size, proof, root)
    store.close()
    return {
        **_rates(seconds, ""),
        "bytes_per_entry": round(disk / size, 1),
        **_percentiles(samples, ""),
        "_root": root,
    }


def _indexed(path: Path, batches: list[list[bytes]]) -> dict[str, Any]:
    """The same appends, each entry keyed as the next seq of one of the devices."""
    store = open_store(path)
    seconds: list[float] = []
    first = 0
    for batch in batches:
        keys = [
            DeviceKey(f"did:key:zBench{i % DEVICES}", i // DEVICES)
            for i in range(first, first + len(batch))
        ]
        first += len(batch)
        start = time.perf_counter()
        store.append(batch, keys)
        seconds.append(time.perf_counter() - start)
    store.close()
    return _rates(seconds, "indexed_")


def _pymerkle(
    path: Path, batches: list[list[bytes]], indices: list[int], expected_root: bytes
) -> dict[str, Any]:
    try:
        from pymerkle import SqliteTree
    except ImportError:
        raise RuntimeError(
            "the log benchmark needs pymerkle: pip install 'trustmesh[bench]'"
        ) from None
    tree = SqliteTree(str(path), algorithm="sha256")
    seconds = _timed_appends(tree.append_entries, batches)
    size = tree.get_size()
    if tree.get_root(size) != expected_root:
        raise RuntimeError("pymerkle and trustmesh disagree on the root: the comparison is void")
    tree.close()
    tree = SqliteTree(str(path), algorithm="sha256")
    samples = []
    for index in indices:
        start = time.perf_counter()
        tree.prove_inclusion(index + 1, size)  # pymerkle counts leaves from 1
        samples.append(time.perf_counter() - start)
    tree.close()
    return {
        **_rates(seconds, "pymerkle_"),
        "pymerkle_bytes_per_entry": round(path.stat().st_size / size, 1),
        **_percentiles(samples, "pymerkle_"),
    }
