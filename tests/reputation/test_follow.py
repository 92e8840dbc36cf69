"""Following logs: epochs close in order over what was fed, replaying the same cuts
rebuilds the same tables, and a cut that covers other entries does not."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from trustmesh.errors import InvalidEvidence
from trustmesh.identity import SoftwareSigner
from trustmesh.reading import sign_reading
from trustmesh.reputation import Evidence, Stake
from trustmesh.reputation.follow import Cut, Follower, replay

EPOCH_MS = 1_000


def _log() -> list[bytes]:
    signers = [SoftwareSigner.generate() for _ in range(3)]
    # entries 10 and 11 are epoch 0's (ts < 1000), logged late, after epoch 1's first
    return [
        sign_reading(
            signers[i % 3],
            seq=i // 3 + 1,
            ts=i * 100 if i not in (10, 11) else 900 + i,
            sensor="t",
            value=i,
        )
        for i in range(30)
    ]


def _facts(
    dids: list[str], origins: list[str], block: int, epoch: int
) -> tuple[Sequence[Stake], Sequence[Evidence]]:
    return [], []


def _live(log: list[bytes], closes_after: dict[int, int]) -> list[tuple[Cut, bytes]]:
    """Feed ``log`` in order, closing epoch e once closes_after[e] entries are in."""
    follower, closed = Follower(EPOCH_MS), []
    for index, entry in enumerate(log):
        follower.feed("log", index, entry)
        for epoch in follower.pending(max(closes_after) + 1):
            if closes_after[epoch] <= index + 1:
                cut, table = follower.close(epoch, block=epoch)
                closed.append((cut, table.score_root))
    return closed


def test_replaying_the_cuts_rebuilds_every_table() -> None:
    log = _log()
    closed = _live(log, {0: 12, 1: 20, 2: 30})  # epoch 0 closed with its late entries in
    cuts = [cut for cut, _ in closed]
    assert [c.sizes["log"] for c in cuts] == [12, 20, 30]
    replayed = replay(Follower(EPOCH_MS), cuts, lambda o, a, b: log[a:b], _facts)
    assert [(c, t.score_root) for c, t in replayed] == closed
    # the same entries cut elsewhere make other tables: closed at 10, the late two
    # count for no epoch
    moved = [Cut(0, {"log": 10}, 0), *cuts[1:]]
    other = [
        t.score_root for _, t in replay(Follower(EPOCH_MS), moved, lambda o, a, b: log[a:b], _facts)
    ]
    assert other[0] != closed[0][1] and other[1] != closed[1][1]


def test_misuse_is_refused_by_name() -> None:
    log, follower = _log(), Follower(EPOCH_MS)
    with pytest.raises(InvalidEvidence, match="expected next"):
        follower.feed("log", 1, log[1])
    follower.feed("log", 0, log[0])
    follower.close(0)
    with pytest.raises(InvalidEvidence, match="out of order"):
        follower.close(2)
    backwards = [Cut(1, {"log": 0}, 0)]
    with pytest.raises(InvalidEvidence, match="takes log back"):
        list(replay(follower, backwards, lambda o, a, b: log[a:b], _facts))
    short = [Cut(1, {"log": 5}, 0)]
    with pytest.raises(InvalidEvidence, match="entries from"):
        list(replay(follower, short, lambda o, a, b: log[a : b - 1], _facts))
    for bad in ({}, {"epoch": -1, "logs": {}, "block": 0}, {"epoch": 1, "logs": [], "block": 0}):
        with pytest.raises(InvalidEvidence):
            Cut.from_json(bad)


def test_invalid_entries_count_for_no_one() -> None:
    log, follower = _log(), Follower(EPOCH_MS)
    forged = bytearray(log[0])
    forged[-1] ^= 1
    follower.feed("log", 0, bytes(forged))
    follower.feed("log", 1, log[1])
    assert follower.skipped == 1
    _, table = follower.close(0)
    assert len(table.rows) == 1


def test_readings_fed_in_batches_count_as_entries_fed_one_by_one() -> None:
    """A node feeds its ingest's batches packed (verified readings); a watcher, entries
    one by one: the same tables (epoch 0 closed between batches, so that later
    readings of an epoch already closed count for none)."""
    from trustmesh.log.merkle import leaf_hash
    from trustmesh.reading import parse_reading

    log = _log()
    by_entry, by_batch = Follower(EPOCH_MS), Follower(EPOCH_MS)
    tables = []
    for follower, batched in ((by_entry, False), (by_batch, True)):
        roots = []
        for start, end in ((0, 7), (7, 20), (20, 30)):
            if batched:
                readings = [parse_reading(entry) for entry in log[start:end]]
                leaves = [leaf_hash(e) for e in log[start:end]]
                follower.feed_packed("log", start, follower.pack(readings, leaves))
            else:
                for index in range(start, end):
                    follower.feed("log", index, log[index])
            if start == 0:  # (entries 10 and 11, epoch 0's, come after this)
                roots.append(follower.close(0)[1].score_root)
        roots.append(follower.close(1)[1].score_root)
        roots.append(follower.close(2)[1].score_root)
        tables.append(roots)
    assert tables[0] == tables[1]
    assert by_entry.sizes == by_batch.sizes == {"log": 30}
    with pytest.raises(InvalidEvidence, match="expected next"):
        by_batch.feed_packed("log", 31, by_batch.pack([parse_reading(log[0])], [leaf_hash(log[0])]))
