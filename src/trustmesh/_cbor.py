"""cbor2 without the per-call setup cost: kept encoders and a decoder per thread.

cbor2 5's ``dumps`` and ``loads`` build a new encoder or decoder on every call,
which costs about 2 µs and 0.7 µs here, more than encoding or decoding a whole
reading payload. ``encode_to_bytes`` and ``decode_from_bytes`` on kept objects
skip that. With these options (no value sharing, no string references) an
encoder keeps no state from one call to the next, and ``decode_from_bytes``
starts each top-level decode afresh (shared and string references from an
earlier input are not found: tests/test_cbor.py checks it).

Every decode of untrusted bytes comes through here, which is also where a leak
in cbor2 5's C decoder is mended (agronholm/cbor2#257, found here by fuzzing):
its ``raise_from`` keeps one reference too many to the error it raises for
undecodable text and for bad datetime, rational, regex, MIME and UUID tags, so
each such input kept ~1 KB for good (1 GB from a million hostile readings).
vyper 0.4.3 needs cbor2 < 6, whose decoder no longer leaks, so the reference
is dropped here, and only where a probe at import saw the extra one.
"""

from __future__ import annotations

import ctypes
import io
import sys
import threading
from importlib.metadata import version
from typing import Any

import cbor2

_local = threading.local()


def _encoders() -> tuple[cbor2.CBOREncoder, cbor2.CBOREncoder]:
    encoders = _local.encoders = (
        cbor2.CBOREncoder(io.BytesIO()),
        cbor2.CBOREncoder(io.BytesIO(), canonical=True),
    )
    return encoders


def dumps(obj: Any, *, canonical: bool = False) -> bytes:
    """``cbor2.dumps(obj, canonical=canonical)``, faster."""
    try:
        encoder = _local.encoders[canonical]
    except AttributeError:
        encoder = _encoders()[canonical]
    encoded: bytes = encoder.encode_to_bytes(obj)
    return encoded


def loads(data: bytes) -> Any:
    """``cbor2.loads(data)``, faster. Like it, ignores bytes after the first item.
    Whatever decoding raises is a ``cbor2.CBORDecodeError`` (:func:`decode_next`)."""
    try:
        decoder = _local.decoder
    except AttributeError:
        decoder = _local.decoder = cbor2.CBORDecoder(io.BytesIO(b""))
    try:
        return decoder.decode_from_bytes(data)
    except cbor2.CBORError as exc:
        _mend(exc)
        raise
    except Exception as exc:
        raise _unreadable(exc) from None


def decode_next(decoder: cbor2.CBORDecoder) -> Any:
    """The decoder's next item. cbor2 decodes its semantic tags by running other
    code on the tagged value, which raises what that code raises on a hostile one
    (found by fuzzing: tag 35 hands re.compile a number, a TypeError; tag 30 a
    fraction over zero, a ZeroDivisionError): any of it is a ``CBORDecodeError``."""
    try:
        return decoder.decode()
    except cbor2.CBORError as exc:
        _mend(exc)
        raise
    except Exception as exc:
        raise _unreadable(exc) from None


def _unreadable(exc: Exception) -> cbor2.CBORDecodeError:
    return cbor2.CBORDecodeValueError(f"unreadable CBOR ({type(exc).__name__}: {exc})")


def _raised_from(exc: BaseException) -> bool:
    """Whether the C decoder's ``raise_from`` made this error: it alone sets a
    cause (the Python decoders' ``raise … from`` never reach this module)."""
    return isinstance(exc, cbor2.CBORDecodeValueError) and exc.__cause__ is not None


def _extra_references() -> int:
    """How many references too many this cbor2 keeps to what ``raise_from``
    raises: an undecodable text string's error against a truncated input's."""
    decoder = cbor2.CBORDecoder(io.BytesIO(b""))

    def references(data: bytes, raised_from: bool) -> int:
        try:
            decoder.decode_from_bytes(data)
        except cbor2.CBORError as exc:
            if _raised_from(exc) == raised_from:
                return sys.getrefcount(exc)
        raise ImportError(f"cbor2 {version('cbor2')} does not decode {data!r} as expected")

    return references(b"\x62\xff\x41", True) - references(b"\x62\x41", False)


_LEAKED = _extra_references()
if _LEAKED not in (0, 1):  # pragma: no cover (a cbor2 this module was not written for)
    raise ImportError(f"cbor2 {version('cbor2')}: {_LEAKED} extra references to its errors")


def _mend(exc: BaseException) -> None:
    """Drop the reference cbor2 leaked to ``exc``, when it leaks one."""
    if _LEAKED and _raised_from(exc):
        ctypes.pythonapi.Py_DecRef(ctypes.py_object(exc))
