"""A device's mesh identity, bound to its did:key (pure).

libp2p peer ids take Ed25519 keys, not P-256 ones (a P-256 key in a secure
element cannot be a peer id), so a device joins the mesh with an Ed25519 key of
its own and binds it to its did:key by a reading its device key signs: sensor
``mesh/peer``, value ``ed25519:`` and the peer key's 64 hex digits. A binding is
a reading like any other (checked by the one verification path, logged and
anchored like the rest), and a device's latest binding (highest seq) is the one
that holds.

>>> from trustmesh.identity import Alg, SoftwareSigner
>>> device, peer = SoftwareSigner.generate(), SoftwareSigner.generate(Alg.EDDSA)
>>> binding = read_binding(bind(device, peer.public_key.raw, seq=1, ts=0))
>>> binding.peer_key == peer.public_key.raw
True
"""

from __future__ import annotations

from dataclasses import dataclass

from trustmesh.errors import InvalidMeshMessage, InvalidReading
from trustmesh.identity import Signer
from trustmesh.reading import sign_reading, verify_reading

__all__ = ["SENSOR", "Binding", "bind", "read_binding"]

SENSOR = "mesh/peer"
PREFIX = "ed25519:"


@dataclass(frozen=True)
class Binding:
    did: str
    peer_key: bytes  # the Ed25519 public key the device's mesh peer id is made from
    seq: int
    ts: int


def bind(signer: Signer, peer_key: bytes, *, seq: int, ts: int) -> bytes:
    """The reading that binds the Ed25519 ``peer_key`` to ``signer``'s did:key."""
    if len(peer_key) != 32:
        raise InvalidMeshMessage("a mesh peer key is a 32-byte Ed25519 public key")
    return sign_reading(signer, seq=seq, ts=ts, sensor=SENSOR, value=PREFIX + peer_key.hex())


def read_binding(entry: bytes) -> Binding:
    """The binding in ``entry``, its signature checked against its did:key;
    InvalidMeshMessage if it is not one."""
    try:
        reading = verify_reading(entry)
    except InvalidReading as exc:
        raise InvalidMeshMessage(f"not a signed reading: {exc}") from None
    value = reading.value
    if reading.sensor != SENSOR or not isinstance(value, str) or not value.startswith(PREFIX):
        raise InvalidMeshMessage(f"not a mesh binding (sensor {SENSOR!r}, value {PREFIX}…)")
    digits = value.removeprefix(PREFIX)
    if len(digits) != 64 or digits != digits.lower():
        raise InvalidMeshMessage("a mesh binding names 64 lowercase hex digits")
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise InvalidMeshMessage("a mesh binding names 64 lowercase hex digits") from None
    return Binding(reading.did, key, reading.seq, reading.ts)
