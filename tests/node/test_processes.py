"""The node's verifier processes answer each task with the verdicts
``verify_items`` gives here, in order, across workers; a task they cannot check
fails alone; a worker that dies fails only what it held and is replaced; closing
fails what still waits."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from trustmesh.batch_verify import Item, item, verify_items
from trustmesh.identity import Alg, SoftwareSigner
from trustmesh.node._processes import VerifierProcesses, WorkerLost
from trustmesh.reading import parse_reading, sign_reading


@pytest.fixture(scope="module")
def processes() -> Iterator[VerifierProcesses]:
    started = VerifierProcesses(2)
    started.wait_ready()
    yield started
    started.close()


def _items(count: int, spoil_every: int = 3) -> list[Item]:
    signers = [SoftwareSigner.generate(), SoftwareSigner.generate(Alg.EDDSA)]
    items = []
    for n in range(count):
        signer = signers[n % 2]
        entry = sign_reading(signer, seq=n + 1, ts=1, sensor="t", value=n)
        if n % spoil_every == 0:
            entry = entry[:-1] + bytes([entry[-1] ^ 1])
        items.append(item(parse_reading(entry), signer.public_key))
    return items


def test_many_tasks_answered_in_order(processes: VerifierProcesses) -> None:
    items = _items(300)
    tasks = [items[i : i + 7] for i in range(0, len(items), 7)]

    async def run() -> list[list[str | None]]:
        return list(await asyncio.gather(*(processes.verify(task) for task in tasks)))

    answers = asyncio.run(run())
    assert answers == [verify_items(task) for task in tasks]
    assert sum(answer is not None for task in answers for answer in task) == 100


def test_a_task_it_cannot_check_fails_alone(processes: VerifierProcesses) -> None:
    good = _items(4)
    foreign: list[Item] = [(b"m", b"s", 999, b"k")]  # no such algorithm

    async def run() -> tuple[BaseException | list[str | None], ...]:
        return tuple(
            await asyncio.gather(
                processes.verify(good),
                processes.verify(foreign),
                processes.verify(good),
                return_exceptions=True,
            )
        )

    first, refused, last = asyncio.run(run())
    assert first == last == verify_items(good)
    assert isinstance(refused, WorkerLost)
    assert "could not check" in str(refused) and "999" in str(refused)


def test_a_killed_worker_fails_what_it_held_and_is_replaced() -> None:
    processes = VerifierProcesses(1)
    processes.wait_ready()
    try:
        items = _items(50)

        async def run() -> tuple[BaseException | list[str | None], list[str | None]]:
            held = processes.verify(items * 100)  # long enough to be held when killed
            (pid,) = processes.pids
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            lost = await asyncio.gather(held, return_exceptions=True)
            return lost[0], await processes.verify(items)

        lost, after = asyncio.run(run())
        assert isinstance(lost, WorkerLost)
        assert after == verify_items(items)
        assert processes.count == 1
    finally:
        processes.close()


def test_close_fails_what_waits() -> None:
    processes = VerifierProcesses(1)
    processes.wait_ready()
    items = _items(50)

    async def run() -> list[BaseException | list[str | None]]:
        # More than a worker's socket takes at once: some wait in the node.
        futures = [processes.verify(items * 20) for _ in range(20)]
        processes.close()
        return list(await asyncio.gather(*futures, return_exceptions=True))

    outcomes = asyncio.run(run())
    assert all(isinstance(outcome, WorkerLost) for outcome in outcomes)
    with pytest.raises(WorkerLost, match="closed"):
        asyncio.run(_verify_after_close(processes, items))


async def _verify_after_close(processes: VerifierProcesses, items: list[Item]) -> None:
    await processes.verify(items)


def test_close_after_the_loop_is_gone_raises_nothing() -> None:
    """A node stops its server's loop before it closes the processes: tasks of that
    loop still held (each with a waiter's callback) are dropped, not failed into it."""
    processes = VerifierProcesses(1)
    processes.wait_ready()
    items = _items(50)
    held: list[asyncio.Future[list[str | None]]] = []

    async def run() -> None:
        for _ in range(20):  # some sent to the worker, some waiting in the node
            future = processes.verify(items * 20)
            future.add_done_callback(lambda _: None)
            held.append(future)

    asyncio.run(run())
    processes.close()
    assert not any(future.done() for future in held)
