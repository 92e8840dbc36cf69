"""The watcher's checks: split views, equivocation across logs, invalid entries."""

from __future__ import annotations

from collections.abc import Callable

from trustmesh.identity import PublicKey, SoftwareSigner, did_from_key, key_from_did
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note import NoteSigner
from trustmesh.reading import sign_reading
from trustmesh.watcher.audit import CheckpointTracker, audit_entry
from trustmesh.watcher.seqindex import SeqIndex

ORIGIN = "watched.example/log"
LEAVES = [merkle.leaf_hash(b"%d" % i) for i in range(40)]


def _note(signer: NoteSigner, leaves: list[bytes]) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, len(leaves), merkle.root(leaves)), signer)


def _proofs(leaves: list[bytes]) -> Callable[[int, int], list[bytes]]:
    return lambda old, new: merkle.consistency_proof(leaves[:new], old)


def test_a_growing_honest_log_raises_nothing() -> None:
    log = NoteSigner.generate(ORIGIN)
    tracker = CheckpointTracker(log.verifier, ORIGIN)
    for size in (1, 5, 5, 17, 40):
        assert tracker.observe(_note(log, LEAVES[:size]), _proofs(LEAVES)) is None
    assert tracker.latest is not None and tracker.latest.size == 40
    assert tracker.observe(_note(log, LEAVES[:12]), _proofs(LEAVES)) is None  # a stale view is fine
    assert tracker.latest.size == 40


def test_split_views_are_found_with_both_checkpoints_as_evidence() -> None:
    log = NoteSigner.generate(ORIGIN)
    forked = [*LEAVES[:10], merkle.leaf_hash(b"rewritten"), *LEAVES[11:]]
    tracker = CheckpointTracker(log.verifier, ORIGIN)
    honest = _note(log, LEAVES[:20])
    assert tracker.observe(honest, _proofs(LEAVES)) is None
    same_size = tracker.observe(_note(log, forked[:20]), _proofs(forked))
    assert same_size is not None and same_size.kind == "split-view"
    assert same_size.evidence[0] == honest
    grown = tracker.observe(_note(log, forked[:30]), _proofs(forked))
    assert grown is not None and grown.kind == "split-view"
    assert tracker.latest is not None and tracker.latest.size == 20  # the lie is not adopted


def test_a_checkpoint_not_signed_by_the_log_is_reported() -> None:
    log, impostor = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    tracker = CheckpointTracker(log.verifier, ORIGIN)
    finding = tracker.observe(_note(impostor, LEAVES[:3]), _proofs(LEAVES))
    assert finding is not None and finding.kind == "bad-checkpoint"


def _logs() -> tuple[dict[tuple[str, int], bytes], SeqIndex]:
    """A SeqIndex over logs kept in a dict (what a watcher's mirrors hold)."""
    logs: dict[tuple[str, int], bytes] = {}

    def entry_at(origin: str, index: int) -> bytes:
        return logs[(origin, index)]

    return logs, SeqIndex(entry_at)


def test_equivocation_across_two_logs() -> None:
    device = SoftwareSigner.generate()
    first = sign_reading(device, seq=4, ts=1, sensor="t", value=1)
    second = sign_reading(device, seq=4, ts=1, sensor="t", value=2)
    logs, index = _logs()
    logs[("log-a", 0)] = first  # the evidence is read back from the log that holds it
    assert index.observe(first, "log-a", 0) is None
    assert index.observe(first, "log-b", 7) is None  # the same reading on a second log: a retry
    finding = index.observe(second, "log-b", 8)
    assert finding is not None and finding.kind == "equivocation"
    assert finding.evidence == (first, second)
    assert index.observe(b"not a reading", "log-b", 9) is None


def test_a_replayed_seq_within_one_log() -> None:
    device = SoftwareSigner.generate()
    readings = [sign_reading(device, seq=seq, ts=1, sensor="t", value=seq) for seq in (1, 5, 3)]
    _, index = _logs()
    assert index.observe(readings[0], "log-a", 0) is None
    assert index.observe(readings[1], "log-a", 1) is None
    assert index.observe(readings[2], "log-b", 0) is None  # another log: its own order
    finding = index.observe(readings[2], "log-a", 2)
    assert finding is not None and finding.kind == "seq-order" and finding.index == 2
    assert "seq 3 logged after seq 5" in finding.detail


def test_equivocation_within_one_batch_and_the_largest_seq() -> None:
    """Both readings in one batch (the first not yet in any mirror: its bytes come
    from the batch), and a seq of 2^64 - 1 (past SQLite's signed integers)."""
    device = SoftwareSigner.generate()
    top = (1 << 64) - 1
    first = sign_reading(device, seq=top, ts=1, sensor="t", value=1)
    second = sign_reading(device, seq=top, ts=1, sensor="t", value=2)
    _, index = _logs()
    (finding,) = index.observe_batch([first, second], "log-a", 10)
    assert finding.kind == "equivocation" and finding.evidence == (first, second)
    assert "log-a#10 and log-a#11" in finding.detail
    resigned = sign_reading(device, seq=top, ts=1, sensor="t", value=1)  # same payload
    assert index.observe(resigned, "log-b", 0) is None  # a retry, not an equivocation


def test_invalid_entries() -> None:
    device, stranger = SoftwareSigner.generate(), SoftwareSigner.generate()
    registered = {did_from_key(device.public_key)}

    def key_for(did: str, seq: int) -> PublicKey | None:
        return key_from_did(did) if did in registered else None

    good = sign_reading(device, seq=1, ts=1, sensor="t", value=1)
    assert audit_entry(good, ORIGIN, 0, key_for) is None
    tampered = good[:-1] + bytes([good[-1] ^ 1])
    for entry, reason in (
        (b"\x00garbage", "wrong-structure"),
        (sign_reading(stranger, seq=1, ts=1, sensor="t", value=1), "not registered"),
        (tampered, "signature"),
    ):
        finding = audit_entry(entry, ORIGIN, 3, key_for)
        assert finding is not None and finding.kind == "invalid-entry"
        assert reason in finding.detail


def test_tile_index_paths() -> None:
    from trustmesh.log.tiles import tile_index

    assert [tile_index(n) for n in (0, 5, 999, 1000, 1234067)] == [
        "000",
        "005",
        "999",
        "x001/000",
        "x001/x234/067",
    ]
