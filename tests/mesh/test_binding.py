"""A device's mesh identity: an Ed25519 peer key bound to its did:key by a reading
the device key signs (a P-256 device included); anything else is refused."""

from __future__ import annotations

import pytest

from trustmesh.errors import InvalidMeshMessage
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.mesh.binding import SENSOR, bind, read_binding
from trustmesh.reading import sign_reading


def test_a_p256_device_binds_an_ed25519_peer_key() -> None:
    device, peer = SoftwareSigner.generate(Alg.ES256), SoftwareSigner.generate(Alg.EDDSA)
    binding = read_binding(bind(device, peer.public_key.raw, seq=7, ts=1_000))
    assert (binding.did, binding.peer_key) == (did_from_key(device.public_key), peer.public_key.raw)
    assert (binding.seq, binding.ts) == (7, 1_000)


def test_what_is_not_a_binding_is_refused_by_name() -> None:
    device = SoftwareSigner.generate()
    entry = bind(device, bytes(range(32)), seq=1, ts=1)
    forged = entry[:-1] + bytes([entry[-1] ^ 1])
    cases = {
        forged: "not a signed reading",
        sign_reading(device, seq=2, ts=1, sensor="t", value="ed25519:" + "00" * 32): "not a mesh",
        sign_reading(device, seq=3, ts=1, sensor=SENSOR, value=5): "not a mesh",
        sign_reading(device, seq=4, ts=1, sensor=SENSOR, value="ed25519:" + "AB" * 32): "64 lower",
        sign_reading(device, seq=5, ts=1, sensor=SENSOR, value="ed25519:" + "zz" * 32): "64 lower",
        sign_reading(device, seq=6, ts=1, sensor=SENSOR, value="ed25519:00"): "64 lower",
        b"\x84": "not a signed reading",
    }
    for entry, message in cases.items():
        with pytest.raises(InvalidMeshMessage, match=message):
            read_binding(entry)
    with pytest.raises(InvalidMeshMessage, match="32-byte"):
        bind(device, b"short", seq=9, ts=1)
