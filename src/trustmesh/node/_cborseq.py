"""RFC 8742 CBOR sequences of readings, as HTTP bodies and MQTT messages bring them."""

from __future__ import annotations

from typing import Any

from trustmesh._cborseq import InvalidSequence, split_sequence
from trustmesh._problems import Problem

MAX_SEQ_ITEMS = 5_000
_PROBLEMS = {"oversized": "oversized", "bad-cbor": "bad-cbor", "empty": "bad-request"}


def split_cbor_sequence(body: bytes) -> tuple[list[bytes], list[Any]]:
    """The items of a CBOR sequence, each as its exact bytes and as decoded; a
    problem (oversized, bad CBOR, empty) if it is not one."""
    try:
        return split_sequence(body, MAX_SEQ_ITEMS)
    except InvalidSequence as exc:
        detail = (
            f"at most {MAX_SEQ_ITEMS} readings per request" if exc.kind == "oversized" else str(exc)
        )
        raise Problem(_PROBLEMS[exc.kind], detail) from None
