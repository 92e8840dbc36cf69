"""A device: a signer, its durable seq counter, and a clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trustmesh.device._counter import SeqCounter
from trustmesh.identity import Did, Signer, did_from_key
from trustmesh.reading import Value, sign_reading


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, as readings carry them."""
    return time.time_ns() // 1_000_000


class Device:
    """Signs readings with the next never-used seq and the current time.

    The clock is a parameter so that simulations and tests own time.
    """

    def __init__(
        self, signer: Signer, seq_file: Path, clock: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.signer = signer
        self.did: Did = did_from_key(signer.public_key)
        self.counter = SeqCounter(seq_file, self.did)
        self.clock = clock

    def sign(
        self,
        sensor: str,
        value: Value,
        unit: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> bytes:
        """A signed reading (untagged COSE_Sign1 bytes) with a freshly reserved seq."""
        seq = self.counter.reserve()
        return sign_reading(
            self.signer,
            seq=seq,
            ts=self.clock(),
            sensor=sensor,
            value=value,
            unit=unit,
            extra=extra,
        )
