"""The reading wire format: round trips, every negative case, and the fast
paths against their references."""

from __future__ import annotations

import math
import struct
from typing import Any

import cbor2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trustmesh import errors
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.reading import (
    MAX_ENTRY_SIZE,
    Reading,
    parse_reading,
    sign_reading,
    verify_reading,
)
from trustmesh.reading import _deterministic_size as deterministic_size
from trustmesh.reading import _float_size as float_size
from trustmesh.reading import _plain_size as plain_size
from trustmesh.reading import _plainly_deterministic as plainly_deterministic
from trustmesh.reading import _require_deterministic as require_deterministic
from trustmesh.reading import _sig_structure as sig_structure

SIGNERS = {alg: SoftwareSigner.generate(alg) for alg in Alg}
ES = SIGNERS[Alg.ES256]
FIELDS: dict[str, Any] = {"seq": 7, "ts": 1_700_000_000_000, "sensor": "temp", "value": 21.5}


DEFAULT: Any = object()


def protected_for(signer: SoftwareSigner, alg: Any = None, kid: Any = None) -> bytes:
    header = {
        1: signer.alg.value if alg is None else alg,
        4: did_from_key(signer.public_key).encode() if kid is None else kid,
    }
    return cbor2.dumps(header, canonical=True)


def cose(
    signer: SoftwareSigner = ES,
    *,
    protected: bytes | None = None,
    unprotected: Any = None,
    payload: Any = DEFAULT,
    fields: dict[str, Any] | None = None,
    signature: bytes | None = None,
) -> bytes:
    """A COSE_Sign1 built piece by piece and signed properly, so that each test
    breaks exactly one thing."""
    protected = protected_for(signer) if protected is None else protected
    if payload is DEFAULT:
        payload = cbor2.dumps(FIELDS if fields is None else fields, canonical=True)
    if signature is None:
        signature = signer.sign(
            cbor2.dumps(["Signature1", protected, b"", payload])
            if isinstance(payload, bytes)
            else b""
        )
    unprotected = {} if unprotected is None else unprotected
    return cbor2.dumps([protected, unprotected, payload, signature], canonical=True)


# --- round trips -------------------------------------------------------------

texts = st.text(max_size=16).filter(lambda t: len(t.encode()) <= 64)
values = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=100),
)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
extras = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k not in {"seq", "ts", "sensor", "value", "unit"}),
    plain,
    max_size=3,
)


@given(
    alg=st.sampled_from(list(Alg)),
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    ts=st.integers(min_value=0, max_value=2**64 - 1),
    sensor=texts,
    value=values,
    unit=st.none() | texts,
    extra=extras,
    tagged=st.booleans(),
)
def test_sign_then_verify_round_trips(
    alg: Alg,
    seq: int,
    ts: int,
    sensor: str,
    value: Any,
    unit: str | None,
    extra: dict[str, Any],
    tagged: bool,
) -> None:
    signer = SIGNERS[alg]
    entry = sign_reading(signer, seq=seq, ts=ts, sensor=sensor, value=value, unit=unit, extra=extra)
    data = b"\xd2" + entry if tagged else entry
    reading = verify_reading(data)
    assert reading.entry == entry
    assert (reading.did, reading.alg) == (did_from_key(signer.public_key), alg)
    assert (reading.seq, reading.ts, reading.sensor, reading.unit) == (seq, ts, sensor, unit)
    assert reading.value == value and type(reading.value) is type(value)
    assert dict(reading.extra) == extra
    assert verify_reading(entry) == reading


def test_reading_is_frozen_and_summarises() -> None:
    reading = verify_reading(sign_reading(ES, **FIELDS, unit="C"))
    with pytest.raises(AttributeError):
        reading.seq = 8  # type: ignore[misc]
    assert reading.summary() == {**FIELDS, "did": reading.did, "unit": "C"}
    assert "temp" in repr(reading)


def test_entry_at_the_limit_is_accepted_and_one_byte_over_is_not() -> None:
    pad = "x" * (MAX_ENTRY_SIZE - 200)
    while len(entry := sign_reading(ES, **FIELDS, extra={"pad": pad})) < MAX_ENTRY_SIZE:
        pad += "x"
    assert len(entry) == MAX_ENTRY_SIZE
    verify_reading(entry)
    with pytest.raises(errors.Oversized):
        sign_reading(ES, **FIELDS, extra={"pad": pad + "x"})
    with pytest.raises(errors.Oversized, match="8193 bytes"):
        verify_reading(b"\xd2" + entry)
    with pytest.raises(errors.Oversized):
        verify_reading(bytes(100_000))


# --- negative cases, one broken thing each ------------------------------------


def test_every_truncation_fails() -> None:
    entry = sign_reading(ES, **FIELDS)
    for size in range(len(entry)):
        with pytest.raises(errors.InvalidReading):
            verify_reading(entry[:size])


@given(position=st.integers(min_value=0))
def test_any_flipped_bit_fails(position: int) -> None:
    entry = bytearray(sign_reading(ES, **FIELDS))
    position %= len(entry) * 8
    entry[position // 8] ^= 1 << (position % 8)
    with pytest.raises(errors.InvalidReading):
        verify_reading(bytes(entry))


@pytest.mark.parametrize("alg", list(Alg), ids=lambda a: a.label)
def test_flipped_signature_bit_is_a_signature_error(alg: Alg) -> None:
    entry = bytearray(sign_reading(SIGNERS[alg], **FIELDS))
    entry[-5] ^= 0x10
    with pytest.raises(errors.BadSignature):
        verify_reading(bytes(entry))


def test_kid_naming_another_key_fails_the_signature() -> None:
    other = SoftwareSigner.generate()
    protected = protected_for(ES, kid=did_from_key(other.public_key).encode())
    with pytest.raises(errors.BadSignature):
        verify_reading(cose(ES, protected=protected))


def test_an_explicit_key_overrides_the_kid() -> None:
    entry = sign_reading(ES, **FIELDS)
    other = SoftwareSigner.generate()
    with pytest.raises(errors.BadSignature):
        verify_reading(entry, key=other.public_key)
    with pytest.raises(errors.UnknownAlg, match="does not match the EdDSA device key"):
        verify_reading(entry, key=SIGNERS[Alg.EDDSA].public_key)
    assert verify_reading(entry, key=ES.public_key).seq == 7


@pytest.mark.parametrize("missing", ["seq", "ts", "sensor", "value"])
def test_each_missing_field(missing: str) -> None:
    fields = {k: v for k, v in FIELDS.items() if k != missing}
    with pytest.raises(errors.MissingField, match=f"no '{missing}'"):
        verify_reading(cose(fields=fields))
    with pytest.raises(errors.BadField):  # what sign_reading gets is always present
        sign_reading(ES, **{**FIELDS, missing: None})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": -1}, "seq must be an unsigned integer"),
        ({"seq": 2**64}, "seq must be an unsigned integer"),
        ({"seq": "7"}, "seq must be an unsigned integer"),
        ({"seq": 7.0}, "seq must be an unsigned integer"),
        ({"seq": True}, "seq must be an unsigned integer"),
        ({"ts": -5}, "ts must be an unsigned integer"),
        ({"ts": None}, "ts must be an unsigned integer"),
        ({"sensor": 5}, "sensor must be text"),
        ({"sensor": "x" * 65}, "sensor must be text of at most 64 bytes"),
        ({"sensor": "é" * 33}, "sensor must be text of at most 64 bytes"),
        ({"sensor": b"temp"}, "sensor must be text"),
        ({"value": True}, "value must be an integer, a float or text, not a boolean"),
        ({"value": None}, "not null"),
        ({"value": [1]}, "not an array"),
        ({"value": {"a": 1}}, "not a map"),
        ({"value": b"\x01"}, "not a byte string"),
        ({"value": math.nan}, "finite"),
        ({"value": math.inf}, "finite"),
        ({"unit": 3}, "unit must be text"),
        ({"unit": None}, "unit must be text, not null"),
        ({"unit": "u" * 65}, "unit must be text of at most 64 bytes"),
    ],
)
def test_each_wrong_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.BadField, match=message):
        verify_reading(cose(fields={**FIELDS, **change}))


def test_sign_refuses_what_verify_would_refuse() -> None:
    with pytest.raises(errors.BadField, match="sensor"):
        sign_reading(ES, **{**FIELDS, "sensor": "x" * 65})
    with pytest.raises(errors.BadField, match="finite"):
        sign_reading(ES, **{**FIELDS, "value": math.nan})


INT_KEYED: dict[Any, Any] = {**FIELDS, 1: 2}


@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        (cbor2.dumps([1, 2]), errors.WrongStructure, "payload must be a CBOR map"),
        (cbor2.dumps(INT_KEYED, canonical=True), errors.WrongStructure, "keys must be text"),
        (
            cbor2.dumps({**FIELDS, "when": cbor2.CBORTag(1, 5)}, canonical=True),
            errors.InvalidReading,
            "deterministic|tags are not allowed",
        ),
        (
            cbor2.dumps({**FIELDS, "x": cbor2.CBORTag(99, 5)}, canonical=True),
            errors.WrongStructure,
            "tags are not allowed",
        ),
        (cbor2.dumps({**FIELDS, "x": cbor2.undefined}), errors.BadCbor, "deterministic"),
        (b"", errors.BadCbor, "payload"),
        (b"\xff", errors.BadCbor, "payload"),
    ],
)
def test_bad_payloads(payload: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        verify_reading(cose(payload=payload))


def _nested(depth: int) -> Any:
    item: Any = 1
    for _ in range(depth):
        item = [item]
    return item


def test_deep_nesting_in_extra_fields_is_refused() -> None:
    with pytest.raises(errors.WrongStructure, match="nested too deeply"):
        verify_reading(cose(fields={**FIELDS, "deep": _nested(40)}))
    deeper = cose(
        payload=b"\xa5"
        + cbor2.dumps(FIELDS, canonical=True)[1:]
        + b"\x61x"
        + b"\x81" * 2000
        + b"\x01"
    )
    with pytest.raises(errors.BadCbor, match="depth"):
        verify_reading(deeper)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (bytes.fromhex("a4") + b"".join(
            cbor2.dumps(k) + cbor2.dumps(FIELDS[k]) for k in ["seq", "ts", "sensor", "value"]
        ), "keys out of canonical order"),
        (cbor2.dumps(FIELDS, canonical=True).replace(bytes.fromhex("f94d60"),
         bytes.fromhex("fb4035800000000000")), "21.5 as a 64-bit float"),
        (cbor2.dumps(FIELDS, canonical=True).replace(b"cseq\x07", b"cseq\x18\x07"),
         "non-minimal integer"),
        (bytes.fromhex("bf") + cbor2.dumps(FIELDS, canonical=True)[1:] + b"\xff",
         "indefinite-length map"),
        (bytes.fromhex("a5") + cbor2.dumps(FIELDS, canonical=True)[1:] + cbor2.dumps("ts")
         + cbor2.dumps(1), "duplicate key"),
        (cbor2.dumps(FIELDS, canonical=True) + b"\x00", "trailing byte"),
    ],
)  # fmt: skip
def test_non_deterministic_payloads_are_refused(payload: bytes, why: str) -> None:
    with pytest.raises(errors.BadCbor):
        verify_reading(cose(payload=payload))


@pytest.mark.parametrize(
    ("alg", "message"),
    [(-35, "alg -35"), (-257, "alg -257"), ("ES256", "alg 'ES256'"), (-7.0, "alg -7.0")],
)
def test_unknown_algs(alg: Any, message: str) -> None:
    with pytest.raises(errors.UnknownAlg, match=message):
        verify_reading(cose(protected=protected_for(ES, alg=alg)))


def test_alg_that_does_not_match_the_did_key() -> None:
    protected = protected_for(ES, alg=Alg.EDDSA.value)
    with pytest.raises(errors.UnknownAlg, match="does not match the kid's ES256 key"):
        verify_reading(cose(protected=protected))


@pytest.mark.parametrize(
    ("kid", "message"),
    [
        (b"sensor-17", "not a did:key"),
        (b"did:web:example.com", "not a did:key"),
        (b"\xff\xfe", "not UTF-8"),
        ("did:key:zDnae", "kid must be a byte string"),
        (b"did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp ", "not in canonical form"),
        (
            b"did:key:z82Lm1MpAkeJcix9K8TMiLd5NMAhnwkjjCBeWHXyu3U4oT2MVJJKXkcVBgjGhnLBn2Kaau9",
            "unsupported did:key key type P-384",
        ),
    ],
)
def test_kid_not_a_did(kid: Any, message: str) -> None:
    with pytest.raises(errors.KidNotDid, match=message):
        verify_reading(cose(protected=protected_for(ES, kid=kid)))


@pytest.mark.parametrize(
    ("protected", "message"),
    [
        (cbor2.dumps({1: -7}), "exactly alg"),
        (cbor2.dumps({4: b"x"}), "exactly alg"),
        (cbor2.dumps({1: -7, 3: 0, 4: b"x"}), "exactly alg"),
        (cbor2.dumps([1, 4]), "must encode a map"),
        (b"", "protected header"),
    ],
)
def test_protected_header_structure(protected: bytes, message: str) -> None:
    with pytest.raises(errors.InvalidReading, match=message):
        verify_reading(cose(protected=protected))


def test_protected_header_must_be_deterministic() -> None:
    kid = did_from_key(ES.public_key).encode()
    reordered = b"\xa2\x04" + cbor2.dumps(kid) + b"\x01\x26"
    with pytest.raises(errors.BadCbor, match="protected header is not in deterministic"):
        verify_reading(cose(protected=reordered))


def _raw_message(*items: bytes, head: bytes = b"\x84") -> bytes:
    return head + b"".join(items)


ENTRY = sign_reading(ES, **FIELDS)
_PROTECTED, _, _PAYLOAD, _SIGNATURE = cbor2.loads(ENTRY)
MALFORMED_MESSAGES: list[tuple[str, bytes, type[Exception], str]] = [
    ("3 items", cbor2.dumps([_PROTECTED, {}, _PAYLOAD]), errors.WrongStructure, "array of 4"),
    ("5 items", cbor2.dumps([_PROTECTED, {}, _PAYLOAD, _SIGNATURE, b""]),
     errors.WrongStructure, "of 4"),
    ("a map", cbor2.dumps({"a": 1}), errors.WrongStructure, "array of 4"),
    ("tag 98", cbor2.dumps(cbor2.CBORTag(98, [])), errors.WrongStructure, "CBOR tag 98"),
    ("tag 17", cbor2.dumps(cbor2.CBORTag(17, cbor2.loads(ENTRY))), errors.WrongStructure, "tag 17"),
    ("unwrapped protected", cose(protected=cbor2.loads(_PROTECTED)), errors.WrongStructure,
     "protected header must"),
    ("unprotected kid", cose(unprotected={4: b"kid"}), errors.WrongStructure,
     "unprotected header must be empty"),
    ("unprotected array", cose(unprotected=[]), errors.WrongStructure,
     "unprotected header must be a map"),
    ("detached", cose(payload=None, signature=_SIGNATURE), errors.WrongStructure, "detached"),
    ("text signature", cose(signature=_SIGNATURE.hex()), errors.WrongStructure,
     "signature must be a byte"),
    ("short signature", cose(signature=_SIGNATURE[:63]), errors.BadSignature, "64 bytes"),
    ("empty signature", cose(signature=b""), errors.BadSignature, "64 bytes"),
    ("empty", b"", errors.BadCbor, "message"),
    ("reserved", b"\x1c", errors.BadCbor, "message"),
    ("trailing byte", ENTRY + b"\x00", errors.BadCbor, "trailing"),
    ("long array head", b"\x98\x04" + ENTRY[1:], errors.BadCbor, "deterministic"),
    ("long tag", b"\xd8\x12" + ENTRY, errors.BadCbor, "deterministic"),
    ("tag twice", b"\xd2\xd2" + ENTRY, errors.WrongStructure, "array of 4"),
    ("indefinite array", b"\x9f" + ENTRY[1:] + b"\xff", errors.BadCbor, "deterministic"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [case[1:] for case in MALFORMED_MESSAGES],
    ids=[case[0] for case in MALFORMED_MESSAGES],
)
def test_message_structure_errors(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        verify_reading(data)


@given(st.binary(max_size=300))
@example(b"\xd2\x84\x40\xa0\x40\x40")
@example(b"\x84\x40\xa0\x40\x40")
def test_arbitrary_bytes_raise_only_invalid_reading(data: bytes) -> None:
    try:
        verify_reading(data)
    except errors.InvalidReading:
        return
    pytest.fail("random bytes verified as a reading")


# --- fast paths against their references --------------------------------------


@given(st.dictionaries(st.text(max_size=8), values | st.booleans() | st.none(), max_size=6))
def test_plain_determinism_fast_path_only_accepts_what_the_reference_accepts(
    fields: dict[str, Any],
) -> None:
    for payload in (cbor2.dumps(fields, canonical=True), cbor2.dumps(fields)):
        decoded = cbor2.loads(payload)
        if plainly_deterministic(decoded, payload):
            require_deterministic(decoded, payload, "payload")  # must not raise


@pytest.mark.parametrize(
    "value", [20.1, 20.0, 0.5, -0.0, 65504.0, 1e-7, 3.4e38, 1e39, 21, -(2**64), 2**64 - 1, "C°"]
)
def test_plain_determinism_fast_path_is_taken_for_usual_payloads(value: Any) -> None:
    """Any plain value, floats of every width among them (a half-precision 20.0 took
    the slow path once), is decided without the reference's re-encoding."""
    payload = cbor2.dumps({**FIELDS, "value": value, "unit": "C"}, canonical=True)
    assert plainly_deterministic(cbor2.loads(payload), payload)
    assert not plainly_deterministic(cbor2.loads(payload), payload + b"\x00")
    longer = cbor2.dumps({**FIELDS, "value": value, "unit": "C"})  # 64-bit floats
    if longer != payload:
        assert not plainly_deterministic(cbor2.loads(longer), longer)


def test_the_fast_path_keeps_to_the_reference_at_its_quirks() -> None:
    """cbor2 writes 65504.0 (the largest half) in single precision: a payload in half
    precision is refused by both checks, never taken by the fast one alone."""
    canonical = cbor2.dumps({**FIELDS, "value": 65504.0}, canonical=True)
    half = canonical.replace(b"\xfa\x47\x7f\xe0\x00", b"\xf9\x7b\xff")
    assert half != canonical and cbor2.loads(half) == cbor2.loads(canonical)
    assert not plainly_deterministic(cbor2.loads(half), half)
    with pytest.raises(errors.BadCbor):
        require_deterministic(cbor2.loads(half), half, "payload")


def test_float_sizes_are_the_references_for_every_half() -> None:
    for bits in range(1 << 16):
        value = struct.unpack(">e", bits.to_bytes(2, "big"))[0]
        if math.isfinite(value):
            assert float_size(value) == len(cbor2.dumps(value, canonical=True)), value


@given(st.floats(allow_nan=False, allow_infinity=False) | st.floats(width=32, allow_nan=False))
def test_float_sizes_are_the_references(value: float) -> None:
    if math.isfinite(value):
        assert float_size(value) == len(cbor2.dumps(value, canonical=True))


@pytest.mark.parametrize("bits", range(65))
def test_plain_size_of_integers_at_every_head_boundary(bits: int) -> None:
    for edge in {(1 << bits) - 1, 1 << bits, 23, 24}:
        for value in (edge, -1 - edge):
            if -(2**64) <= value < 2**64:
                fields = {"v": value}
                assert plain_size(fields) == len(cbor2.dumps(fields, canonical=True)), value


@given(st.dictionaries(st.text(max_size=30), values, max_size=8))
def test_plain_size_is_the_length_of_the_canonical_encoding(fields: dict[str, Any]) -> None:
    assert plain_size(fields) == len(cbor2.dumps(fields, canonical=True))


@given(
    protected=st.binary(max_size=300),
    payload=st.binary(max_size=70_000),
    signature=st.binary(max_size=300),
)
def test_deterministic_size_matches_a_canonical_encoding(
    protected: bytes, payload: bytes, signature: bytes
) -> None:
    encoded = cbor2.dumps([protected, {}, payload, signature], canonical=True)
    assert deterministic_size(protected, payload, signature) == len(encoded)


@given(protected=st.binary(max_size=300), payload=st.binary(max_size=1000))
def test_cached_sig_structure_matches_the_reference(protected: bytes, payload: bytes) -> None:
    reference = cbor2.dumps(["Signature1", protected, b"", payload])
    assert sig_structure(protected, payload) == reference


def test_parse_without_signature_check() -> None:
    entry = bytearray(sign_reading(ES, **FIELDS))
    entry[-1] ^= 1
    reading = parse_reading(bytes(entry))
    assert isinstance(reading, Reading)
    assert reading.seq == 7
    with pytest.raises(errors.BadSignature):
        verify_reading(bytes(entry))


def test_reason_codes_are_stable() -> None:
    assert {cls.reason for cls in errors.InvalidReading.__subclasses__()} == {
        "oversized",
        "bad-cbor",
        "wrong-structure",
        "unknown-alg",
        "kid-not-did",
        "missing-field",
        "bad-field",
        "signature",
    }
