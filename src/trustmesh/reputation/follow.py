"""Following logs epoch by epoch: the one path by which a node keeps its tables
and anyone recomputes them.

A :class:`Follower` is fed each log's entries in index order and closes one
epoch at a time. Closing epoch ``e`` computes its table over what was fed so far
and records that as the epoch's :class:`Cut`: how many entries of each log it
covered, and the chain block its stakes were read at. Readings of an epoch
already closed (a device whose outbox empties late) count for no epoch, so the
cut says exactly which entries a table is a function of: a second follower fed
the same entries up to the same cuts, with the same stakes, builds the same
tables, root for root. Epochs close in order, with none skipped (an epoch
without readings still forgets).

Entries whose signature does not verify (a log may hold an invalid entry, which
the Disputes contract proves) count for no one; :attr:`Follower.skipped` counts
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trustmesh.errors import InvalidEvidence, InvalidReading
from trustmesh.reading import Reading, verify_reading
from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.evidence import Evidence, Stake
from trustmesh.reputation.observe import Observer, Packed, pack
from trustmesh.reputation.params import Params
from trustmesh.reputation.records import Records
from trustmesh.reputation.table import ReputationTable, compute_epoch
from trustmesh.reputation.witness import WitnessRules

__all__ = ["Cut", "Follower", "replay"]

CHUNK = 1_000  # entries fetched at a time

Entries = Callable[[str, int, int], Sequence[bytes]]
"""(origin, start, end) -> that log's entries [start, end)."""
Facts = Callable[[list[str], list[str], int, int], tuple[Sequence[Stake], Sequence[Evidence]]]
"""(dids, log origins, block, epoch) -> the stakes of those devices and of those
logs' nodes at ``block`` (aged at ``epoch``'s start), and the chain's evidence of
the epoch."""


@dataclass(frozen=True)
class Cut:
    """What an epoch's table was computed over."""

    epoch: int
    sizes: Mapping[str, int]  # log origin -> entries covered
    block: int  # the chain block the stakes were read at

    def to_json(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "logs": dict(sorted(self.sizes.items())), "block": self.block}

    @classmethod
    def from_json(cls, data: Any) -> Cut:
        """A cut as :meth:`to_json` wrote it (or a node published it)."""
        try:
            epoch, logs, block = data["epoch"], data["logs"], data["block"]
            sizes = {str(origin): int(size) for origin, size in logs.items()}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InvalidEvidence(f"not a reputation cut: {exc}") from None
        if (
            type(epoch) is not int
            or type(block) is not int
            or min(epoch, block, 0, *sizes.values()) < 0
        ):
            raise InvalidEvidence("a cut's epoch, block and sizes are non-negative integers")
        return cls(epoch, sizes, block)


@dataclass
class Follower:
    """Feeds entries into epochs and closes them in order."""

    epoch_ms: int
    params: Params = field(default_factory=Params)
    rules: WitnessRules = field(default_factory=WitnessRules)
    verify: Callable[[bytes], Reading] = verify_reading
    next_epoch: int | None = None  # the first epoch not closed yet
    sizes: dict[str, int] = field(default_factory=dict)  # entries fed, per log
    states: dict[bytes, BetaState] = field(default_factory=dict)  # after the last close
    skipped: int = 0
    records: Records | None = None  # where open epochs' readings wait (None: in memory)

    def __post_init__(self) -> None:
        self._observer = Observer(self.epoch_ms, self.rules, self.records)
        self._dids: set[str] = set()

    def feed(self, origin: str, index: int, entry: bytes) -> None:
        """Entry ``index`` of the log ``origin``; each log's entries in order."""
        self._advance(origin, index)
        try:
            reading = self.verify(entry)
        except InvalidReading:
            self.skipped += 1
            return
        self._count(self.pack((reading,), (None,)))

    def pack(self, readings: Sequence[Reading], leaves: Sequence[bytes | None]) -> Packed:
        """:func:`~trustmesh.reputation.observe.pack` for this follower's epochs (on any
        thread: a node packs each batch it logs, and feeds it later)."""
        return pack(readings, leaves, self.epoch_ms)

    def feed_packed(self, origin: str, first: int, packed: Packed) -> None:
        """Entries of the log ``origin`` from ``first`` on, as :meth:`pack` packed the
        readings they hold: how a node feeds what its ingest has logged (a batch at once)."""
        self._advance(origin, first)
        self.sizes[origin] = first + packed.count
        self._count(packed)

    def _advance(self, origin: str, index: int) -> None:
        expected = self.sizes.get(origin, 0)
        if index != expected:
            raise InvalidEvidence(f"{origin}: entry {index} fed, {expected} expected next")
        self.sizes[origin] = index + 1

    def _count(self, packed: Packed) -> None:
        """Packed readings: those of epochs not closed."""
        self._dids.update(self._observer.add_packed(packed, self.next_epoch))

    def feed_up_to(self, origin: str, size: int, entries: Entries) -> None:
        """Feed the log ``origin`` from where it stands up to ``size`` entries, read
        from ``entries`` a chunk at a time."""
        for begin in range(self.sizes.get(origin, 0), size, CHUNK):
            end = min(size, begin + CHUNK)
            chunk = entries(origin, begin, end)
            if len(chunk) != end - begin:
                raise InvalidEvidence(
                    f"{origin}: {len(chunk)} entries from {begin}, not {end - begin}"
                )
            for index, entry in enumerate(chunk, begin):
                self.feed(origin, index, entry)

    def pending(self, before: int) -> list[int]:
        """The epochs to close, in order, for every epoch before ``before`` to be closed:
        from the first epoch that holds a reading (or the next not closed) on."""
        held = self._observer.epochs()
        start = self.next_epoch if self.next_epoch is not None else (held[0] if held else before)
        return list(range(start, before))

    def close(
        self,
        epoch: int,
        stakes: Sequence[Stake] = (),
        block: int = 0,
        evidence: Sequence[Evidence] = (),
    ) -> tuple[Cut, ReputationTable]:
        """Close ``epoch`` (the next in order): its table over everything fed so far,
        with ``stakes`` as read at ``block`` and the chain's ``evidence``."""
        if self.next_epoch is not None and epoch != self.next_epoch:
            raise InvalidEvidence(f"epoch {epoch} closed out of order: {self.next_epoch} is next")
        inputs = self._observer.inputs(epoch, stakes, self.states, evidence)
        table = compute_epoch(inputs, self.params)
        self.states = {subject: row.state for subject, row in table.rows.items()}
        self._observer.forget(epoch)
        self.next_epoch = epoch + 1
        return Cut(epoch, dict(self.sizes), block), table

    @property
    def dids(self) -> list[str]:
        """Every DID with a reading that counted so far (whose stakes a close needs)."""
        return sorted(self._dids)


def replay(
    follower: Follower, cuts: Sequence[Cut], entries: Entries, facts: Facts
) -> Iterator[tuple[Cut, ReputationTable]]:
    """Rebuild the tables of ``cuts`` (consecutive epochs, oldest first): feed each
    log up to the cut, close the epoch with the chain's facts at the cut's block. How
    a node restores its tables after a restart, and how anyone recomputes a node's."""
    for cut in cuts:
        for origin, size in sorted(cut.sizes.items()):
            if follower.sizes.get(origin, 0) > size:
                raise InvalidEvidence(f"the cut of epoch {cut.epoch} takes {origin} back")
            follower.feed_up_to(origin, size, entries)
        stakes, evidence = facts(follower.dids, sorted(cut.sizes), cut.block, cut.epoch)
        yield follower.close(cut.epoch, stakes, cut.block, evidence)
