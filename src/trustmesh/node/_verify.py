"""Signature checks on every core: readings are verified in batches by the
verifier processes, never one by one on the event loop.

Groups of readings (one request's worth) are gathered for up to
``max_delay`` seconds, or until ``max_batch`` readings wait, and checked
together, spread evenly over the processes, so the cost of handing work to
another process is paid once per batch and no core waits while another works.
"""

from __future__ import annotations

import asyncio
import math

from trustmesh.batch_verify import PART, Item, item, verify_items
from trustmesh.identity import PublicKey
from trustmesh.node._processes import VerifierProcesses
from trustmesh.reading import Reading


class BatchVerifier:
    def __init__(
        self,
        processes: VerifierProcesses | None,
        max_batch: int = 512,
        max_delay: float = 0.002,
    ) -> None:
        """``processes`` None: checked here, on the event loop (a node with no workers)."""
        self._processes = processes
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._pending: list[tuple[list[Item], asyncio.Future[list[str | None]]]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    async def verify_many(self, pairs: list[tuple[Reading, PublicKey]]) -> list[str | None]:
        """For each (parsed reading, key of its alg): None if the key signed it, else why."""
        items = [item(reading, key) for reading, key in pairs]
        if self._processes is None:
            return verify_items(items)
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
        if not groups or self._processes is None:
            return
        items = [item for group, _ in groups for item in group]
        # In equal parts, at least one per process and at most PART items each:
        # one task of all of them would keep the other cores idle.
        parts = max(self._processes.count, math.ceil(len(items) / PART))
        size = math.ceil(len(items) / parts)
        done = asyncio.gather(
            *(self._processes.verify(items[i : i + size]) for i in range(0, len(items), size))
        )

        def settle(result: asyncio.Future[list[list[str | None]]]) -> None:
            error = result.exception()
            reasons = [] if error is not None else [r for part in result.result() for r in part]
            start = 0
            for group, future in groups:
                if not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(reasons[start : start + len(group)])
                start += len(group)

        done.add_done_callback(settle)
