"""Verifier processes driven from the event loop: a task of signature checks goes
down a socket to a worker process, and its results come back up the same socket,
read when the loop sees it readable.

``concurrent.futures.ProcessPoolExecutor`` does this through two threads of its
own (one pickles and writes tasks, one reads results and wakes the loop), and
every hop between them waits for the GIL that the event loop holds. Measured on
the machine the ingest benchmark runs on, that cost the node's process ~330 µs
of CPU a task and ~500 µs for a task of 200 checks; this way, ~50 and ~140.

A worker takes its tasks in order, one at a time. Writes never block the loop:
a worker is sent a task only while what it has not answered yet fits in the
socket's buffer (or when it has nothing at all), and the other tasks wait here
in order. A worker that dies fails the tasks it held (their requests are
answered "retry") and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
from collections import deque
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from trustmesh.batch_verify import Item, verify_items
from trustmesh.errors import Error

log = logging.getLogger("trustmesh.node")

UNANSWERED_BYTES = 128 * 1024  # below the socket buffer a Unix socket pair starts with
_SPAWN = get_context("spawn")  # a fork would copy the node's threads' locks


class WorkerLost(Error):
    """A verifier process died before it answered."""


def _serve(conn: Connection) -> None:
    """A worker: check each task's items until the node closes its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the node, which closes us
    while True:
        try:
            task = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, object] = (True, verify_items(pickle.loads(task)))  # noqa: S301 (the node's own)
        except Exception as exc:  # a task it cannot check: said, not fatal
            answer = (False, f"{type(exc).__name__}: {exc}")
        conn.send_bytes(pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))


class _Worker:
    def __init__(self) -> None:
        self.conn, child = _SPAWN.Pipe(duplex=True)  # a Unix socket pair
        self.process: BaseProcess = _SPAWN.Process(
            target=_serve, args=(child,), name="trustmesh-verifier", daemon=True
        )
        self.process.start()
        child.close()
        self.sent: deque[tuple[asyncio.Future[list[str | None]], int]] = deque()
        self.unanswered = 0  # bytes of the tasks in ``sent``

    def close(self) -> None:
        self.conn.close()  # the worker reads EOF and returns


class VerifierProcesses:
    """``count`` worker processes that run :func:`~trustmesh.batch_verify.verify_items`.

    Made outside the event loop (a spawn takes a second: :meth:`wait_ready` waits
    for them all); :meth:`verify` is called on one loop at a time, which reads the
    answers."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("at least one verifier process")
        self._workers = [_Worker() for _ in range(count)]
        self._waiting: deque[tuple[asyncio.Future[list[str | None]], bytes]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def count(self) -> int:
        return len(self._workers)

    @property
    def pids(self) -> list[int | None]:
        return [worker.process.pid for worker in self._workers]

    def wait_ready(self) -> None:
        """Block until every worker has answered an empty task (started, imported)."""
        empty = pickle.dumps([], pickle.HIGHEST_PROTOCOL)
        for worker in self._workers:
            worker.conn.send_bytes(empty)
        for worker in self._workers:
            worker.conn.recv_bytes()

    def verify(self, items: list[Item]) -> asyncio.Future[list[str | None]]:
        """For each item, None if its signature verifies, else why (in a worker)."""
        if self._closed:
            raise WorkerLost("the verifier processes are closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # the first call, or a new loop (tests run several)
            self._loop = loop
            for worker in self._workers:
                self._watch(worker)
        future: asyncio.Future[list[str | None]] = loop.create_future()
        self._waiting.append((future, pickle.dumps(items, pickle.HIGHEST_PROTOCOL)))
        self._dispatch()
        return future

    def close(self) -> None:
        """Stop the workers; what they held is failed."""
        self._closed = True
        for worker in self._workers:
            self._forget(worker, WorkerLost("the node is stopping"))
        while self._waiting:
            future, _ = self._waiting.popleft()
            _fail(future, WorkerLost("the node is stopping"))
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()

    def _watch(self, worker: _Worker) -> None:
        assert self._loop is not None
        self._loop.add_reader(worker.conn.fileno(), self._answered, worker)

    def _dispatch(self) -> None:
        """Hand waiting tasks, in order, to the least loaded workers they fit."""
        while self._waiting:
            future, task = self._waiting[0]
            if future.done():  # cancelled while it waited
                self._waiting.popleft()
                continue
            worker = min(self._workers, key=lambda w: w.unanswered)
            if worker.sent and worker.unanswered + len(task) > UNANSWERED_BYTES:
                return  # all busy: the next answer dispatches again
            try:
                worker.conn.send_bytes(task)
            except OSError:  # it died: the task waits for its replacement
                self._replace(worker)
                return
            self._waiting.popleft()
            worker.sent.append((future, len(task)))
            worker.unanswered += len(task)

    def _answered(self, worker: _Worker) -> None:
        try:
            ok, result = pickle.loads(worker.conn.recv_bytes())  # noqa: S301 (its own worker's)
        except (EOFError, OSError):
            self._replace(worker)
            return
        future, size = worker.sent.popleft()
        worker.unanswered -= size
        if _awaited(future):
            if ok:
                future.set_result(result)
            else:
                future.set_exception(WorkerLost(f"a verifier process could not check: {result}"))
        self._dispatch()

    def _replace(self, worker: _Worker) -> None:
        log.error("a verifier process died (exit code %s): replacing it", worker.process.exitcode)
        self._forget(worker, WorkerLost("a verifier process died"))
        worker.process.join(timeout=1)
        fresh = _Worker()  # start() returns at once: tasks wait in its socket meanwhile
        self._workers[self._workers.index(worker)] = fresh
        self._watch(fresh)
        self._dispatch()

    def _forget(self, worker: _Worker, error: WorkerLost) -> None:
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError, RuntimeError):  # (a closed loop)
                self._loop.remove_reader(worker.conn.fileno())
        worker.close()
        while worker.sent:
            future, _ = worker.sent.popleft()
            _fail(future, error)
        worker.unanswered = 0


def _awaited(future: asyncio.Future[list[str | None]]) -> bool:
    """Whether a task's future still waits: not cancelled, and its loop not closed
    (as when the node stops, or a test's earlier loop ended: nobody waits on it)."""
    return not future.done() and not future.get_loop().is_closed()


def _fail(future: asyncio.Future[list[str | None]], error: WorkerLost) -> None:
    if _awaited(future):
        future.set_exception(error)
