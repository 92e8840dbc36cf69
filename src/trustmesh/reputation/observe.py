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
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trustmesh.errors import InvalidEvidence
from trustmesh.log.merkle import leaf_hash
from trustmesh.reading import Reading
from trustmesh.reputation.beta import BetaState
from trustmesh.reputation.evidence import Evidence, Kind, Stake
from trustmesh.reputation.records import MemoryRecords, Records
from trustmesh.reputation.table import EpochInputs
from trustmesh.reputation.witness import CHALLENGE, WITNESS, WitnessRules, judge, subject_id

__all__ = ["Observer", "Packed", "pack"]

_RECORD = struct.Struct(">QQ32s")  # a logged reading: seq, ts, leaf hash
_WITNESSING = frozenset((CHALLENGE, WITNESS))  # sensors whose readings are witnessing
_TABLE = np.dtype([("seq", ">u8"), ("ts", ">u8"), ("leaf", "S32")])  # records, unpacked


@dataclass(frozen=True)
class Packed:
    """Logged readings as an observer keeps them: each device's records of an epoch
    in one piece, 48 bytes a reading, and the few witnessing readings whole. A node
    packs each batch it logs on its way to the observer's thread (a batch of whole
    readings waiting there weighed ~1 KB a reading: ~200 MB while an epoch closed)."""

    count: int  # readings packed
    groups: dict[tuple[int, str], bytes]  # (epoch, did) → records, in the order given
    witnessing: list[tuple[int, bytes, Reading]]  # (epoch, leaf hash, reading)


def pack(readings: Sequence[Reading], digests: Sequence[bytes | None], epoch_ms: int) -> Packed:
    """Pack ``readings`` (``digests``: their leaf hashes, None where not known) for
    epochs of ``epoch_ms``. Pure: any thread may pack."""
    record = _RECORD.pack
    groups: dict[tuple[int, str], list[bytes]] = {}
    witnessing = []
    for reading, given in zip(readings, digests, strict=True):
        ts = reading.ts
        epoch = ts // epoch_ms
        digest = leaf_hash(reading.entry) if given is None else given
        group = groups.get((epoch, reading.did))
        if group is None:
            group = groups[(epoch, reading.did)] = []
        group.append(record(reading.seq, ts, digest))
        if reading.fields["sensor"] in _WITNESSING:
            witnessing.append((epoch, digest, reading))
    joined = {key: b"".join(records) for key, records in groups.items()}
    return Packed(len(readings), joined, witnessing)


class Observer:
    """Collects logged readings, in any order (a reading seen twice, in one log or
    two, counts once), and gives each epoch's :class:`EpochInputs`."""

    def __init__(
        self, epoch_ms: int, rules: WitnessRules | None = None, records: Records | None = None
    ) -> None:
        if epoch_ms <= 0:
            raise InvalidEvidence("epoch_ms must be positive")
        self.epoch_ms = epoch_ms
        self.rules = rules or WitnessRules()
        # each device's readings per epoch as packed (seq, ts, leaf hash) records, in
        # the order seen (an epoch of a busy log holds millions: a node spills them to
        # disk); a seq seen again is a copy or an equivocation (which the Disputes
        # contract proves): the first seen stays, sorted out when the epoch's inputs
        # are made
        self._records: Records = records if records is not None else MemoryRecords()
        self._witnessing: dict[int, dict[bytes, Reading]] = {}

    def add(self, reading: Reading, digest: bytes | None = None) -> None:
        """One logged reading (``digest``: its leaf hash, if known already)."""
        self.add_many((reading,), (digest,))

    def add_many(self, readings: Sequence[Reading], digests: Sequence[bytes | None]) -> None:
        """Logged readings, as :meth:`add` takes each."""
        self.add_packed(pack(readings, digests, self.epoch_ms))

    def add_packed(self, packed: Packed, since: int | None = None) -> set[str]:
        """Readings :func:`pack` packed, those of epochs from ``since`` on (None: all);
        the DIDs of those added."""
        added = set()
        for (epoch, did), records in packed.groups.items():
            if since is None or epoch >= since:
                self._records.add(epoch, did, records)
                added.add(did)
        for epoch, digest, reading in packed.witnessing:
            if since is None or epoch >= since:
                self._witnessing.setdefault(epoch, {})[digest] = reading
        return added

    def epochs(self) -> list[int]:
        """The epochs that hold readings, oldest first."""
        return self._records.epochs()

    def forget(self, epoch: int) -> None:
        """Drop an epoch's readings (once its table is computed for good)."""
        self._records.forget(epoch)
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
        for did, records in self._records.devices(epoch):
            evidence_of, firsts = _device_evidence(subject_id(did), records, asked.get(did, ()))
            found.extend(evidence_of)
            kept.update(firsts)
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


def _device_evidence(
    subject: bytes, records: bytes, asked: Collection[int]
) -> tuple[list[Evidence], list[bytes]]:
    """A device's evidence from its records of an epoch (each seq's first reading
    counts), and the leaf hashes of the first readings of the ``asked`` seqs. In
    numpy: a busy device has hundreds of thousands of readings an epoch, and a
    node closes epochs while it ingests."""
    table = np.frombuffer(records, dtype=_TABLE)
    seqs, first = np.unique(table["seq"], return_index=True)  # sorted; first seen of each
    kept = table[first]

    def leaf(rank: int) -> bytes:  # of the ``rank``-th kept reading (by seq)
        offset = int(first[rank]) * _TABLE.itemsize + 16
        return records[offset : offset + 32]

    digest = hashlib.sha256(np.sort(kept["leaf"]).tobytes()).digest()
    found = [Evidence(subject, Kind.READINGS_LOGGED, digest, len(kept))]
    gaps = set(np.flatnonzero(np.diff(seqs) > 1).tolist())
    ts = kept["ts"]
    drifts = set(np.flatnonzero(ts[1:] < ts[:-1]).tolist())
    for rank in sorted(gaps | drifts):  # the pair (rank, rank + 1), in seq order
        if rank in gaps:
            found.append(Evidence(subject, Kind.SEQ_GAP, leaf(rank + 1)))
        if rank in drifts:
            found.append(Evidence(subject, Kind.CLOCK_DRIFT, leaf(rank + 1)))
    firsts = []
    for seq in asked:
        rank = int(np.searchsorted(seqs, seq))
        if rank < len(seqs) and int(seqs[rank]) == seq:
            firsts.append(leaf(rank))
    return found, firsts
