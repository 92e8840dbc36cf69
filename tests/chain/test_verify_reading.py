"""verify_reading: a contract consumes a device reading trustlessly (inclusion
in an anchored tree, registry key, P256VERIFY), shown by a parametric-insurance
contract that pays when a signed temperature crosses its threshold."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from vyper.compiler import compile_code

from tests.chain.conftest import MIN_STAKE, REWARD_BPS, UNBONDING, Net
from trustmesh.chain.anchoring import anchor_log
from trustmesh.chain.compile import Artifact
from trustmesh.chain.suite import Disputes, LogAnchor, Registry, deploy_suite, device_id
from trustmesh.errors import Reverted
from trustmesh.identity import Alg, SoftwareSigner, did_from_key
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import LogStore, open_store
from trustmesh.reading import sign_reading

TS = 1_700_000_000_000
SOURCE = Path(__file__).parent / "contracts" / "ParametricInsurance.vy"


@pytest.fixture
def world(
    net: Net, tmp_path: Path
) -> tuple[Net, Registry, Disputes, LogAnchor, str, LogStore, SoftwareSigner]:
    deployment = deploy_suite(
        net.deployer, min_stake=MIN_STAKE, unbonding_delay=UNBONDING, reward_bps=REWARD_BPS
    )
    registry = Registry(net.owner, deployment)
    origin = f"insurance.example/{random.getrandbits(32)}"
    registry.register_log(
        LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1", MIN_STAKE
    )
    device = SoftwareSigner.generate()
    registry.register_device(did_from_key(device.public_key), MIN_STAKE)
    store = open_store(tmp_path / "log.db")
    return (
        net,
        registry,
        Disputes(net.reporter, deployment),
        LogAnchor(net.owner, deployment),
        origin,
        store,
        device,
    )


def test_verify_reading_returns_the_signed_fields(world: tuple) -> None:  # type: ignore[type-arg]
    _, registry, disputes, anchor, origin, store, device = world
    entries = [
        sign_reading(device, seq=i + 1, ts=TS + i, sensor="temperature", value=200 + i)
        for i in range(5)
    ]
    entries.append(sign_reading(device, seq=6, ts=TS, sensor="pressure", value=-17))
    store.append(entries)
    anchor_log(anchor, store, origin)
    for index, entry in enumerate(entries):
        result = disputes.verify_reading(origin, 6, index, entry, store.inclusion_proof(index, 6))
        assert result["device_id"] == device_id(did_from_key(device.public_key))
        assert result["seq"] == index + 1
    assert result["sensor"] == "pressure" and result["value"] == -17
    proof = store.inclusion_proof(2, 6)
    with pytest.raises(Reverted, match="disputes: tree not anchored"):
        disputes.verify_reading(origin, 5, 2, entries[2], store.inclusion_proof(2, 5))
    with pytest.raises(Reverted, match="disputes: not included"):
        disputes.verify_reading(origin, 6, 3, entries[2], proof)
    with pytest.raises(Reverted, match="disputes: not included"):
        disputes.verify_reading(origin, 6, 2, entries[2], proof[:-1])
    text_value = sign_reading(device, seq=7, ts=TS, sensor="state", value="on")
    float_value = sign_reading(device, seq=8, ts=TS, sensor="t", value=21.5)
    ed = SoftwareSigner.generate(Alg.EDDSA)
    registry.register_device(did_from_key(ed.public_key), MIN_STAKE)
    ed_entry = sign_reading(ed, seq=1, ts=TS, sensor="t", value=1)
    store.append([text_value, float_value, ed_entry])
    anchor_log(anchor, store, origin)
    with pytest.raises(Reverted, match="disputes: value is not an integer"):
        disputes.verify_reading(origin, 9, 6, text_value, store.inclusion_proof(6, 9))
    with pytest.raises(Reverted, match="disputes: value is not an integer"):
        disputes.verify_reading(origin, 9, 7, float_value, store.inclusion_proof(7, 9))
    with pytest.raises(Reverted, match="disputes: not an ES256 reading"):
        disputes.verify_reading(origin, 9, 8, ed_entry, store.inclusion_proof(8, 9))
    registry.revoke(did_from_key(device.public_key))
    with pytest.raises(Reverted, match="disputes: device not active"):
        disputes.verify_reading(origin, 6, 2, entries[2], proof)


def test_parametric_insurance_pays_on_a_signed_hot_reading(world: tuple) -> None:  # type: ignore[type-arg]
    net, registry, disputes, anchor, origin, store, device = world
    output = compile_code(SOURCE.read_text(), output_formats=["abi", "bytecode"])
    artifact = Artifact(
        "ParametricInsurance", output["abi"], bytes.fromhex(output["bytecode"][2:]), ""
    )
    beneficiary = net.reporter.address
    insured = device_id(did_from_key(device.public_key))
    payout = 10**15
    address = net.deployer.deploy_artifact(
        artifact, disputes.address, insured, 350, beneficiary, value=payout
    )
    insurance = net.deployer.contract(artifact, address)
    cool = sign_reading(device, seq=1, ts=TS, sensor="temperature", value=300)
    hot = sign_reading(device, seq=2, ts=TS + 1, sensor="temperature", value=351)
    other = SoftwareSigner.generate()
    registry.register_device(did_from_key(other.public_key), MIN_STAKE)
    stranger = sign_reading(other, seq=1, ts=TS, sensor="temperature", value=999)
    humid = sign_reading(device, seq=3, ts=TS, sensor="humidity", value=999)
    store.append([cool, hot, stranger, humid])
    anchor_log(anchor, store, origin)

    def claim(index: int, entry: bytes) -> None:
        fn = insurance.functions.claim(origin, 4, index, entry, store.inclusion_proof(index, 4))
        net.owner.transact(fn)

    with pytest.raises(Reverted, match="insurance: below the threshold"):
        claim(0, cool)
    with pytest.raises(Reverted, match="insurance: not the insured device"):
        claim(2, stranger)
    with pytest.raises(Reverted, match="insurance: not a temperature"):
        claim(3, humid)
    forged = bytearray(hot)
    forged[forged.index(b"evalue") + 7] += 1  # 351 → 352 in the payload: the signature breaks
    with pytest.raises(Reverted, match="disputes: not included|disputes: signature invalid"):
        claim(1, bytes(forged))
    before = net.reporter.balance()
    claim(1, hot)
    assert net.reporter.balance() == before + payout
    assert net.owner.call(insurance.functions.paid())
    with pytest.raises(Reverted, match="insurance: already paid"):
        claim(1, hot)
