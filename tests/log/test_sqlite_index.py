"""The SQLite store's per-device index, whose keys wait in ``pending_keys`` and move
into runs in bulk: exact before, during and after each move, for the writer, for
another reader of the same file, and after a reopen; and lower seqs beside them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trustmesh.errors import DuplicateEntry, StoreError
from trustmesh.log.store import DeviceKey, LogStore, SqliteBackend, open_store

A, B = "did:key:zA", "did:key:zB"


def _rows(path: Path) -> tuple[int, int]:
    """(rows of pending_keys, keys in device_runs)."""
    with sqlite3.connect(path) as db:
        pending = db.execute("SELECT COUNT(*) FROM pending_keys").fetchone()[0]
        in_runs = db.execute("SELECT COALESCE(SUM(LENGTH(keys)), 0) FROM device_runs")
        return int(pending), int(in_runs.fetchone()[0]) // 16


def _batch(store: LogStore, keys: list[DeviceKey]) -> list[int]:
    return store.append([f"{key.did} {key.seq}".encode() for key in keys], keys)


def test_keys_move_in_bulk_and_are_found_throughout(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = LogStore(SqliteBackend(path, index_every=10))
    reader = LogStore(SqliteBackend(path))  # another store on the same file
    logged: dict[tuple[str, int], int] = {}
    expected_rows = [(1, 0), (2, 0), (0, 12), (1, 12), (2, 12), (0, 24)]
    for number, rows in enumerate(expected_rows):
        keys = [DeviceKey(did, 10 * (2 * number + step)) for step in (1, 2) for did in (A, B)]
        for key, index in zip(keys, _batch(store, keys), strict=True):
            logged[key] = index
        assert _rows(path) == rows  # a move once 10 keys wait: at 12, then at 24
        for view in (store, reader):
            for (did, seq), index in logged.items():
                assert view.find(did, seq) == index
            assert view.find(A, 5) is None
            assert view.last_seq(A) == 10 * (2 * number + 2)
        assert (
            reader.device_entries(A, 3)
            == sorted(
                [(seq, index) for (did, seq), index in logged.items() if did == A], reverse=True
            )[:3]
        )
    store.close()
    reopened = LogStore(SqliteBackend(path, index_every=10))
    assert reopened.find(A, 120) == logged[(A, 120)]
    _batch(reopened, [DeviceKey(A, 200 + seq) for seq in range(5)])
    assert _rows(path) == (1, 24)
    reopened.close()
    again = LogStore(SqliteBackend(path, index_every=10))  # counts the 5 keys that wait
    assert again.find(A, 204) == 28
    _batch(again, [DeviceKey(A, 300 + seq) for seq in range(5)])
    assert _rows(path) == (0, 34)  # those 5 and these 5 moved
    assert again.device_entries(A, 2) == [(304, 33), (303, 32)]
    again.close()
    reader.close()


@pytest.mark.parametrize(
    "seq",
    [
        10,  # in a run (moved)
        50,  # waiting in pending_keys
        15,  # a lower seq, in device_entries
    ],
)
def test_a_logged_key_is_refused_wherever_it_waits(tmp_path: Path, seq: int) -> None:
    path = tmp_path / "log.db"
    store = LogStore(SqliteBackend(path, index_every=5))
    _batch(store, [DeviceKey(A, seq) for seq in (10, 20, 30, 40, 45)])  # moved at once
    _batch(store, [DeviceKey(A, 50), DeviceKey(A, 15)])  # waits; lower: device_entries
    root, rows = store.root(), _rows(path)
    with pytest.raises(DuplicateEntry):  # (no move in this batch: 4 keys would wait)
        _batch(store, [DeviceKey(B, 1), DeviceKey(A, 60), DeviceKey(A, seq)])
    assert (store.size, store.root(), _rows(path)) == (7, root, rows)
    assert store.find(B, 1) is None
    assert store.last_seq(A) == 50
    assert store.last_seq(B) is None
    _batch(store, [DeviceKey(A, 60), DeviceKey(A, 25)])  # a lower seq never logged: taken
    assert (store.find(A, 15), store.find(A, 25), store.find(A, 26)) == (6, 8, None)
    assert store.last_seq(A) == 60
    assert store.device_entries(A, 4) == [(60, 7), (50, 5), (45, 4), (40, 3)]
    assert store.device_entries(A, 100)[-4:] == [(25, 8), (20, 1), (15, 6), (10, 0)]


def test_a_key_twice_in_one_batch_is_refused(tmp_path: Path) -> None:
    store = LogStore(SqliteBackend(tmp_path / "log.db"))
    _batch(store, [DeviceKey(A, 10)])
    for keys in ([DeviceKey(A, 20), DeviceKey(A, 20)], [DeviceKey(A, 5), DeviceKey(A, 5)]):
        with pytest.raises(DuplicateEntry):
            _batch(store, keys)
        assert store.size == 1
        assert store.find(A, keys[0].seq) is None
    assert store.last_seq(A) == 10


def test_a_format_1_store_is_upgraded_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = open_store(path)
    store.append([b"a1", b"b7"])
    store.close()
    with sqlite3.connect(path) as db:  # as format 1 left a store: every key a row
        db.executescript("DROP TABLE pending_keys; DROP TABLE device_runs;")
        db.executemany(
            "INSERT INTO devices (id, did, last_seq) VALUES (?, ?, ?)",
            [(1, A, 1 - 2**63), (2, B, 7 - 2**63)],
        )
        db.executemany(
            "INSERT INTO device_entries VALUES (?, ?, ?)", [(1, 1 - 2**63, 0), (2, 7 - 2**63, 1)]
        )
        db.execute("UPDATE meta SET value = 1 WHERE key = 'format'")
    upgraded = open_store(path)
    assert (upgraded.find(A, 1), upgraded.find(B, 7), upgraded.last_seq(B)) == (0, 1, 7)
    with pytest.raises(DuplicateEntry):
        _batch(upgraded, [DeviceKey(A, 2), DeviceKey(B, 7)])
    _batch(upgraded, [DeviceKey(A, 2)])
    assert upgraded.device_entries(A) == [(2, 2), (1, 0)]
    upgraded.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == (2,)
        db.execute("UPDATE meta SET value = 3 WHERE key = 'format'")
    with pytest.raises(StoreError, match="store format 3, this trustmesh reads 2"):
        open_store(path)


def test_index_every_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SqliteBackend(tmp_path / "log.db", index_every=0)
