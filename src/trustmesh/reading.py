"""The reading wire format: one sensor reading as a COSE_Sign1 message (RFC 9052 §4.2).

::

    COSE_Sign1 = [
        protected:   bstr .cbor {1: alg, 4: kid},   alg -7 (ES256) or -8 (EdDSA),
                                                     kid = the device DID, UTF-8 bytes
        unprotected: {},
        payload:     bstr .cbor {"seq": uint, "ts": uint, "sensor": tstr, "value": int/float/tstr,
                                 ? "unit": tstr, * tstr => any},
        signature:   bstr,                          64 bytes (r ‖ s for ES256)
    ]

The signature covers ``Sig_structure = ["Signature1", protected, h'', payload]``
(RFC 9052 §4.4). CBOR tag 18 is accepted on input and stripped: the log entry
is the untagged encoding, byte for byte as received.

Parsing is strict, because logged bytes are evidence: every CBOR item must be
in core deterministic encoding (RFC 8949 §4.2.1), the headers must be exactly
the two above, and the whole message is at most :data:`MAX_ENTRY_SIZE` bytes.
Any failure raises one subclass of :class:`~trustmesh.errors.InvalidReading`
that names the reason.

>>> from trustmesh.identity import SoftwareSigner
>>> signer = SoftwareSigner.generate()
>>> entry = sign_reading(signer, seq=7, ts=1_700_000_000_000, sensor="temp", value=21.5, unit="C")
>>> verify_reading(entry).value
21.5
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cbor2

from trustmesh import _cbor
from trustmesh.errors import (
    BadCbor,
    BadField,
    BadSignature,
    InvalidDid,
    InvalidSignature,
    KidNotDid,
    MissingField,
    Oversized,
    UnknownAlg,
    WrongStructure,
)
from trustmesh.identity import Alg, Did, PublicKey, Signer, did_from_key, key_from_did

__all__ = [
    "MAX_ENTRY_SIZE",
    "Reading",
    "Value",
    "check_alg",
    "parse_reading",
    "sign_reading",
    "verify_reading",
]

MAX_ENTRY_SIZE = 8 * 1024
"""Largest accepted reading, tag included (DESIGN: an entry over 8 KiB is refused)."""
MAX_SENSOR_BYTES = 64
MAX_UNIT_BYTES = 64
MAX_UINT64 = (1 << 64) - 1
MAX_DEPTH = 16

COSE_SIGN1_TAG = 18
HEADER_ALG = 1
HEADER_KID = 4
SIG_CONTEXT = "Signature1"
EXTERNAL_AAD = b""

REQUIRED_FIELDS = ("seq", "ts", "sensor", "value")

Value = int | float | str
"""A reading's value: an integer, a finite float or text."""

_ALGS = {alg.value: alg for alg in Alg}


@dataclass(frozen=True)
class Reading:
    """A parsed reading. ``entry`` is the exact untagged COSE_Sign1 bytes that
    were signed and that a log stores; every other field is decoded from it.

    ``seq``, ``ts``, ``sensor``, ``value`` and ``unit`` read the payload map,
    which parsing has checked; ``extra`` holds any other payload keys, as signed.
    """

    did: Did
    alg: Alg
    fields: Mapping[str, Any] = field(compare=False, repr=False)
    protected: bytes = field(repr=False)
    payload: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    entry: bytes = field(repr=False)
    # The payload's seq and ts, kept as attributes: a node reads them a dozen times
    # a reading (the payload map stays the source: parsing sets them from it).
    seq: int = field(compare=False, repr=False)
    ts: int = field(compare=False, repr=False)
    """Milliseconds since the Unix epoch, as the device's clock said."""

    @property
    def sensor(self) -> str:
        sensor: str = self.fields["sensor"]
        return sensor

    @property
    def value(self) -> Value:
        value: Value = self.fields["value"]
        return value

    @property
    def unit(self) -> str | None:
        unit: str | None = self.fields.get("unit")
        return unit

    @property
    def extra(self) -> Mapping[str, Any]:
        """Payload keys beyond the five defined ones."""
        return {k: v for k, v in self.fields.items() if k not in _KNOWN_FIELDS}

    def __repr__(self) -> str:
        return (
            f"Reading(did={self.did!r}, seq={self.seq}, ts={self.ts}, "
            f"sensor={self.sensor!r}, value={self.value!r})"
        )

    @property
    def signed_message(self) -> bytes:
        """The bytes the signature covers: the encoded Sig_structure (RFC 9052 §4.4)."""
        return _sig_structure(self.protected, self.payload)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready view that the CLI and the HTTP API print."""
        return {
            "did": self.did,
            "seq": self.seq,
            "ts": self.ts,
            "sensor": self.sensor,
            "value": self.value,
            "unit": self.unit,
        }


def sign_reading(
    signer: Signer,
    *,
    seq: int,
    ts: int,
    sensor: str,
    value: Value,
    unit: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Sign one reading; returns the untagged COSE_Sign1 bytes (the log entry).

    ``ts`` is milliseconds since the Unix epoch; it is an argument so that
    callers (and tests) own the clock. Fields are checked by the same rules
    the verifier applies, so what this returns always parses.
    """
    fields: dict[str, Any] = dict(extra or {})
    fields.update(seq=seq, ts=ts, sensor=sensor, value=value)
    if unit is not None:
        fields["unit"] = unit
    _check_payload(fields)
    alg = signer.public_key.alg
    did = did_from_key(signer.public_key)
    protected = _cbor.dumps({HEADER_ALG: alg.value, HEADER_KID: did.encode()}, canonical=True)
    payload = _cbor.dumps(fields, canonical=True)
    signature = signer.sign(_sig_structure(protected, payload))
    entry = _cbor.dumps([protected, {}, payload, signature], canonical=True)
    if len(entry) > MAX_ENTRY_SIZE:
        raise Oversized(f"reading would be {len(entry)} bytes, over {MAX_ENTRY_SIZE}")
    return entry


def verify_reading(data: bytes, key: PublicKey | None = None) -> Reading:
    """Parse ``data`` and verify its signature; return the :class:`Reading`.

    The key is the one the kid's did:key names, or ``key`` when given (a
    registry may hold a rotated key for the DID). Raises an
    :class:`~trustmesh.errors.InvalidReading` subclass naming the reason.
    """
    reading = parse_reading(data)
    if key is None:
        key = key_from_did(reading.did)
    check_alg(reading, key)
    try:
        key.verify(reading.signed_message, reading.signature)
    except InvalidSignature as exc:
        raise BadSignature(str(exc)) from None
    return reading


def check_alg(reading: Reading, key: PublicKey) -> None:
    """Refuse a reading whose header names another algorithm than its key's."""
    if key.alg is not reading.alg:
        raise UnknownAlg(f"alg {reading.alg.label} does not match the {key.alg.label} device key")


def parse_reading(data: bytes, *, decoded: Any = None) -> Reading:
    """Parse and check the structure of ``data`` without checking the signature.

    ``decoded``: ``data`` as cbor2 decoded it already (a CBOR sequence is decoded
    item by item to find where each ends), so it is not decoded twice."""
    if len(data) > MAX_ENTRY_SIZE:
        raise Oversized(f"{len(data)} bytes, over the {MAX_ENTRY_SIZE}-byte limit")
    message = _decode(data, "message") if decoded is None else decoded
    entry = data if type(data) is bytes else bytes(data)
    if type(message) is cbor2.CBORTag:
        if message.tag != COSE_SIGN1_TAG:
            raise WrongStructure(f"CBOR tag {message.tag}, expected none or {COSE_SIGN1_TAG}")
        # Tag 18 is one initial byte (0xd2) in deterministic encoding; the
        # length check below fails for any longer form, so stripping one byte is exact.
        message, entry = message.value, entry[1:]
    if type(message) is not list or len(message) != 4:
        raise WrongStructure("a COSE_Sign1 is an array of 4 items")
    protected, unprotected, payload, signature = message
    if type(protected) is not bytes:
        raise WrongStructure("protected header must be a byte string")
    if type(unprotected) not in _MAP_TYPES:
        raise WrongStructure("unprotected header must be a map")
    if unprotected:
        raise WrongStructure("unprotected header must be empty")
    if type(payload) is not bytes:
        raise WrongStructure("payload must be a byte string (detached payloads are refused)")
    if type(signature) is not bytes:
        raise WrongStructure("signature must be a byte string")
    if len(entry) != _deterministic_size(protected, payload, signature):
        raise BadCbor("message is not in deterministic encoding, or has trailing bytes")
    alg, did = _parse_protected(protected)
    fields = _decode(payload, "payload")
    if not _plainly_deterministic(fields, payload):
        _require_deterministic(fields, payload, "payload")
    if type(fields) is not dict:
        raise WrongStructure("payload must be a CBOR map")
    _check_payload(fields)
    # As Reading(...) would make it, without the frozen __init__'s seven
    # object.__setattr__ calls (a node parses every reading it takes).
    reading = _new_reading(Reading)
    reading.__dict__.update(
        did=did,
        alg=alg,
        fields=MappingProxyType(fields),
        protected=protected,
        payload=payload,
        signature=signature,
        entry=entry,
        seq=fields["seq"],
        ts=fields["ts"],
    )
    return reading


def _deterministic_size(protected: bytes, payload: bytes, signature: bytes) -> int:
    """The size of ``[protected, {}, payload, signature]`` in deterministic encoding.

    The decoder has already consumed these four definite-length items, each
    with a head at least as long as the shortest one (RFC 8949 §4.2.1), so the
    message is deterministic and has no trailing bytes exactly when its length
    equals this. It is the fast equivalent of re-encoding the message and
    comparing (:func:`_require_deterministic`), and is tested against it.
    """
    return (
        _HEAD_SIZE_SMALL  # array(4)
        + _head_size(len(protected))
        + len(protected)
        + _HEAD_SIZE_SMALL  # map(0)
        + _head_size(len(payload))
        + len(payload)
        + _head_size(len(signature))
        + len(signature)
    )


_HEAD_SIZE_SMALL = 1


def _head_size(argument: int) -> int:
    """Bytes in the shortest head for ``argument`` (RFC 8949 §3: 1, 1+1, 1+2, 1+4, 1+8)."""
    if argument < 24:
        return 1
    if argument < 1 << 8:
        return 2
    if argument < 1 << 16:
        return 3
    if argument < 1 << 32:
        return 5
    return 9


_KNOWN_FIELDS = frozenset((*REQUIRED_FIELDS, "unit"))
_new_reading = object.__new__
_MAP_TYPES = (dict, cbor2.FrozenDict)


@functools.lru_cache(maxsize=65536)
def _parse_protected(protected: bytes) -> tuple[Alg, Did]:
    # One device sends the same protected header with every reading: cache it.
    header = _decode(protected, "protected header")
    _require_deterministic(header, protected, "protected header")
    if not isinstance(header, dict):
        raise WrongStructure("protected header must encode a map")
    if set(header) != {HEADER_ALG, HEADER_KID}:
        labels = sorted(map(repr, header))
        raise WrongStructure(f"protected header must hold exactly alg (1) and kid (4): {labels}")
    alg = _ALGS.get(header[HEADER_ALG]) if type(header[HEADER_ALG]) is int else None
    if alg is None:
        raise UnknownAlg(f"alg {header[HEADER_ALG]!r} is not ES256 (-7) or EdDSA (-8)")
    kid = header[HEADER_KID]
    if not isinstance(kid, bytes):
        raise KidNotDid("kid must be a byte string")
    try:
        key = key_from_did(kid.decode("utf-8"))
    except (UnicodeDecodeError, InvalidDid) as exc:
        raise KidNotDid(str(exc) if isinstance(exc, InvalidDid) else "kid is not UTF-8") from None
    if key.alg is not alg:
        raise UnknownAlg(f"alg {alg.label} does not match the kid's {key.alg.label} key")
    return alg, Did(kid.decode("utf-8"))


def _check_payload(fields: Mapping[Any, Any]) -> None:
    """The payload rules of DESIGN.md, one check per line."""
    try:
        seq, ts, sensor, value = fields["seq"], fields["ts"], fields["sensor"], fields["value"]
    except KeyError as missing:
        raise MissingField(f"payload has no {missing.args[0]!r}") from None
    unit = fields.get("unit")
    if type(seq) is not int or not 0 <= seq <= MAX_UINT64:
        raise BadField(f"seq must be an unsigned integer below 2^64, not {_describe(seq)}")
    if type(ts) is not int or not 0 <= ts <= MAX_UINT64:
        raise BadField(f"ts must be an unsigned integer below 2^64, not {_describe(ts)}")
    if type(sensor) is not str or _utf8_size(sensor) > MAX_SENSOR_BYTES:
        raise BadField(f"sensor must be text of at most {MAX_SENSOR_BYTES} bytes")
    if unit is not None and (type(unit) is not str or _utf8_size(unit) > MAX_UNIT_BYTES):
        raise BadField(f"unit must be text of at most {MAX_UNIT_BYTES} bytes")
    if "unit" in fields and unit is None:
        raise BadField("unit must be text, not null")
    if type(value) not in (int, float, str):
        raise BadField(f"value must be an integer, a float or text, not {_cbor_type(value)}")
    if type(value) is float and not math.isfinite(value):
        raise BadField("value must be a finite number")
    if len(fields) > len(REQUIRED_FIELDS) + ("unit" in fields):
        for name, item in fields.items():
            if name not in _KNOWN_FIELDS:
                if type(name) is not str:
                    raise WrongStructure(f"payload keys must be text, not {_cbor_type(name)}")
                _check_plain(item, name, depth=1)


def _utf8_size(text: str) -> int:
    # A character is at most 4 bytes in UTF-8: skip the encoding for short text.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _describe(value: Any) -> str:
    return repr(value) if type(value) is int else _cbor_type(value)


def _check_plain(item: Any, name: str, depth: int) -> None:
    """Extra fields may hold any untagged CBOR data item, nested a little."""
    if depth > MAX_DEPTH:
        raise WrongStructure(f"field {name!r} is nested too deeply")
    if item is None or type(item) in (bool, int, float, str, bytes):
        return
    if isinstance(item, list | tuple):
        for element in item:
            _check_plain(element, name, depth + 1)
        return
    if isinstance(item, Mapping):
        for key, element in item.items():
            _check_plain(key, name, depth + 1)
            _check_plain(element, name, depth + 1)
        return
    raise WrongStructure(f"field {name!r} holds {_cbor_type(item)}: CBOR tags are not allowed")


def _decode(data: bytes, what: str) -> Any:
    try:
        # Indefinite lengths and duplicate map keys are not refused here: the
        # deterministic-encoding checks that follow refuse both. Nesting is
        # bounded by cbor2's own depth limit here, and by MAX_DEPTH in the
        # payload checks.
        return _cbor.loads(data)
    except (cbor2.CBORError, ValueError, OverflowError, RecursionError, MemoryError) as exc:
        raise BadCbor(f"{what}: {exc}") from None


def _require_deterministic(item: Any, encoded: bytes, what: str) -> None:
    try:
        canonical = _cbor.dumps(item, canonical=True)
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError):
        raise BadCbor(f"{what} cannot be re-encoded deterministically") from None
    if canonical != encoded:
        raise BadCbor(f"{what} is not in deterministic encoding (RFC 8949 §4.2.1)")


def _plainly_deterministic(fields: Any, payload: bytes) -> bool:
    """A fast, sufficient test of RFC 8949 §4.2.1 for the usual flat payload.

    For a map whose text keys are already in canonical order and whose values
    are integers (within 64 bits), texts and finite floats, the deterministic
    encoding is exactly :func:`_plain_size` bytes long. The payload decoded to
    this map, and each of its items takes at least its shortest encoding (a
    duplicate key only shrinks the map, trailing bytes only lengthen it), so a
    payload of exactly that length is the deterministic encoding: no re-encoding,
    no key sort. False means "undecided": the caller then runs the reference
    check, :func:`_require_deterministic`, which this is tested against.
    """
    if type(fields) is not dict:
        return False
    keys = _keys(tuple(fields))
    if keys is None or not keys[0]:
        return False
    size = _values_size(fields.values(), keys[1])
    return size is not None and size == len(payload)


_INT_LIMIT = 1 << 64  # beyond, cbor2 writes a tagged bignum: the reference path
# The head of an integer argument of 24 or more, by its bit length (RFC 8949 §3).
_INT_HEAD = [2] * 9 + [3] * 8 + [5] * 16 + [9] * 32


def _plain_size(fields: dict[str, Any]) -> int | None:
    """The size of ``fields`` in deterministic encoding, if its keys are text and
    its values plain (integers within 64 bits, texts, finite floats)."""
    keys = _keys(tuple(fields))
    return None if keys is None else _values_size(fields.values(), keys[1])


@functools.lru_cache(maxsize=1024)
def _keys(keys: tuple[Any, ...]) -> tuple[bool, int] | None:
    """Whether a map's keys are in canonical order, and the size of the map's head
    and keys in deterministic encoding; None if one is not text. (Readings of a
    fleet share a handful of key sets: cached.)"""
    if not all(type(key) is str for key in keys):
        return None
    encoded = [cbor2.dumps(key) for key in keys]
    return encoded == sorted(encoded), _head_size(len(keys)) + sum(map(len, encoded))


def _values_size(values: Any, size: int) -> int | None:
    """``size`` plus that of ``values`` in deterministic encoding, if all are plain.

    (Heads are sized inline: this runs for every reading a node takes.)"""
    for value in values:
        kind = type(value)
        if kind is int:
            magnitude = value if value >= 0 else -1 - value
            if magnitude < 24:
                size += 1
            elif magnitude < _INT_LIMIT:
                size += _INT_HEAD[magnitude.bit_length()]
            else:
                return None
        elif kind is str:
            length = len(value) if value.isascii() else len(value.encode("utf-8"))
            size += length + (1 if length < 24 else _head_size(length))
        elif kind is float:
            if not math.isfinite(value):
                return None
            size += _float_size(value)
        else:
            return None
    return size


_FLOAT16 = struct.Struct(">e")
_FLOAT32 = struct.Struct(">f")
_HALF_LIMIT = 32768.0  # cbor2's canonical form writes no half at or above this


def _float_size(value: float) -> int:
    """The bytes of ``value`` as the reference encodes it: cbor2's canonical form, the
    shortest IEEE 754 width that holds it exactly, except that it writes no half of
    magnitude 2^15 or more (65504.0, the largest half, goes in single precision).
    Tested against cbor2 on every half and on random singles and doubles."""
    if abs(value) < _HALF_LIMIT and _FLOAT16.unpack(_FLOAT16.pack(value))[0] == value:
        return 3
    try:
        if _FLOAT32.unpack(_FLOAT32.pack(value))[0] == value:
            return 5
    except OverflowError:  # beyond single precision's range
        pass
    return 9


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, h'', payload]`` encoded (RFC 9052 §4.4)."""
    return _sig_structure_prefix(protected) + _cbor.dumps(payload)


@functools.lru_cache(maxsize=65536)
def _sig_structure_prefix(protected: bytes) -> bytes:
    # A device's Sig_structures differ only in the last item, the payload; cache
    # the rest. The encoding of an empty last item is the single byte 0x40.
    return cbor2.dumps([SIG_CONTEXT, protected, EXTERNAL_AAD, b""])[:-1]


def _cbor_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {
        int: "an integer",
        float: "a float",
        str: "text",
        bytes: "a byte string",
        list: "an array",
        dict: "a map",
    }.get(type(value), f"a {type(value).__name__}")
