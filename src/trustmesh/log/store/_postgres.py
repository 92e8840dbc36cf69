"""PostgreSQL backend (psycopg 3): the same tables as SQLite, in a server.

A commit is one transaction; the committed size is checked and advanced in it
(``SELECT … FOR UPDATE``), so two writers can never interleave. Tile blobs are
stored uncompressed (hashes do not compress). A connection the server dropped
(a restart, a failover) is opened again at its next use; a commit whose COMMIT
got no answer raises :class:`CommitUncertain`, as it may have landed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from trustmesh.errors import CommitUncertain, DuplicateEntry, StoreError
from trustmesh.log.store._backend import Batch
from trustmesh.log.store._sqlite import tile_id
from trustmesh.log.tiles import TileKey

FORMAT = 1  # (its own: the SQLite store's format number counts separately)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (idx BIGINT PRIMARY KEY, data BYTEA NOT NULL);
ALTER TABLE bundles ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS tiles (id BIGINT PRIMARY KEY, nodes BYTEA NOT NULL);
ALTER TABLE tiles ALTER COLUMN nodes SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS devices (
    id BIGSERIAL PRIMARY KEY, did TEXT NOT NULL UNIQUE, last_seq NUMERIC(20) NOT NULL);
CREATE TABLE IF NOT EXISTS device_entries (
    device BIGINT NOT NULL, seq NUMERIC(20) NOT NULL, idx BIGINT NOT NULL,
    PRIMARY KEY (device, seq));
INSERT INTO meta (key, value) VALUES ('size', 0), ('format', 1) ON CONFLICT DO NOTHING;
"""


class PostgresBackend:
    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._local = threading.local()
        try:
            self._writer = psycopg.connect(url, autocommit=True)
            with self._writer.transaction():
                # Serialise concurrent first opens of an empty database.
                self._writer.execute("SELECT pg_advisory_xact_lock(7406351)")
                self._writer.execute(_SCHEMA)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the log store at {_redact(url)}: {exc}") from None
        fmt = self._scalar("SELECT value FROM meta WHERE key = 'format'")
        if fmt != FORMAT:
            raise StoreError(f"store format {fmt}, this trustmesh reads {FORMAT}")

    def _write_connection(self) -> psycopg.Connection[Any]:
        """The writer's connection, opened again if the server dropped it."""
        if self._writer.closed:
            try:
                self._writer = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"log store {_redact(self.url)} unavailable: {exc}") from None
        return self._writer

    @property
    def _reader(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            try:
                connection = psycopg.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"log store {_redact(self.url)} unavailable: {exc}") from None
            self._local.connection = connection
        return connection

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read's rows. A read on a connection the server dropped since its last
        use (a restart) is run once more on a new one: reads are idempotent."""
        connection = self._reader
        try:
            return connection.execute(query, params).fetchall()
        except psycopg.Error as exc:
            if not connection.closed:  # the server answered: no use asking again
                raise StoreError(f"log store {_redact(self.url)} unavailable: {exc}") from None
        try:
            return self._reader.execute(query, params).fetchall()  # (a new connection)
        except psycopg.Error as exc:
            raise StoreError(f"log store {_redact(self.url)} unavailable: {exc}") from None

    def _scalar(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self._rows(query, params)
        return rows[0][0] if rows else None

    def size(self) -> int:
        return int(self._scalar("SELECT value FROM meta WHERE key = 'size'"))

    def commit(self, batch: Batch) -> None:
        with self._lock, self._transaction() as db:
            size = db.execute("SELECT value FROM meta WHERE key = 'size' FOR UPDATE").fetchone()
            assert size is not None
            if size[0] != batch.first_index:
                raise StoreError(
                    f"another writer appended to the log (size {size[0]}, "
                    f"expected {batch.first_index})"
                )
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO bundles (idx, data) VALUES (%s, %s) "
                    "ON CONFLICT (idx) DO UPDATE SET data = excluded.data",
                    list(batch.bundles.items()),
                )
                self._index_devices(cursor, batch)
                cursor.executemany(
                    "INSERT INTO tiles (id, nodes) VALUES (%s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET nodes = excluded.nodes",
                    [(tile_id(key), nodes) for key, nodes in batch.tiles.items()],
                )
                cursor.execute("UPDATE meta SET value = %s WHERE key = 'size'", (batch.new_size,))

    @staticmethod
    def _index_devices(cursor: psycopg.Cursor[Any], batch: Batch) -> None:
        rows = [
            (key.did, key.seq, index)
            for index, key in enumerate(batch.keys, start=batch.first_index)
            if key is not None
        ]
        if not rows:
            return
        highest: dict[str, int] = {}
        for did, seq, _ in rows:
            highest[did] = max(seq, highest.get(did, seq))
        cursor.executemany(
            "INSERT INTO devices (did, last_seq) VALUES (%s, %s) ON CONFLICT (did) "
            "DO UPDATE SET last_seq = GREATEST(devices.last_seq, excluded.last_seq)",
            list(highest.items()),
        )
        try:
            cursor.executemany(
                "INSERT INTO device_entries (device, seq, idx) "
                "SELECT id, %s, %s FROM devices WHERE did = %s",
                [(seq, index, did) for did, seq, index in rows],
            )
        except pg_errors.UniqueViolation:
            raise DuplicateEntry("a (did, seq) in this batch is already logged") from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """BEGIN … COMMIT on the writer's connection. A failure before COMMIT rolls
        back (the server does, if the connection is gone); a COMMIT without an
        answer is :class:`CommitUncertain`."""
        db = self._write_connection()
        try:
            db.execute("BEGIN")
            yield db
        except BaseException as exc:
            if not db.closed:
                with suppress(psycopg.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"log store {_redact(self.url)}: commit failed: {exc}") from None
            raise
        try:
            db.execute("COMMIT")
        except psycopg.Error as exc:
            if db.closed:
                raise CommitUncertain(
                    f"log store {_redact(self.url)}: no answer to COMMIT: {exc}"
                ) from None
            with suppress(psycopg.Error):
                db.execute("ROLLBACK")
            raise StoreError(f"log store {_redact(self.url)}: commit failed: {exc}") from None

    def tile(self, key: TileKey) -> bytes | None:
        found = self._scalar("SELECT nodes FROM tiles WHERE id = %s", (tile_id(key),))
        return None if found is None else bytes(found)

    def bundle(self, index: int) -> bytes | None:
        found = self._scalar("SELECT data FROM bundles WHERE idx = %s", (index,))
        return None if found is None else bytes(found)

    def find(self, did: str, seq: int) -> int | None:
        found = self._scalar(
            "SELECT e.idx FROM device_entries e JOIN devices d ON d.id = e.device "
            "WHERE d.did = %s AND e.seq = %s",
            (did, seq),
        )
        return None if found is None else int(found)

    def device_entries(self, did: str, limit: int) -> list[tuple[int, int]]:
        rows = self._rows(
            "SELECT e.seq, e.idx FROM device_entries e JOIN devices d ON d.id = e.device "
            "WHERE d.did = %s ORDER BY e.seq DESC LIMIT %s",
            (did, limit),
        )
        return [(int(seq), int(index)) for seq, index in rows]

    def last_seq(self, did: str) -> int | None:
        found = self._scalar("SELECT last_seq FROM devices WHERE did = %s", (did,))
        return None if found is None else int(found)

    def disk_bytes(self) -> int:
        return int(
            self._scalar(
                "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY["
                "'meta','bundles','tiles','devices','device_entries']::regclass[]) AS c"
            )
        )

    def close(self) -> None:
        self._writer.close()
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://…"
    user, host, port = info.get("user", ""), info.get("host", ""), info.get("port", "")
    return f"postgresql://{user}@{host}:{port}/{info.get('dbname', '')}"
