"""The ingest pipeline: parse → registry key → clock → signature → duplicate,
replay and equivocation checks → batched append → one signed checkpoint per
batch, and a receipt (a tlog-proof in it) per reading.

Everything before the append runs per request (signatures in the process
pool); the append runs in one sequencer task that takes whatever is ready,
checks it against the log and against the rest of its batch, appends it in
one transaction, and only then answers: a receipt is sent only for an entry
that is durably committed. The batch's checkpoint is then signed and its
inclusion proofs made (from the compact range to its left, each node hashed
once: a few microseconds a reading), on the event loop while the sequencer's
thread appends the next batch. The sequencer takes the first request in
arrival order once its checks are done, with whatever behind it is checked
already, so no request waits for a slower one's signatures. Queues are bounded:
when full, the node answers 429 instead of growing without limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from trustmesh._problems import Problem
from trustmesh.errors import InvalidReading, StoreError
from trustmesh.identity import PublicKey
from trustmesh.log.compact import CompactRange
from trustmesh.log.merkle import leaf_hash
from trustmesh.log.note import NoteSigner
from trustmesh.log.store import DeviceKey, LogStore
from trustmesh.node._devices import DeviceDirectory, DeviceRecord, key_in
from trustmesh.node._latest import LatestCheckpoint, SignedCheckpoint
from trustmesh.node._metrics import Metrics
from trustmesh.node._receipts import batch_receipts
from trustmesh.node._state import Evidence, NodeState
from trustmesh.node._verify import BatchVerifier
from trustmesh.reading import Reading, check_alg, parse_reading

log = logging.getLogger("trustmesh.node")

MAX_FUTURE_MS = 5 * 60 * 1000  # a device clock may run ahead by this much
MAX_AGE_MS = 7 * 24 * 3600 * 1000  # store-and-forward: readings this old are still taken
QUEUE_LIMIT = 50_000  # readings waiting to be appended (≤ 8 KiB each: memory stays bounded)
BATCH_LIMIT = 2_000


@dataclass(frozen=True)
class _SameAs:
    """The same bytes as a reading earlier in the batch: it gets that receipt."""

    reading: Reading


class Accepted:
    """A logged reading and its receipt: a tlog-proof of it in a tree of ``size``
    the log signed (empty until the batch's checkpoint is signed).

    Not a frozen dataclass (whose ``__init__`` costs four times this one's): its
    receipt is filled in once, by :meth:`complete`, when its batch's checkpoint is
    signed; treat it as immutable after that."""

    __slots__ = ("did", "duplicate", "index", "leaf_hash", "proof", "seq", "size")

    def __init__(
        self,
        did: str,
        seq: int,
        index: int,
        leaf_hash: bytes,
        duplicate: bool,
        size: int = 0,
        proof: str = "",
    ) -> None:
        self.did = did
        self.seq = seq
        self.index = index
        self.leaf_hash = leaf_hash
        self.duplicate = duplicate
        self.size = size
        self.proof = proof

    def complete(self, size: int, proof: str) -> None:
        """Its receipt: a tlog-proof in the signed tree of ``size``."""
        self.size, self.proof = size, proof

    def to_json(self, origin: str) -> dict[str, Any]:
        return {
            "origin": origin,
            "did": self.did,
            "seq": self.seq,
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "size": self.size,
            "proof": self.proof,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class _Committed:
    """What a committed batch's receipts are made from."""

    before: CompactRange  # the log before the batch
    leaves: list[bytes]  # the leaf hashes it appended
    earlier: dict[int, list[bytes]]  # duplicates of older entries: proofs in the new tree


class Ingestor:
    def __init__(
        self,
        *,
        store: LogStore,
        signer: NoteSigner,
        latest: LatestCheckpoint,
        directory: DeviceDirectory,
        state: NodeState,
        verifier: BatchVerifier,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        lookup: Callable[[Callable[[], Any]], Any],
        on_logged: Callable[[int, list[Reading], list[bytes]], None] | None = None,
    ) -> None:
        """``on_logged``: told of each appended batch's fresh readings (the index of
        the first, the readings, their leaf hashes), on the sequencer's thread."""
        self.store = store
        self.on_logged = on_logged
        self.signer = signer
        self.origin = signer.name
        self.latest = latest
        self.directory = directory
        self.state = state
        self.verifier = verifier
        self.metrics = metrics
        self.clock_ms = clock_ms
        self._compact = store.compact_range()  # the log as the sequencer left it
        self._lookup = lookup  # runs blocking chain lookups off the event loop
        # Requests in arrival order: their readings, their checks (key lookups and
        # signatures, running meanwhile), and the future their answers go to.
        self._queue: deque[
            tuple[
                list[Reading],
                asyncio.Future[list[Problem | None]],
                asyncio.Future[list[Accepted | Problem]],
            ]
        ] = deque()
        self._arrived = asyncio.Event()  # set when the queue is not empty
        self._queued = 0  # readings in the queue (its bound: QUEUE_LIMIT)
        # The last logged seq per device: the sequencer is the log's only writer,
        # so it knows them; the common case (a new, higher seq) costs no query.
        self._last_seq: dict[str, int | None] = {}

    @property
    def queue_depth(self) -> int:
        return self._queued

    async def submit(self, data: bytes) -> Accepted:
        """Take one reading; its receipt once logged, or raise a Problem."""
        (outcome,) = await self.submit_many([data])
        if isinstance(outcome, Problem):
            raise outcome
        return outcome

    async def submit_many(
        self, items: list[bytes], decoded: list[Any] | None = None
    ) -> list[Accepted | Problem]:
        """Take readings in order; for each, its receipt once logged, or a Problem.

        ``decoded``: the items as cbor2 decoded them already, if they were."""
        results: list[Accepted | Problem | None] = [None] * len(items)
        readings: list[tuple[int, Reading]] = []
        now = self.clock_ms()
        earliest, latest = now - MAX_AGE_MS, now + MAX_FUTURE_MS
        for position, data in enumerate(items):
            try:
                reading = parse_reading(data, decoded=decoded[position] if decoded else None)
            except InvalidReading as exc:
                results[position] = Problem.from_reading(exc)
                continue
            if not earliest <= reading.ts <= latest:
                results[position] = Problem(
                    "clock", f"ts {reading.ts} is outside the window around {now}"
                )
                continue
            readings.append((position, reading))
        if readings:
            group = [reading for _, reading in readings]
            # Queued now, in arrival order, with key lookups and signature checks
            # running meanwhile: the sequencer keeps each device's readings in order.
            checked = asyncio.ensure_future(self._authenticate(group))
            future: asyncio.Future[list[Accepted | Problem]] = (
                asyncio.get_running_loop().create_future()
            )
            if self._queued + len(group) > QUEUE_LIMIT:
                checked.cancel()
                outcomes: list[Accepted | Problem] = [
                    Problem("over-capacity", "the node is over capacity; retry shortly")
                ] * len(group)
            else:
                self._queue.append((group, checked, future))
                self._arrived.set()
                self._queued += len(group)
                self.metrics.queue_depth.set(self._queued)
                outcomes = await future
            for (position, _), outcome in zip(readings, outcomes, strict=True):
                results[position] = outcome
        final = [r for r in results if r is not None]
        for outcome in final:
            if isinstance(outcome, Problem):
                self.metrics.rejected.labels(reason=outcome.slug).inc()
        self.metrics.accepted.inc(len(final) - sum(isinstance(o, Problem) for o in final))
        return final

    async def _authenticate(self, readings: list[Reading]) -> list[Problem | None]:
        """For each reading, None if the registry's key for it signed it, else a Problem."""
        problems: list[Problem | None] = [None] * len(readings)
        pairs: list[tuple[Reading, PublicKey]] = []
        positions: list[int] = []
        # One record per device for the whole group: a registration seen mid-way must
        # not accept a later seq of a device whose earlier ones it refused (those
        # would then be replays, never to be logged).
        records: dict[str, DeviceRecord | Problem] = {}
        only_keys: dict[str, PublicKey] = {}  # devices with one key, from seq 0 on
        for position, reading in enumerate(readings):
            try:
                key = only_keys.get(reading.did)
                if key is None:
                    record = await self._record(reading.did, records)
                    key = key_in(reading.did, record, reading.seq)  # (refuses an inactive one)
                    if len(record.keys) == 1 and record.keys[0][0] == 0:
                        only_keys[reading.did] = key  # its key for every seq of this request
                check_alg(reading, key)
            except Problem as problem:
                problems[position] = problem
                continue
            except InvalidReading as exc:
                problems[position] = Problem("signature", str(exc))
                continue
            pairs.append((reading, key))
            positions.append(position)
        if pairs:
            reasons = await self.verifier.verify_many(pairs)
            for position, reason in zip(positions, reasons, strict=True):
                if reason is not None:
                    problems[position] = Problem("signature", reason)
        return problems

    async def _record(self, did: str, records: dict[str, DeviceRecord | Problem]) -> DeviceRecord:
        """The device's record, asked once per request (its Problem raised, if any)."""
        record = records.get(did)
        if record is None:
            try:
                record = self.directory.cached_record(did) or await self._lookup(
                    partial(self.directory.record, did)
                )
            except Problem as problem:
                record = problem
            records[did] = record
        if isinstance(record, Problem):
            raise record
        return record

    async def run(self) -> None:
        """The sequencer: forever, append what is ready in one batch; its checkpoint
        is signed, its receipts made and its requests answered while the next is
        appended."""
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            groups = [self._queue.popleft()]
            waiting = len(groups[0][0])
            await asyncio.wait([groups[0][1]])  # the first in order: its checks done
            # With it, whatever queued behind it is checked already: nothing waits
            # for a slower request's signatures to be answered.
            while waiting < BATCH_LIMIT and self._queue and self._queue[0][1].done():
                groups.append(self._queue.popleft())
                waiting += len(groups[-1][0])
            self._queued -= waiting
            self.metrics.queue_depth.set(self._queued)
            checks = await asyncio.gather(
                *(checked for _, checked, _ in groups), return_exceptions=True
            )
            answers: list[list[Accepted | Problem | None]] = []
            ready: list[Reading] = []
            slots: list[tuple[int, int]] = []
            for number, ((readings, _, _), check) in enumerate(zip(groups, checks, strict=True)):
                if isinstance(check, BaseException):
                    answers.append([_internal(check)] * len(readings))
                    continue
                answers.append(list(check))
                for position, (reading, problem) in enumerate(zip(readings, check, strict=True)):
                    if problem is None:
                        ready.append(reading)
                        slots.append((number, position))
            futures = [future for _, _, future in groups]
            if not ready:
                _answer(futures, answers)
                continue
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                outcomes, committed = await loop.run_in_executor(None, self._sequence, ready)
            except Exception as exc:  # not the store's known failures: still, answer them
                log.exception("sequencing a batch failed")  # and go on with the next
                outcomes, committed = [_internal(exc)] * len(ready), None
            # Off the sequencer's path: the loop signs and answers this batch while the
            # sequencer's thread checks and appends the next (batches finish in order).
            loop.call_soon(self._finish, outcomes, committed, slots, answers, futures, started)

    def _finish(
        self,
        outcomes: list[Accepted | Problem],
        committed: _Committed | None,
        slots: list[tuple[int, int]],
        answers: list[list[Accepted | Problem | None]],
        futures: list[asyncio.Future[list[Accepted | Problem]]],
        started: float,
    ) -> None:
        """Sign a committed batch's checkpoint, make its receipts, answer its requests."""
        if committed is not None:
            try:
                self._receipts(outcomes, committed)
            except Exception as exc:  # the entries are logged: a retry gets their receipts
                outcomes = [_internal(exc)] * len(outcomes)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        for (number, position), outcome in zip(slots, outcomes, strict=True):
            answers[number][position] = outcome
        _answer(futures, answers)

    def _receipts(self, outcomes: list[Accepted | Problem], committed: _Committed) -> None:
        """Give each acceptance its receipt: one checkpoint signed for the batch.

        On the event loop: a few microseconds a reading, less than a hop to a thread
        costs (and a worker would send each receipt, ~1 KB, back through a pipe)."""
        made = batch_receipts(self.signer, committed.before, committed.leaves, committed.earlier)
        self.latest.advance(SignedCheckpoint(made.size, made.root, made.note))
        self.metrics.checkpoints_signed.inc()
        first, fresh, earlier = committed.before.size, made.fresh, made.earlier
        for outcome in outcomes:
            if isinstance(outcome, Accepted):
                index = outcome.index
                outcome.complete(
                    made.size, fresh[index - first] if index >= first else earlier[index]
                )

    def _sequence(
        self, readings: list[Reading]
    ) -> tuple[list[Accepted | Problem], _Committed | None]:
        """Check a batch against the log and itself and append it (receipts to come)."""
        outcomes: list[Accepted | Problem | Reading | _SameAs] = []
        in_batch: dict[tuple[str, int], Reading] = {}
        last_in_batch: dict[str, int] = {}
        try:
            if self.store.settle():  # an append answered 503 landed after all:
                self._last_seq.clear()  # its readings are logged (retries get receipts)
                self._compact = self.store.compact_range()
            for reading in readings:
                outcomes.append(self._check(reading, in_batch, last_in_batch))
            fresh = [o for o in outcomes if isinstance(o, Reading)]
            leaves = [leaf_hash(r.entry) for r in fresh]
            indices = self.store.append(
                [r.entry for r in fresh], [DeviceKey(r.did, r.seq) for r in fresh], leaves
            )
        except StoreError as exc:
            log.error("log store failure: %s", exc)
            return [_unavailable()] * len(readings), None
        for reading in fresh:  # a device's fresh seqs rise through the batch (_check)
            self._last_seq[reading.did] = reading.seq
        if fresh and self.on_logged is not None:
            self.on_logged(indices[0], fresh, leaves)
        before, self._compact = self._compact, self.store.compact_range()
        earlier = self._earlier_proofs(outcomes, self._compact.size)
        results: list[Accepted | Problem] = []
        logged: dict[int, int] = {}  # id of a fresh reading → its position (for _SameAs)
        for outcome in outcomes:
            if isinstance(outcome, Reading):
                n = logged[id(outcome)] = len(logged)
                results.append(Accepted(outcome.did, outcome.seq, indices[n], leaves[n], False))
            elif isinstance(outcome, _SameAs):
                n = logged[id(outcome.reading)]
                reading = outcome.reading
                results.append(Accepted(reading.did, reading.seq, indices[n], leaves[n], True))
            else:
                results.append(outcome)
        self.metrics.tree_size.set(self.store.size)
        committed = _Committed(before, leaves, earlier)
        return results, committed if any(isinstance(r, Accepted) for r in results) else None

    def _earlier_proofs(
        self, outcomes: list[Accepted | Problem | Reading | _SameAs], size: int
    ) -> dict[int, list[bytes]]:
        """Inclusion proofs in the tree of ``size`` of the entries this batch repeats
        (retries of readings logged before); a retry whose proof cannot be read is
        answered store-unavailable (its reading is logged: a retry gets its receipt)."""
        earlier: dict[int, list[bytes]] = {}
        for position, outcome in enumerate(outcomes):
            if isinstance(outcome, Accepted):
                try:
                    earlier[outcome.index] = self.store.inclusion_proof(outcome.index, size)
                except StoreError as exc:
                    log.error("log store failure: %s", exc)
                    outcomes[position] = _unavailable()
        return earlier

    def _check(
        self,
        reading: Reading,
        in_batch: dict[tuple[str, int], Reading],
        last_in_batch: dict[str, int],
    ) -> Accepted | Problem | Reading | _SameAs:
        key = (reading.did, reading.seq)
        earlier = in_batch.get(key)
        if earlier is not None:
            if earlier.entry == reading.entry:
                return _SameAs(earlier)
            return self._equivocation(reading, None, earlier.entry)
        last = last_in_batch.get(reading.did)
        if last is None:
            last = self._logged_last_seq(reading.did)
        if last is not None and reading.seq <= last:
            return self._seen_seq(reading, last)
        in_batch[key] = reading
        last_in_batch[reading.did] = reading.seq
        return reading

    def _logged_last_seq(self, did: str) -> int | None:
        if did not in self._last_seq:
            if len(self._last_seq) > 1_000_000:
                self._last_seq.clear()
            self._last_seq[did] = self.store.last_seq(did)
        return self._last_seq[did]

    def _seen_seq(self, reading: Reading, last: int) -> Accepted | Problem:
        """A seq at or below the last: a retry, an equivocation, or a replay."""
        index = self.store.find(reading.did, reading.seq)
        if index is not None:
            logged = self.store.entry(index)
            if logged == reading.entry:  # a retry (failover): a receipt for the original
                return Accepted(reading.did, reading.seq, index, leaf_hash(logged), True)
            return self._equivocation(reading, index, logged)
        return Problem("replay", f"seq {reading.seq} is not above {last}, the last logged")

    def _equivocation(self, reading: Reading, index: int | None, logged: bytes) -> Problem:
        if index is not None:
            self.state.add_evidence(
                Evidence(reading.did, reading.seq, index, logged, reading.entry, self.clock_ms())
            )
        log.warning("equivocation by %s at seq %d", reading.did, reading.seq)
        return Problem(
            "equivocation", f"{reading.did} already signed another reading with seq {reading.seq}"
        )


def _answer(
    futures: list[asyncio.Future[list[Accepted | Problem]]],
    answers: list[list[Accepted | Problem | None]],
) -> None:
    for future, answer in zip(futures, answers, strict=True):
        if not future.done():
            future.set_result([a if a is not None else _internal(None) for a in answer])


def _unavailable() -> Problem:
    return Problem("store-unavailable", "the log store is unavailable; retry")


def _internal(error: BaseException | None) -> Problem:
    log.error("unexpected error while checking a reading: %r", error)
    return Problem("store-unavailable", "internal error; retry")
