"""The node's reputation tables: it follows its own log and, a grace period after
each reputation epoch ends, closes it (:mod:`trustmesh.reputation.follow`).

Every cut is recorded before its table is served, so that after a restart the node
rebuilds the same tables by replaying its log up to the same cuts, as anyone who
recomputes them does. The entries were verified when they were logged: the node
does not check their signatures again (a recomputer checks them). Its ingest
hands each logged batch over packed, 48 bytes a reading, from the readings it
parsed and their leaf hashes (:meth:`ReputationKeeper.logged`: on the sequencer's
thread, then an append to a queue), and the keeper's thread counts them as the
log grows (beyond a few MB in a scratch file, read back a device at a time at
the close). What waits in the queue while an epoch closes (seconds, with the
chain) is packed too: as whole readings it grew the node by ~200 MB a close under
load. Only what no batch handed over (entries logged before a restart, or by an
append whose answer was lost) is read back from the log and parsed. Closing an
epoch then costs no parsing at all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from trustmesh.chain.reputation import ReputationContract
from trustmesh.errors import Error, InvalidReading
from trustmesh.log.store import LogStore
from trustmesh.node._state import NodeState
from trustmesh.reading import Reading, parse_reading
from trustmesh.reputation import ReputationTable, SubjectScore
from trustmesh.reputation.follow import Cut, Facts, Follower, replay
from trustmesh.reputation.observe import Packed
from trustmesh.reputation.records import SpilledRecords
from trustmesh.reputation.witness import subject_id

log = logging.getLogger("trustmesh.node.reputation")

KEEP = 64  # tables kept in memory, newest
COUNT_SECONDS = 0.5  # how often what the ingest handed over is counted


class ReputationKeeper:
    def __init__(
        self,
        *,
        store: LogStore,
        origin: str,
        state: NodeState,
        facts: Facts,
        current_block: Callable[[], int],
        epoch_ms: int,
        clock_ms: Callable[[], int],
        on_close: Callable[[ReputationTable], None] | None = None,
        scratch: Path | None = None,
    ) -> None:
        """``scratch``: a file for the readings of open epochs (else they wait in
        memory, 48 bytes each: a busy log puts millions in an epoch)."""
        self.store, self.origin, self.state = store, origin, state
        self.facts, self.current_block, self.clock_ms = facts, current_block, clock_ms
        self.epoch_ms = epoch_ms
        self.on_close = on_close
        self.poster: TablePoster | None = None  # the node's attester, when it posts
        self.grace_ms = epoch_ms // 4  # late readings of an epoch still count this long
        self._records = SpilledRecords(scratch) if scratch is not None else None
        self.follower = Follower(epoch_ms, verify=parse_reading, records=self._records)
        self.tables: OrderedDict[int, tuple[Cut, ReputationTable]] = OrderedDict()
        self._lock = threading.Lock()
        self._handed: deque[tuple[int, Packed]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def cuts(self) -> list[Cut]:
        """Every epoch's cut so far, oldest first."""
        return [Cut.from_json(json.loads(text)) for text in self.state.cuts()]

    def restore(self) -> None:
        """Rebuild the recorded epochs' tables from the log."""
        cuts = self.cuts()
        for cut, table in replay(self.follower, cuts, self._entries, self.facts):
            self._keep(cut, table)
        if cuts:
            log.info("reputation: %d epochs rebuilt from the log", len(cuts))

    def logged(self, first: int, readings: list[Reading], leaves: list[bytes]) -> None:
        """``readings`` (verified, with their leaf hashes) were logged at consecutive
        indices from ``first``: packed here, to be counted on this keeper's thread."""
        self._handed.append((first, self.follower.pack(readings, leaves)))

    def _count_handed(self) -> None:
        """Feed what the ingest handed over, in the log's order; what it did not
        hand over is read from the log first."""
        while self._handed:
            first, packed = self._handed.popleft()
            end = first + packed.count
            fed = self.follower.sizes.get(self.origin, 0)
            if fed >= end:
                continue  # read from the log already (an epoch closed meanwhile)
            if fed < first:
                self.follower.feed_up_to(self.origin, first, self._entries)
                fed = first
            if fed == first:
                self.follower.feed_packed(self.origin, first, packed)
            else:  # (part of it read from the log already: the rest from there too)
                self.follower.feed_up_to(self.origin, end, self._entries)

    def step(self) -> list[int]:
        """Count what was logged; close every epoch that is due; returns the epochs
        closed."""
        self._count_handed()
        before = (self.clock_ms() - self.grace_ms) // self.epoch_ms
        size = self.store.size
        if not self._due(before, size):
            return []
        self.follower.feed_up_to(self.origin, size, self._entries)
        closed = []
        block = self.current_block()  # one block for every epoch closed now: read once
        for epoch in self.follower.pending(before):
            stakes, evidence = self.facts(self.follower.dids, [self.origin], block, epoch)
            cut, table = self.follower.close(epoch, stakes, block, evidence)
            self.state.add_cut(epoch, json.dumps(cut.to_json()))
            self._keep(cut, table)
            closed.append(epoch)
            if self.on_close is not None:
                try:
                    self.on_close(table)
                except Error as exc:  # the table stands and is served; the post waits
                    log.warning("reputation: posting epoch %d failed: %s", epoch, exc)
        return closed

    def _due(self, before: int, size: int) -> bool:
        """Whether an epoch before ``before`` may be closed: nothing is fed until then."""
        if self.follower.next_epoch is not None:
            return self.follower.next_epoch < before
        if self.follower.pending(before):  # nothing closed yet: the earliest counted
            return True
        fed = self.follower.sizes.get(self.origin, 0)
        if fed >= size:
            return False
        try:  # or the first entry not fed says which epoch comes first
            first = parse_reading(self.store.entry(fed)).ts // self.epoch_ms
        except InvalidReading:
            return True
        return first < before

    def posted(self, epoch: int) -> dict[str, object] | None:
        """What the Reputation contract holds for ``epoch``: its root, and whether it
        is final (None when this node posts nowhere)."""
        if self.poster is None:
            return None
        contract = self.poster.contract
        root = contract.root(epoch)
        if root == bytes(32):
            return {"root": None, "final": False}
        return {"root": root.hex(), "final": contract.is_final(epoch)}

    def latest_row(self, did: str) -> tuple[int, SubjectScore] | None:
        """(epoch, row) of ``did`` in the latest table, if it holds one."""
        found = self.latest()
        row = found[1].rows.get(subject_id(did)) if found is not None else None
        return None if row is None or found is None else (found[1].epoch, row)

    def latest(self) -> tuple[Cut, ReputationTable] | None:
        with self._lock:
            return next(reversed(self.tables.values()), None)

    def epoch(self, epoch: int) -> tuple[Cut, ReputationTable] | None:
        with self._lock:
            return self.tables.get(epoch)

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="reputation", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._records is not None and (self._thread is None or not self._thread.is_alive()):
            self._records.close()

    def _run(self, interval: float) -> None:
        """Count what was handed over every COUNT_SECONDS, and step every ``interval``."""
        due = time.monotonic() + interval
        while not self._stop.wait(min(interval, COUNT_SECONDS)):
            try:
                if time.monotonic() < due:
                    self._count_handed()
                    continue
                due = time.monotonic() + interval
                self.step()
            except Error as exc:  # the chain or the store unavailable: next round
                log.warning("reputation: closing an epoch failed (will retry): %s", exc)

    def _entries(self, origin: str, start: int, end: int) -> list[bytes]:
        if origin != self.origin:
            raise Error(f"this node keeps only its own log, not {origin}")
        return self.store.entries(start, end)

    def _keep(self, cut: Cut, table: ReputationTable) -> None:
        with self._lock:
            self.tables[cut.epoch] = (cut, table)
            while len(self.tables) > KEEP:
                self.tables.popitem(last=False)


class TablePoster:
    """Posts each table this node closes to the Reputation contract, as a staked
    attester (it joins with the minimum stake first), and takes each bond back once
    the table's window has passed. An epoch someone else posted first is left."""

    def __init__(self, contract: ReputationContract, clock: Callable[[], float]) -> None:
        self.contract = contract
        self.clock = clock
        self.window = contract.window()
        self.pending: list[tuple[float, int]] = []  # (when posted, epoch), oldest first

    def __call__(self, table: ReputationTable) -> None:
        self.finalize_due()
        if self.contract.root(table.epoch) != bytes(32):
            return
        if self.contract.stake() < self.contract.min_stake():
            self.contract.join(self.contract.min_stake())
        self.contract.post(table)
        self.pending.append((self.clock(), table.epoch))

    def finalize_due(self) -> None:
        while self.pending and self.pending[0][0] + self.window < self.clock():
            _, epoch = self.pending.pop(0)
            if not self.contract.is_final(epoch):
                self.contract.finalize(epoch)
