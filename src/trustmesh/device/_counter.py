"""The device's persistent sequence counter.

DESIGN: ``seq`` is strictly increasing per device, and a gateway treats two
different payloads under one seq as equivocation, which slashes the device.
So a seq must never be reused, not even across a crash or restart. The
counter *reserves* a seq on disk (write, fsync, rename, fsync the directory)
before anything is signed with it: a crash can skip a number, never repeat one.
An exclusive lock serialises concurrent signers on one device.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from trustmesh._durable import replace_atomically
from trustmesh.errors import SeqCounterError

MAX_SEQ = (1 << 64) - 1


class SeqCounter:
    """A durable counter bound to one device DID, stored in one small JSON file.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "device.seq"
    >>> counter = SeqCounter(path, "did:key:z6Mk…")
    >>> counter.reserve(), counter.reserve()
    (1, 2)
    """

    def __init__(self, path: Path, did: str) -> None:
        self.path = path
        self.did = did

    def peek(self) -> int:
        """The seq the next :meth:`reserve` will return."""
        return self._read_last() + 1

    def reserve(self) -> int:
        """Durably reserve and return the next seq (the first is 1)."""
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SeqCounterError(f"cannot lock {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            seq = self._read_last() + 1
            if seq > MAX_SEQ:
                raise SeqCounterError(f"{self.path}: the seq counter is exhausted")
            document = {"did": self.did, "last_seq": seq}
            try:
                replace_atomically(self.path, (json.dumps(document) + "\n").encode())
            except OSError as exc:
                raise SeqCounterError(f"cannot write {self.path}: {exc.strerror}") from None
            return seq
        finally:
            os.close(lock)  # closing releases the flock

    def _read_last(self) -> int:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise SeqCounterError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            document = json.loads(raw)
            did, last = document["did"], document["last_seq"]
        except (ValueError, KeyError, TypeError):
            raise SeqCounterError(
                f"{self.path} is corrupt; restore it, or the device would reuse seq numbers"
            ) from None
        if did != self.did:
            raise SeqCounterError(f"{self.path} counts seqs for {did}, not for {self.did}")
        if type(last) is not int or not 0 <= last <= MAX_SEQ:
            raise SeqCounterError(f"{self.path}: last_seq is not a valid seq")
        return last
