"""The Disputes contract: device equivocation proven on-chain (P256VERIFY and
on-chain CBOR parsing), slashing the device and paying the reporter; every
revert reason. On the embedded chain and on anvil."""

from __future__ import annotations

import os
import random
from pathlib import Path

import cbor2
import pytest
from web3.logs import DISCARD

from tests.chain.conftest import MIN_STAKE, REWARD_BPS, UNBONDING, Net
from trustmesh.chain.anchoring import anchor_log
from trustmesh.chain.client import ChainClient
from trustmesh.chain.suite import Deployment, Disputes, LogAnchor, Registry, deploy_suite
from trustmesh.errors import Oversized, Reverted
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import LogStore, open_store
from trustmesh.reading import MAX_ENTRY_SIZE, sign_reading, verify_reading

TS = 1_700_000_000_000


@pytest.fixture
def suite(net: Net) -> tuple[Deployment, Registry, Disputes]:
    """A suite with its Disputes contract wired to the Registry."""
    deployment = deploy_suite(
        net.deployer, min_stake=MIN_STAKE, unbonding_delay=UNBONDING, reward_bps=REWARD_BPS
    )
    return deployment, Registry(net.owner, deployment), Disputes(net.reporter, deployment)


def _device(registry: Registry, alg: Alg = Alg.ES256) -> SoftwareSigner:
    signer = SoftwareSigner.generate(alg)
    registry.register_device(did_from_key(signer.public_key), MIN_STAKE)
    return signer


def test_equivocation_is_proven_slashed_and_rewarded(
    net: Net, suite: tuple[Deployment, Registry, Disputes]
) -> None:
    _, registry, disputes = suite
    signer = _device(registry)
    did = did_from_key(signer.public_key)
    first = sign_reading(signer, seq=7, ts=TS, sensor="temperature", value=21.5, unit="C")
    second = sign_reading(signer, seq=7, ts=TS, sensor="temperature", value=35.0, unit="C")
    before = net.reporter.balance()
    receipt = disputes.prove_equivocation(first, second)
    # (the Registry's Slashed log is in the receipt too: not ours to decode here)
    (event,) = disputes.contract.events.EquivocationProven().process_receipt(
        receipt, errors=DISCARD
    )
    assert (event["args"]["seq"], event["args"]["slashed"]) == (7, MIN_STAKE)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.reporter.balance() == before + MIN_STAKE * REWARD_BPS // 10_000 - gas
    assert registry.device(did)["stake"] == 0
    with pytest.raises(Reverted, match="disputes: already proven"):
        disputes.prove_equivocation(second, first)


def test_equivocation_with_extra_fields_and_large_seq(
    suite: tuple[Deployment, Registry, Disputes],
) -> None:
    _, registry, disputes = suite
    signer = _device(registry)
    extra = {"gps": [48.85, 2.35, {"alt": 35}], "note": "x" * 300, "raw": b"\x00" * 40}
    seq = 2**40 + 3
    first = sign_reading(signer, seq=seq, ts=TS, sensor="s", value=1, extra=extra)
    second = sign_reading(signer, seq=seq, ts=TS + 1, sensor="s", value=1, extra=extra)
    disputes.prove_equivocation(first, second)


def test_equivocation_refusals(net: Net, suite: tuple[Deployment, Registry, Disputes]) -> None:
    _, registry, disputes = suite
    signer, other = _device(registry), _device(registry)
    first = sign_reading(signer, seq=1, ts=TS, sensor="s", value=1)
    cases: list[tuple[bytes, bytes, str]] = [
        (
            first,
            sign_reading(other, seq=1, ts=TS, sensor="s", value=2),
            "disputes: different devices",
        ),
        (
            first,
            sign_reading(signer, seq=2, ts=TS, sensor="s", value=2),
            "disputes: different seqs",
        ),
        (first, first, "disputes: same payload"),
        (b"\xd2" + first, first, "disputes: not an untagged COSE_Sign1"),
        (first[:-10], first, "disputes: trailing bytes|truncated"),
        (first + b"\x00", first, "disputes: trailing bytes"),
    ]
    tampered = bytearray(sign_reading(signer, seq=1, ts=TS, sensor="s", value=3))
    tampered[-1] ^= 1
    cases.append((first, bytes(tampered), "disputes: second signature invalid"))
    cases.append((bytes(tampered), first, "disputes: first signature invalid"))
    unregistered = SoftwareSigner.generate()
    cases.append(
        (
            sign_reading(unregistered, seq=1, ts=TS, sensor="s", value=1),
            sign_reading(unregistered, seq=1, ts=TS, sensor="s", value=2),
            "registry: unknown device",
        )
    )
    ed = _device(registry, Alg.EDDSA)
    cases.append(
        (
            sign_reading(ed, seq=1, ts=TS, sensor="s", value=1),
            sign_reading(ed, seq=1, ts=TS, sensor="s", value=2),
            "disputes: not an ES256 reading",
        )
    )
    no_seq = _cose(signer, {"ts": TS, "sensor": "s", "value": 1})
    cases.append((no_seq, no_seq, "disputes: missing field"))
    for left, right, reason in cases:
        with pytest.raises(Reverted, match=reason):
            disputes.prove_equivocation(left, right)
    assert registry.device(did_from_key(signer.public_key))["stake"] == MIN_STAKE


def test_rotated_key_is_the_one_that_counts(suite: tuple[Deployment, Registry, Disputes]) -> None:
    _, registry, disputes = suite
    signer = _device(registry)
    did = did_from_key(signer.public_key)
    successor = SoftwareSigner.generate()
    registry.rotate_key(did, successor.public_key, 100)
    # Before seq 100 the original key signs; from 100, only the successor counts.
    old = [_cose(signer, {"seq": 50, "ts": TS, "sensor": "s", "value": v}, did) for v in (1, 2)]
    disputes.prove_equivocation(*old)
    new = [_cose(signer, {"seq": 150, "ts": TS, "sensor": "s", "value": v}, did) for v in (1, 2)]
    with pytest.raises(Reverted, match="disputes: first signature invalid"):
        disputes.prove_equivocation(*new)


def _cose(signer: SoftwareSigner, fields: dict[str, object], did: str | None = None) -> bytes:
    """A reading built by hand (to omit a field, or to sign under a DID's old key)."""
    kid = (did or did_from_key(signer.public_key)).encode()
    protected = cbor2.dumps({1: -7, 4: kid}, canonical=True)
    payload = cbor2.dumps(fields, canonical=True)
    signature = signer.sign(cbor2.dumps(["Signature1", protected, b"", payload]))
    return cbor2.dumps([protected, {}, payload, signature], canonical=True)


def test_unwired_registry_refuses_the_slash(net: Net) -> None:
    """Disputes deployed but not named in the Registry: the proof cannot slash."""
    deployment = net.deployment  # the fixture's suite has no Disputes wired
    contracts = deployment.contracts
    disputes_address = net.deployer.deploy(
        "Disputes", contracts["Registry"], contracts["LogAnchor"], 3600
    )
    loose = Disputes(
        net.reporter,
        Deployment(deployment.chain_id, {**deployment.contracts, "Disputes": disputes_address}),
    )
    registry = Registry(net.owner, deployment)
    signer = _device(registry)
    first = sign_reading(signer, seq=1, ts=TS, sensor="s", value=1)
    second = sign_reading(signer, seq=1, ts=TS, sensor="s", value=2)
    with pytest.raises(Reverted, match="registry: only disputes"):
        loose.prove_equivocation(first, second)
    assert isinstance(net.reporter, ChainClient)


def _anchored_log(
    net: Net, tmp_path: Path, entries: list[bytes]
) -> tuple[Deployment, Disputes, str, LogStore]:
    deployment = deploy_suite(
        net.deployer, min_stake=MIN_STAKE, unbonding_delay=UNBONDING, reward_bps=REWARD_BPS
    )
    origin = f"invalid.example/{random.getrandbits(32)}"
    Registry(net.owner, deployment).register_log(
        LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1", MIN_STAKE
    )
    store = open_store(tmp_path / f"{origin.replace('/', '_')}.db")
    store.append(entries)
    anchor_log(LogAnchor(net.owner, deployment), store, origin)
    return deployment, Disputes(net.reporter, deployment), origin, store


@pytest.mark.parametrize("kind", ["malformed", "unregistered device", "bad signature"])
def test_invalid_entry_slashes_the_node(net: Net, tmp_path: Path, kind: str) -> None:
    honest = SoftwareSigner.generate()
    valid = sign_reading(honest, seq=1, ts=TS, sensor="s", value=1)
    invalid = {
        "malformed": b"\x00not a reading",
        "unregistered device": sign_reading(
            SoftwareSigner.generate(), seq=1, ts=TS, sensor="s", value=1
        ),
        "bad signature": valid[:-1] + bytes([valid[-1] ^ 1]),
    }[kind]
    deployment, disputes, origin, store = _anchored_log(net, tmp_path, [valid, invalid])
    Registry(net.owner, deployment).register_device(did_from_key(honest.public_key), MIN_STAKE)
    with pytest.raises(Reverted, match="disputes: the entry is valid"):
        disputes.prove_invalid_entry(origin, 2, 0, valid, store.inclusion_proof(0, 2))
    with pytest.raises(Reverted, match="disputes: not included"):
        disputes.prove_invalid_entry(origin, 2, 0, invalid, store.inclusion_proof(0, 2))
    with pytest.raises(Reverted, match="disputes: tree not anchored"):
        disputes.prove_invalid_entry(origin, 1, 0, valid, [])
    before = net.reporter.balance()
    receipt = disputes.prove_invalid_entry(origin, 2, 1, invalid, store.inclusion_proof(1, 2))
    proven = disputes.contract.events.InvalidEntryProven()
    (event,) = proven.process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["reason"], event["args"]["slashed"]) == (kind, MIN_STAKE)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert net.reporter.balance() == before + MIN_STAKE * REWARD_BPS // 10_000 - gas
    assert Registry(net.owner, deployment).node(origin)["stake"] == 0
    with pytest.raises(Reverted, match="disputes: already proven"):
        disputes.prove_invalid_entry(origin, 2, 1, invalid, store.inclusion_proof(1, 2))


def test_ed25519_entries_are_not_provable_on_chain(net: Net, tmp_path: Path) -> None:
    ed = SoftwareSigner.generate(Alg.EDDSA)
    entry = sign_reading(ed, seq=1, ts=TS, sensor="s", value=1)
    _, disputes, origin, store = _anchored_log(net, tmp_path, [entry[:-1] + bytes([entry[-1] ^ 1])])
    with pytest.raises(Reverted, match="disputes: only ES256 readings are proven on-chain"):
        disputes.prove_invalid_entry(origin, 1, 0, store.entry(0), [])


def test_big_valid_readings_are_valid_on_chain(net: Net, tmp_path: Path) -> None:
    """A reading at the size limit, with hundreds of fields and items, parses on-chain:
    an honest node can never be slashed for it."""
    signer = SoftwareSigner.generate()
    extra = {f"k{i}": [0] * 3 for i in range(300)}
    entry = sign_reading(signer, seq=1, ts=TS, sensor="s", value=1, extra=extra)
    assert len(entry) > 2000
    deployment, disputes, origin, _ = _anchored_log(net, tmp_path, [entry])
    Registry(net.owner, deployment).register_device(did_from_key(signer.public_key), MIN_STAKE)
    with pytest.raises(Reverted, match="disputes: the entry is valid"):
        disputes.prove_invalid_entry(origin, 1, 0, entry, [])
    assert disputes.verify_reading(origin, 1, 0, entry, [])["seq"] == 1


def _biggest(signer: SoftwareSigner, value: int, shape: str) -> bytes:
    """The largest valid reading of a shape that costs an on-chain parser most per
    byte: one array of ~8,000 one-byte items, or ~1,600 fields each a one-item array
    (a parser that copies the entry per item or per field pays with the square)."""
    for count in range(MAX_ENTRY_SIZE, 0, -16 if shape == "items" else -4):
        extra = (
            {"a": [0] * count} if shape == "items" else {f"{i:x}": [0] for i in range(count // 5)}
        )
        try:
            entry = sign_reading(signer, seq=1, ts=TS, sensor="s", value=value, extra=extra)
        except Oversized:
            continue
        verify_reading(entry)  # valid: any node logs it
        return entry
    raise AssertionError("no reading of that shape fits")


@pytest.mark.parametrize("shape", ["items", "fields"])
@pytest.mark.parametrize("net", [pytest.param("anvil", marks=pytest.mark.anvil)], indirect=True)
def test_the_costliest_readings_to_parse_are_provable(net: Net, tmp_path: Path, shape: str) -> None:
    """At the size limit, in the shapes costliest to parse on-chain: an equivocation
    and a forgery are each proven within a quarter of a block's gas, and the reading
    is valid on-chain. (On anvil only: the gas is the EVM's on any chain, and the
    embedded chain's EVM takes minutes to spend it.)"""
    signer = SoftwareSigner.generate()
    first, second = _biggest(signer, 1, shape), _biggest(signer, 2, shape)
    assert len(first) > MAX_ENTRY_SIZE - 64
    forged = first[:-1] + bytes([first[-1] ^ 1])
    deployment, disputes, origin, store = _anchored_log(net, tmp_path, [forged, second])
    registry = Registry(net.owner, deployment)
    did = did_from_key(signer.public_key)
    registry.register_device(did, MIN_STAKE)
    quarter = int(net.reporter.w3.eth.get_block("latest")["gasLimit"]) // 4
    assert disputes.verify_reading(origin, 2, 1, second, store.inclusion_proof(1, 2))["seq"] == 1
    receipt = disputes.prove_equivocation(first, second)
    assert receipt["gasUsed"] < quarter and registry.device(did)["stake"] == 0
    receipt = disputes.prove_invalid_entry(origin, 2, 0, forged, store.inclusion_proof(0, 2))
    assert receipt["gasUsed"] < quarter and registry.node(origin)["stake"] == 0
