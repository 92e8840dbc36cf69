"""The kept cbor2 encoder and decoder give what cbor2.dumps and cbor2.loads
give, and carry nothing from one input to the next."""

from __future__ import annotations

import gc
import io
import threading
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustmesh import _cbor

items = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@given(items)
def test_same_bytes_as_cbor2(item: Any) -> None:
    assert _cbor.dumps(item) == cbor2.dumps(item)
    assert _cbor.dumps(item, canonical=True) == cbor2.dumps(item, canonical=True)


@given(st.binary(max_size=64))
def test_same_values_or_errors_as_cbor2(data: bytes) -> None:
    try:
        expected = cbor2.loads(data)
    except Exception as exc:
        with pytest.raises(type(exc)):
            _cbor.loads(data)
        return
    got = _cbor.loads(data)
    assert repr(got) == repr(expected)  # repr: NaN equals NaN


def test_no_state_carries_over_between_inputs() -> None:
    assert _cbor.loads(bytes.fromhex("d81c42abcd")) == b"\xab\xcd"  # 28(h'abcd'): shareable
    with pytest.raises(cbor2.CBORDecodeError, match="shared reference 0 not found"):
        _cbor.loads(bytes.fromhex("d81d00"))  # 29(0) must not see the earlier value
    with pytest.raises(cbor2.CBORDecodeError):
        _cbor.loads(bytes.fromhex("d81900"))  # a string reference outside any namespace
    with pytest.raises(cbor2.CBOREncodeError):
        _cbor.dumps(object())
    assert _cbor.dumps({"b": 1, "a": 2}, canonical=True) == bytes.fromhex("a2616102616201")


def test_threads_do_not_share_encoders() -> None:
    results: list[bool] = []

    def work(seed: int) -> None:
        ok = True
        for i in range(2000):
            value = {"seed": seed, "i": i, "x": [seed] * (i % 7)}
            ok &= _cbor.loads(_cbor.dumps(value, canonical=True)) == value
        results.append(ok)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 4


# Inputs on each path cbor2 5's C decoder raised through its leaking raise_from
# (agronholm/cbor2#257): undecodable text, then tags 1, 30, 37 over bad values.
HOSTILE = ["62ff41", "a10162ff41", "bf0162ff41ff", "c11bffffffffffffffff", "d81e820100", "d8254100"]


def _errors_alive() -> int:
    gc.collect()
    return sum(isinstance(o, cbor2.CBORDecodeValueError) for o in gc.get_objects())


@pytest.mark.parametrize("hex_input", HOSTILE)
def test_a_hostile_input_leaves_nothing_behind(hex_input: str) -> None:
    data = bytes.fromhex(hex_input)
    before = _errors_alive()
    for _ in range(200):
        with pytest.raises(cbor2.CBORDecodeValueError):
            _cbor.loads(data)
        with pytest.raises(cbor2.CBORDecodeValueError):
            _cbor.decode_next(cbor2.CBORDecoder(io.BytesIO(data)))
    assert _errors_alive() - before < 10  # each of the 400 errors was freed


def test_the_mend_takes_only_the_leaked_reference() -> None:
    """An error that was raised and caught here is still whole after it (freed
    too soon, it would crash or read garbage): its message and cause are intact."""
    errors = []
    for _ in range(50):
        try:
            _cbor.loads(bytes.fromhex("62ff41"))
        except cbor2.CBORDecodeValueError as exc:
            errors.append(exc)
    gc.collect()
    assert {str(e) for e in errors} == {"error decoding unicode string"}
    assert all(isinstance(e.__cause__, UnicodeDecodeError) for e in errors)
