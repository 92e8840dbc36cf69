"""Peer witnessing over the mesh (:mod:`trustmesh.reputation.witness` for the rules).

A device challenges its neighbourhood by publishing its challenge on the witness
topic; a device that hears one from within range answers with its own
measurement, published the same way. Both are ordinary readings, also queued in
their device's outbox, so each is logged and receipted like any other (a node on
the mesh logs them as it hears them; the uplink's copy is then a duplicate,
answered with the same receipt). The topic's validator has checked each
reading's signature before it reaches here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from trustmesh._cborseq import InvalidSequence, split_sequence
from trustmesh.device._device import Device
from trustmesh.device._uplink import Uplink
from trustmesh.errors import InvalidMeshMessage, InvalidReading
from trustmesh.mesh.topics import WITNESS
from trustmesh.reading import parse_reading
from trustmesh.reputation.witness import (
    CHALLENGE,
    WitnessRules,
    challenge_fields,
    claim_of,
    witness_fields,
)
from trustmesh.reputation.witness import WITNESS as ANSWER

if TYPE_CHECKING:  # (libp2p is the optional 'mesh' extra: imported only by who runs a peer)
    from trustmesh.mesh.peer import MeshPeer

log = logging.getLogger("trustmesh.device.witness")

MAX_HEARD = 100  # readings of a witness message this device reads (a longer one: none)


class MeshWitness:
    def __init__(
        self,
        peer: MeshPeer,
        device: Device,
        uplink: Uplink,
        pos: tuple[int, int],
        measure: Callable[[], float],
        *,
        unit: str = "C",
        rules: WitnessRules | None = None,
    ) -> None:
        """``measure()``: this device's own reading of what a challenge measured."""
        self.peer, self.device, self.uplink = peer, device, uplink
        self.pos, self.measure, self.unit = pos, measure, unit
        self.rules = rules or WitnessRules()
        self.answered = 0  # challenges this device answered
        peer.subscribe(WITNESS, self._hear)

    def challenge(self, value: float) -> bytes:
        """Challenge the neighbourhood: this device measured ``value`` here, now."""
        entry = self.device.sign(CHALLENGE, value, unit=self.unit,
                                 extra=challenge_fields(self.pos))  # fmt: skip
        self._send(entry)
        return entry

    def _send(self, entry: bytes) -> None:
        self.uplink.queue(entry)  # logged and receipted like any reading
        try:
            self.peer.publish(WITNESS, entry, trusted=True)
        except InvalidMeshMessage as exc:  # (the outbox still holds it)
            log.warning("witness: not published on the mesh: %s", exc)

    def _hear(self, data: bytes) -> None:
        try:
            items, decoded = split_sequence(data, MAX_HEARD)
        except InvalidSequence:
            return  # (over MAX_HEARD readings: left unanswered)
        for entry, value in zip(items, decoded, strict=True):
            try:
                reading = parse_reading(entry, decoded=value)
            except InvalidReading:
                continue
            claim = claim_of(reading)
            if reading.sensor != CHALLENGE or reading.did == self.device.did or claim is None:
                continue
            if math.dist(claim.pos, self.pos) > self.rules.range_m:
                continue  # out of range: it could not have been heard here
            extra = witness_fields(entry, reading.did, self.pos)
            answer = self.device.sign(ANSWER, round(self.measure(), 2), self.unit, extra)
            self._send(answer)
            self.answered += 1
