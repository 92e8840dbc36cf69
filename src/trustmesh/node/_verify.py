"""Signature checks on every core: readings are verified in batches in a
process pool, never one by one on the event loop.

Groups of readings (one request's worth) are gathered for up to
``max_delay`` seconds, or until ``max_batch`` readings wait, and checked
together, so the cost of handing work to another process is paid once per
batch.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from trustmesh.errors import InvalidSignature
from trustmesh.identity import Alg, PublicKey
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.receipt import Receipt, issue_receipt
from trustmesh.reading import Reading

# (signed message, signature, key alg, raw public key): picklable. The reading
# was parsed, and its alg checked against the key's, before it came here.
Item = tuple[bytes, bytes, int, bytes]


# Keys parsed once per worker (a P-256 point is compressed: parsing it costs a root).
_keys: dict[tuple[int, bytes], PublicKey] = {}
_KEYS_KEPT = 100_000


def verify_batch(items: list[Item]) -> list[str | None]:
    """In a worker: None for each reading that verifies, else the reason."""
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


_signers: dict[tuple[bytes, str], LogSigner] = {}


def sign_receipts(seed: bytes, origin: str, items: list[tuple[int, bytes, int]]) -> list[str]:
    """In a worker: the signed receipts of (index, leaf hash, deadline) triples."""
    signer = _signers.get((seed, origin))
    if signer is None:
        signer = _signers[(seed, origin)] = LogSigner.from_seed(origin, seed)
    return [
        issue_receipt(Receipt(origin, index, leaf, deadline), signer)
        for index, leaf, deadline in items
    ]


def warm_up(pool: Executor, workers: int, signer: LogSigner) -> None:
    """Start every worker and make its receipt signer, before the first reading."""
    pending = [pool.submit(sign_receipts, signer.seed(), signer.name, []) for _ in range(workers)]
    for future in pending:
        future.result()


class BatchVerifier:
    def __init__(
        self, executor: Executor | None, max_batch: int = 512, max_delay: float = 0.002
    ) -> None:
        self._executor = executor
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._pending: list[tuple[list[Item], asyncio.Future[list[str | None]]]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    async def verify_many(self, pairs: list[tuple[Reading, PublicKey]]) -> list[str | None]:
        """For each (parsed reading, key of its alg): None if the key signed it, else why."""
        items = [
            (reading.signed_message, reading.signature, key.alg.value, key.raw)
            for reading, key in pairs
        ]
        if self._executor is None:
            return verify_batch(items)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str | None]] = loop.create_future()
        self._pending.append((items, future))
        self._count += len(items)
        if self._count >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_delay, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        groups, self._pending, self._count = self._pending, [], 0
        if not groups:
            return
        loop = asyncio.get_running_loop()
        items = [item for group, _ in groups for item in group]
        done = loop.run_in_executor(self._executor, verify_batch, items)

        def settle(result: asyncio.Future[list[str | None]]) -> None:
            error = result.exception()
            start = 0
            for group, future in groups:
                if not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(result.result()[start : start + len(group)])
                start += len(group)

        done.add_done_callback(settle)
