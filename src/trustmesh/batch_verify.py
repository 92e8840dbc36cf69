"""Reading signatures checked in batches, in this process or on every core.

The node and the watcher both verify many readings a second: they parse each
(:mod:`trustmesh.reading`), look up its key, check the algorithm, and hand the
signature checks here as picklable items, so that a process pool can take
them. A worker keeps the keys it parsed (a P-256 point is compressed: parsing
it costs a square root).
"""

from __future__ import annotations

from concurrent.futures import Executor

from trustmesh.errors import InvalidSignature
from trustmesh.identity import Alg, PublicKey
from trustmesh.reading import Reading

__all__ = ["Item", "item", "verify_in_pool", "verify_items", "warm_up"]

# (signed message, signature, key alg, raw public key). The reading was parsed,
# and its alg checked against the key's (reading.check_alg), before it came here.
Item = tuple[bytes, bytes, int, bytes]

_keys: dict[tuple[int, bytes], PublicKey] = {}
_KEYS_KEPT = 100_000
PART = 250  # items per worker task: a batch spreads over the cores


def item(reading: Reading, key: PublicKey) -> Item:
    """What a worker needs to check that ``key`` signed ``reading``."""
    return (reading.signed_message, reading.signature, key.alg.value, key.raw)


def verify_items(items: list[Item]) -> list[str | None]:
    """None for each item whose signature verifies, else the reason (in a worker, or here)."""
    results: list[str | None] = []
    for message, signature, alg, raw in items:
        key = _keys.get((alg, raw))
        if key is None:
            if len(_keys) >= _KEYS_KEPT:
                _keys.clear()
            key = _keys[(alg, raw)] = PublicKey(Alg(alg), raw)
        try:
            key.verify(message, signature)
            results.append(None)
        except InvalidSignature as exc:
            results.append(str(exc))
    return results


def verify_in_pool(pool: Executor, items: list[Item], part: int = PART) -> list[str | None]:
    """:func:`verify_items` across a pool (of processes, or of threads: the checks
    release the GIL), in parts of ``part`` items; the results in order."""
    part = max(1, part)
    parts = [pool.submit(verify_items, items[i : i + part]) for i in range(0, len(items), part)]
    return [result for part in parts for result in part.result()]


def warm_up(pool: Executor, workers: int) -> None:
    """Start every worker of a process pool before the first check (a spawn takes a
    second)."""
    pending = [pool.submit(verify_items, []) for _ in range(workers)]
    for future in pending:
        future.result()
