"""Signature checks on every core: readings are verified in batches in a
process pool, never one by one on the event loop.

Concurrent requests are gathered for up to ``max_delay`` seconds (or
``max_batch`` readings) and checked together, so the cost of handing work to
another process is paid once per batch.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from trustmesh.errors import InvalidReading
from trustmesh.identity import Alg, PublicKey
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


class BatchVerifier:
    def __init__(
        self, executor: Executor | None, max_batch: int = 256, max_delay: float = 0.002
    ) -> None:
        self._executor = executor
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._pending: list[tuple[Item, asyncio.Future[str | None]]] = []
        self._timer: asyncio.TimerHandle | None = None

    async def verify(self, entry: bytes, key: PublicKey) -> str | None:
        """None if the signature verifies under ``key``, else the reason."""
        loop = asyncio.get_running_loop()
        if self._executor is None:
            return verify_batch([(entry, key.alg.value, key.raw)])[0]
        future: asyncio.Future[str | None] = loop.create_future()
        self._pending.append(((entry, key.alg.value, key.raw), future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_delay, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self._executor, verify_batch, [item for item, _ in batch])

        def settle(result: asyncio.Future[list[str | None]]) -> None:
            error = result.exception()
            for index, (_, future) in enumerate(batch):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result.result()[index])

        done.add_done_callback(settle)
