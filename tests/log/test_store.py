"""The persistent store, the same suite on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.services import fresh_database
from trustmesh.errors import CommitUncertain, DuplicateEntry, StoreError
from trustmesh.log import merkle
from trustmesh.log.bundles import decode_bundle
from trustmesh.log.store import Batch, DeviceKey, LogStore, SqliteBackend, open_store

Opener = Callable[[], LogStore]  # the open_log fixture (tests/log/conftest.py)


@pytest.fixture
def store(open_log: Opener) -> Iterator[LogStore]:
    opened = open_log()
    yield opened
    opened.close()


def _entries(n: int, start: int = 0) -> list[bytes]:
    return [f"entry {i}".encode() * (1 + i % 5) for i in range(start, start + n)]


def test_append_prove_and_reopen(open_log: Opener) -> None:
    store = open_log()
    assert store.size == 0
    assert store.root() == merkle.EMPTY_ROOT
    data: list[bytes] = []
    for size in (1, 2, 253, 1, 300, 700, 3):
        assert store.append(_entries(size, len(data))) == list(range(len(data), len(data) + size))
        data += _entries(size, len(data))
        leaves = [merkle.leaf_hash(e) for e in data]
        assert store.root() == merkle.root(leaves)
    leaves = [merkle.leaf_hash(e) for e in data]
    n = len(data)
    for index in (0, 1, 255, 256, 511, n - 1):
        assert store.entry(index) == data[index]
        assert store.leaf_hash(index) == leaves[index]
        for size in (index + 1, n):
            assert store.inclusion_proof(index, size) == merkle.inclusion_proof(
                leaves[:size], index
            )
    for old in (0, 1, 256, 257, n - 1, n):
        assert store.consistency_proof(old, n) == merkle.consistency_proof(leaves, old)
    assert store.entries(250, 520) == data[250:520]
    store.close()
    again = open_log()
    assert again.size == n
    assert again.root() == merkle.root(leaves)
    again.append([b"after reopen"])
    assert again.root() == merkle.root([*leaves, merkle.leaf_hash(b"after reopen")])
    again.close()


def test_tiles_and_bundles_in_c2sp_form(store: LogStore) -> None:
    data = _entries(600)
    store.append(data)
    leaves = [merkle.leaf_hash(e) for e in data]
    assert store.tile(0, 0) == b"".join(leaves[:256])
    assert store.tile(0, 2) == b"".join(leaves[512:600])  # partial, width 88
    assert store.tile(1, 0) == merkle.root(leaves[:256]) + merkle.root(leaves[256:512])
    assert store.tile(0, 3) is None
    assert store.tile(2, 0) is None
    assert decode_bundle(store.bundle(1) or b"") == data[256:512]
    assert decode_bundle(store.bundle(2) or b"") == data[512:600]
    assert store.bundle(3) is None


def test_per_device_index(store: LogStore) -> None:
    keys = [
        DeviceKey("did:key:zA", 1),
        None,
        DeviceKey("did:key:zB", 5),
        DeviceKey("did:key:zA", 9),
    ]
    store.append([b"a1", b"plain", b"b5", b"a9"], keys)
    assert store.find("did:key:zA", 1) == 0
    assert store.find("did:key:zA", 9) == 3
    assert store.find("did:key:zB", 5) == 2
    assert store.find("did:key:zA", 2) is None
    assert store.find("did:key:zC", 1) is None
    assert store.find("did:key:zA", -1) is None
    assert store.find("did:key:zA", 2**70) is None
    assert store.last_seq("did:key:zA") == 9
    assert store.last_seq("did:key:zB") == 5
    assert store.last_seq("did:key:zC") is None
    store.append([b"a2"], [DeviceKey("did:key:zA", 2)])  # lower seq: index kept, last unchanged
    assert store.last_seq("did:key:zA") == 9
    store.append([b"top"], [DeviceKey("did:key:zA", 2**64 - 1)])
    assert store.last_seq("did:key:zA") == 2**64 - 1


def test_duplicate_key_rolls_back_the_whole_batch(store: LogStore) -> None:
    store.append([b"x"], [DeviceKey("did:key:zA", 1)])
    root = store.root()
    with pytest.raises(DuplicateEntry):
        store.append([b"y", b"z"], [DeviceKey("did:key:zB", 1), DeviceKey("did:key:zA", 1)])
    assert store.size == 1
    assert store.root() == root
    assert store.find("did:key:zB", 1) is None
    store.append([b"y"], [DeviceKey("did:key:zB", 1)])  # still usable, tree intact
    assert store.root() == merkle.root([merkle.leaf_hash(b"x"), merkle.leaf_hash(b"y")])


def test_a_second_writer_is_refused_not_interleaved(open_log: Opener) -> None:
    first, second = open_log(), open_log()
    first.append([b"one"])
    with pytest.raises(StoreError, match="another writer"):
        second.append([b"two"])
    assert open_log().root() == merkle.root([merkle.leaf_hash(b"one")])
    first.close()
    second.close()


def test_concurrent_readers_during_appends(store: LogStore) -> None:
    store.append(_entries(10))
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                size = store.size
                index = size // 2
                proof = store.inclusion_proof(index, size)
                merkle.verify_inclusion(
                    store.leaf_hash(index), index, size, proof, store.root(size)
                )
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for start in range(10, 3000, 97):
        store.append(_entries(97, start))
    stop.set()
    for reader in readers:
        reader.join()
    assert not errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.entry(5), "outside"),
        (lambda s: s.entry(-1), "outside"),
        (lambda s: s.inclusion_proof(0, 6), "outside"),
        (lambda s: s.inclusion_proof(3, 3), "outside"),
        (lambda s: s.consistency_proof(4, 3), "outside"),
        (lambda s: s.root(6), "outside"),
        (lambda s: s.entries(2, 9), "outside"),
    ],
)
def test_bad_requests_are_store_errors(
    store: LogStore, call: Callable[[LogStore], object], message: str
) -> None:
    store.append(_entries(5))
    with pytest.raises(StoreError, match=message):
        call(store)


def test_bad_appends_change_nothing(store: LogStore) -> None:
    assert store.append([]) == []
    with pytest.raises(ValueError, match="at most 65535 bytes"):
        store.append([b"ok", bytes(70_000)])
    with pytest.raises(ValueError, match="one to one"):
        store.append([b"a"], [])
    with pytest.raises(ValueError, match="seq"):
        store.append([b"a"], [DeviceKey("d", -1)])
    assert store.size == 0


def test_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open the log store"):
        open_store(tmp_path / "file" / "x.db")  # a path under a regular file
    with pytest.raises(StoreError, match="cannot open the log store"):
        open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_damaged_store_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = open_store(path)
    store.append(_entries(300))
    store.close()
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM tiles WHERE id = 1")  # the partial tile where appends go on
    with pytest.raises(StoreError, match="damaged: tile 0/1 is missing"):
        open_store(path)


def test_device_entries_listing(store: LogStore) -> None:
    keys = [DeviceKey("did:key:zA", seq) for seq in (1, 2, 5)] + [
        DeviceKey("did:key:zB", 2**64 - 1)
    ]
    store.append([b"a", b"b", b"c", b"d"], keys)
    assert store.device_entries("did:key:zA", 2) == [(5, 2), (2, 1)]
    assert store.device_entries("did:key:zB") == [(2**64 - 1, 3)]
    assert store.device_entries("did:key:zC") == []


def test_the_compact_range_comes_from_the_appends(open_log: Opener) -> None:
    """What a node's receipts are built from: the log's perfect subtree roots, from
    the appends' own nodes, with leaf hashes the caller computed once."""
    store = open_log()
    data: list[bytes] = []
    for size in (1, 255, 1, 256, 513, 7):
        batch = _entries(size, len(data))
        store.append(batch, leaf_hashes=[merkle.leaf_hash(e) for e in batch])
        data += batch
        compact = store.compact_range()
        assert compact.size == len(data)
        assert compact.root() == merkle.root([merkle.leaf_hash(e) for e in data])
    store.close()
    reopened = open_log()
    assert reopened.compact_range().hashes == compact.hashes
    with pytest.raises(ValueError, match="one to one"):
        reopened.append([b"x"], leaf_hashes=[])
    reopened.close()


class _LostAnswer(SqliteBackend):
    """The real SQLite backend, whose next commit's answer is lost on the way back:
    after the commit landed (``landed``) or before it reached the store."""

    def __init__(self, path: Path, landed: bool) -> None:
        super().__init__(path)
        self.landed, self.armed = landed, False

    def commit(self, batch: Batch) -> None:
        if self.armed:
            self.armed = False
            if self.landed:
                super().commit(batch)
            raise CommitUncertain("no answer to COMMIT")
        super().commit(batch)


@pytest.mark.parametrize("landed", [True, False])
def test_an_append_whose_commit_got_no_answer_is_settled_by_the_store(
    tmp_path: Path, landed: bool
) -> None:
    backend = _LostAnswer(tmp_path / "log.db", landed)
    store = LogStore(backend)
    store.append(_entries(300))
    backend.armed = True
    lost = _entries(5, 300)
    with pytest.raises(CommitUncertain):
        store.append(lost, [DeviceKey("did:key:zA", s) for s in range(1, 6)])
    assert store.size == 300  # not known to have landed: not served
    assert store.settle() is landed
    assert store.settle() is False  # settled once
    expected = _entries(300) + (lost if landed else [])
    assert store.size == len(expected)
    assert (store.find("did:key:zA", 5) is not None) is landed
    store.append([b"next"])  # appends go on, after it or in its place
    expected.append(b"next")
    assert store.root() == merkle.root([merkle.leaf_hash(e) for e in expected])
    store.close()
    assert open_store(tmp_path / "log.db").root() == merkle.root(
        [merkle.leaf_hash(e) for e in expected]
    )


def test_an_append_settles_first(tmp_path: Path) -> None:
    backend = _LostAnswer(tmp_path / "log.db", landed=True)
    store = LogStore(backend)
    backend.armed = True
    with pytest.raises(CommitUncertain):
        store.append([b"a"])
    assert store.append([b"b"]) == [1]  # after "a", which landed
    assert store.root() == merkle.root([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])


@pytest.mark.postgres
def test_a_connection_the_server_dropped_is_opened_again(postgres_url: str) -> None:
    import psycopg

    location = fresh_database(postgres_url)
    store = open_store(location)
    store.append([b"a"])
    with psycopg.connect(location, autocommit=True) as admin:  # every other session: gone
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert store.entry(0) == b"a"  # a read on a new connection, at once
    with pytest.raises(StoreError):
        store.append([b"b"])  # the writer learns of it here: nothing appended
    assert store.append([b"b"]) == [1]  # and opens a new connection
    assert store.root() == merkle.root([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
    store.close()
