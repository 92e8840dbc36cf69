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

from trustmesh.errors import InvalidReading
from trustmesh.identity import Alg, PublicKey
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.receipt import Receipt, issue_receipt
from trustmesh.reading import verify_reading

Item = tuple[bytes, int, bytes]  # (entry, alg, raw public key): picklable


def verify_batch(items: list[Item]) -> list[str | None]:
    """In a worker: None for each reading that verifies, else the reason."""
    results: list[str | None] = []
    for entry, alg, raw in items:
        try:
            verify_reading(entry, PublicKey(Alg(alg), raw))
            results.append(None)
        except InvalidReading as exc:
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

    async def verify_many(self, pairs: list[tuple[bytes, PublicKey]]) -> list[str | None]:
        """For each (entry, key): None if the signature verifies, else the reason."""
        items = [(entry, key.alg.value, key.raw) for entry, key in pairs]
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
