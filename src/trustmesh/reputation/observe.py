"""An epoch's inputs from logged readings: what the entries of any number of logs
show about the devices that signed them, and the witnessing among them.

A reading falls into the epoch ``ts // epoch_ms`` of its own timestamp, so that
everyone who reads the same entries puts them in the same epochs. Per device and
epoch:

- ``READINGS_LOGGED``: its distinct readings (ref: SHA-256 of their leaf hashes,
  sorted);
- ``SEQ_GAP``: each run of seqs missing between two of its readings (ref: the
  leaf hash of the reading after the gap): signed and never logged anywhere seen;
- ``CLOCK_DRIFT``: a reading whose ts is earlier than that of a lower seq (ref:
  its leaf hash): the device's clock went back;

and the epoch's challenges and witness readings, judged by
:func:`~trustmesh.reputation.witness.judge`.

>>> from trustmesh.identity import SoftwareSigner
>>> from trustmesh.reading import sign_reading, verify_reading
>>> signer = SoftwareSigner.generate()
>>> observer = Observer(epoch_ms=60_000)
>>> for seq in (1, 2, 5):
...     observer.add(verify_reading(sign_reading(signer, seq=seq, ts=seq, sensor="t", value=1)))
>>> sorted((e.kind.name, e.count) for e in observer.inputs(0).evidence)
[('READINGS_LOGGED', 3), ('SEQ_GAP', 1)]
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Mapping, Sequence

from trustmesh.errors import InvalidEvidence
from trustmesh.log.merkle import leaf_hash
from trustmesh.reading import Reading
from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.evidence import Evidence, Kind, Stake
from trustmesh.reputation.table import EpochInputs
from trustmesh.reputation.witness import CHALLENGE, WITNESS, WitnessRules, judge, subject_id

__all__ = ["Observer"]

_RECORD = struct.Struct(">QQ32s")  # a logged reading: seq, ts, leaf hash


class Observer:
    """Collects logged readings, in any order (a reading seen twice, in one log or
    two, counts once), and gives each epoch's :class:`EpochInputs`."""

    def __init__(self, epoch_ms: int, rules: WitnessRules | None = None) -> None:
        if epoch_ms <= 0:
            raise InvalidEvidence("epoch_ms must be positive")
        self.epoch_ms = epoch_ms
        self.rules = rules or WitnessRules()
        # epoch -> did -> its readings as packed (seq, ts, leaf hash) records, in the
        # order seen (48 bytes each: an epoch of a busy log holds millions); a seq
        # seen again is a copy or an equivocation (which the Disputes contract
        # proves): the first seen stays, sorted out when the epoch's inputs are made
        self._logged: dict[int, dict[str, bytearray]] = {}
        self._witnessing: dict[int, dict[bytes, Reading]] = {}

    def add(self, reading: Reading, digest: bytes | None = None) -> None:
        """One logged reading (``digest``: its leaf hash, if known already)."""
        epoch = reading.ts // self.epoch_ms
        if digest is None:
            digest = leaf_hash(reading.entry)
        records = self._logged.setdefault(epoch, {}).get(reading.did)
        if records is None:
            records = self._logged[epoch][reading.did] = bytearray()
        records += _RECORD.pack(reading.seq, reading.ts, digest)
        if reading.sensor in (CHALLENGE, WITNESS):
            self._witnessing.setdefault(epoch, {})[digest] = reading

    def epochs(self) -> list[int]:
        """The epochs that hold readings, oldest first."""
        return sorted(self._logged)

    def forget(self, epoch: int) -> None:
        """Drop an epoch's readings (once its table is computed for good)."""
        self._logged.pop(epoch, None)
        self._witnessing.pop(epoch, None)

    def inputs(
        self,
        epoch: int,
        stakes: Sequence[Stake] = (),
        previous: Mapping[bytes, BetaState] | None = None,
        evidence: Sequence[Evidence] = (),
    ) -> EpochInputs:
        """The epoch's inputs: the logs' evidence, the witnessing, and what the chain
        shows (``stakes``, chain ``evidence``), on top of last epoch's ``previous``."""
        found = list(evidence)
        # Witnessing counts if it is its (did, seq)'s first reading: only their seqs are
        # looked up (one device at a time: an epoch of a busy log holds millions).
        witnessed = self._witnessing.get(epoch, {})
        asked: dict[str, set[int]] = {}
        for reading in witnessed.values():
            asked.setdefault(reading.did, set()).add(reading.seq)
        kept: set[bytes] = set()  # of those, the leaf hash of the first reading
        for did, records in sorted(self._logged.get(epoch, {}).items()):
            readings: dict[int, tuple[int, bytes]] = {}
            for seq, ts, digest in _RECORD.iter_unpack(records):
                readings.setdefault(seq, (ts, digest))
            found.extend(_device_evidence(subject_id(did), readings))
            kept.update(readings[seq][1] for seq in asked.get(did, ()) if seq in readings)
        staked = [stake.subject for stake in stakes if stake.amount > 0 and not stake.slashed]
        shown = [r for digest, r in witnessed.items() if digest in kept]
        witnessing = judge(shown, self.rules, staked)
        return EpochInputs(
            epoch,
            evidence=[*found, *witnessing.evidence],
            attestations=witnessing.attestations,
            stakes=stakes,
            previous=dict(previous or {}),
        )


def _device_evidence(subject: bytes, readings: Mapping[int, tuple[int, bytes]]) -> list[Evidence]:
    hashes = sorted(digest for _, digest in readings.values())
    found = [
        Evidence(
            subject, Kind.READINGS_LOGGED, hashlib.sha256(b"".join(hashes)).digest(), len(hashes)
        )
    ]
    ordered = sorted(readings.items())
    for (seq, (ts, _)), (next_seq, (next_ts, digest)) in itertools.pairwise(ordered):
        if next_seq > seq + 1:
            found.append(Evidence(subject, Kind.SEQ_GAP, digest))
        if next_ts < ts:
            found.append(Evidence(subject, Kind.CLOCK_DRIFT, digest))
    return found
