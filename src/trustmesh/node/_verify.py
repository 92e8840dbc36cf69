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
from dataclasses import dataclass

from trustmesh.batch_verify import Item, item, verify_items
from trustmesh.identity import PublicKey
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.compact import CompactRange
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.receipt import issue_receipts
from trustmesh.reading import Reading

_signers: dict[tuple[bytes, str], LogSigner] = {}


@dataclass(frozen=True)
class BatchReceipts:
    """A committed batch's signed checkpoint and the receipt of each reading in it."""

    size: int
    root: bytes
    note: str
    fresh: list[str]  # of the entries the batch appended, in order
    earlier: dict[int, str]  # of entries logged before it (duplicates), by index


def batch_receipts(
    seed: bytes,
    origin: str,
    before: tuple[int, list[bytes]],
    leaves: list[bytes],
    earlier: dict[int, list[bytes]],
) -> BatchReceipts:
    """Here or in a worker: sign the tree that ``leaves`` appended to the log whose
    compact range was ``before`` (size, hashes), and make the receipts, each a
    tlog-proof in that tree: of the appended entries, and of ``earlier`` ones whose
    inclusion proofs in the new tree are given (by index)."""
    signer = _signers.get((seed, origin))
    if signer is None:
        signer = _signers[(seed, origin)] = LogSigner.from_seed(origin, seed)
    compact = CompactRange.from_hashes(*before)
    root, proofs = compact.append_with_proofs(leaves)
    note = sign_checkpoint(Checkpoint(origin, compact.size, root), signer)
    fresh = issue_receipts(before[0], proofs, note)
    older = {index: issue_receipts(index, [proof], note)[0] for index, proof in earlier.items()}
    return BatchReceipts(compact.size, root, note, fresh, older)


def warm_up(pool: Executor, workers: int, signer: LogSigner) -> None:
    """Start every worker and make its checkpoint signer, before the first reading."""
    empty = (0, list[bytes]())
    pending = [
        pool.submit(batch_receipts, signer.seed(), signer.name, empty, [], {})
        for _ in range(workers)
    ]
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
        items = [item(reading, key) for reading, key in pairs]
        if self._executor is None:
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
        if not groups:
            return
        loop = asyncio.get_running_loop()
        items = [item for group, _ in groups for item in group]
        done = loop.run_in_executor(self._executor, verify_items, items)

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
