"""The ingest benchmark's load generator: readings signed ahead on every core are
the readings a device would send, in its seq order, shared between the senders as
one sender would sign them."""

from __future__ import annotations

from trustmesh.bench.ingest import IN_FLIGHT, Device, sign_ahead
from trustmesh.reading import parse_reading, verify_reading


def test_readings_signed_ahead_are_each_devices_next_in_order() -> None:
    devices = [Device() for _ in range(IN_FLIGHT + 3)]  # groups of unequal size
    devices[0].seq = 41  # a device that sent readings before goes on from its next seq
    shares = sign_ahead(devices, 200)
    assert len(shares) == IN_FLIGHT and all(len(share) == 200 // IN_FLIGHT for share in shares)
    for g, share in enumerate(shares):
        group = devices[g::IN_FLIGHT]
        readings = [parse_reading(entry) for entry in share]
        # the group's devices in turn, as one sender signs its share
        assert [r.did for r in readings] == [group[i % len(group)].did for i in range(len(share))]
        for device in group:
            own = [verify_reading(entry, device.signer.public_key) for entry in share
                   if parse_reading(entry).did == device.did]  # fmt: skip
            first = 42 if device is devices[0] else 1
            assert [r.seq for r in own] == list(range(first, first + len(own)))
            assert device.seq == first - 1 + len(own)  # the next reading follows on
