"""ABI encoding (the Solidity contract ABI's ``abi.encode``) of the few shapes the
reputation leaves use: 32-byte words (``bytes32``, ``uint256``) and arrays of them.

A table of a million subjects encodes two million leaves: eth_abi spends ~9 µs a
call on its type machinery; these are plain concatenations of words, a tenth of
that, and are tested against eth_abi on random values of every shape.
"""

from __future__ import annotations

from collections.abc import Sequence

WORD = 32
Value = int | bytes | Sequence[int] | Sequence[bytes]


def _word(value: int | bytes) -> bytes:
    if type(value) is bytes:
        if len(value) != WORD:
            raise ValueError("a bytes32 value is 32 bytes")
        return value
    if type(value) is not int or not 0 <= value < 1 << 256:
        raise ValueError(f"not a uint256: {value!r}")
    return value.to_bytes(WORD, "big")


def _words(values: Sequence[int] | Sequence[bytes]) -> bytes:
    """An array's words; integer arrays (every step's trust) on a fast path."""
    if values and all(type(v) is int for v in values):
        try:
            return b"".join([v.to_bytes(WORD, "big") for v in values])  # type: ignore[union-attr]
        except OverflowError:
            raise ValueError("not a uint256: an array item out of range") from None
    return b"".join(map(_word, values))


def encode(values: Sequence[Value]) -> bytes:
    """``abi.encode(values...)``: an int is a uint256, 32 bytes a bytes32, a list or a
    tuple an array of either (a dynamic item: its offset in the head, its length and
    words in the tail)."""
    head: list[bytes] = []
    tail: list[bytes] = []
    offset = WORD * len(values)
    for value in values:
        if isinstance(value, int | bytes):
            head.append(_word(value))
        else:
            head.append(offset.to_bytes(WORD, "big"))
            tail.append(len(value).to_bytes(WORD, "big"))
            tail.append(_words(value))
            offset += WORD * (1 + len(value))
    return b"".join(head) + b"".join(tail)
