"""Waiting for a batch's answers as they come (over MQTT or the mesh)."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def gather(
    answers: queue.Queue[T], wanted: set[str], timeout: float, key: Callable[[T], str | None]
) -> dict[str, T]:
    """The answers whose ``key`` is wanted, taken from ``answers`` until all have
    come or ``timeout`` seconds have passed (others are skipped)."""
    found: dict[str, T] = {}
    deadline = time.monotonic() + timeout
    while wanted - found.keys():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            item = answers.get(timeout=remaining)
        except queue.Empty:
            break
        name = key(item)
        if name in wanted:
            found[name] = item
    return found
