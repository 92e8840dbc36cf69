"""The Aggregates contract: an honest claim survives its window (every challenge of
it fails) and pays an insurance contract, on the embedded chain and on anvil;
each kind of lie is found in the claim's data and proven, which refutes the
claim and pays the prover half the bond (on anvil too in the watcher's test)."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from vyper.compiler import compile_code

from tests.aggregate.lies import KINDS, lies
from tests.chain.aggregates_world import (
    REFUSING_CLAIMER,
    TS,
    WRONG_CHALLENGES,
    World,
    all_challenges,
    outsider_leaf,
)
from tests.chain.conftest import MIN_STAKE, REWARD_BPS, UNBONDING, Net
from trustmesh.aggregate import Query
from trustmesh.aggregate.challenge import Challenge, find_lie
from trustmesh.chain.aggregates import AggregatesContract, deploy_aggregates
from trustmesh.chain.anchoring import anchor_log
from trustmesh.chain.compile import Artifact, compile_source
from trustmesh.chain.suite import (
    Deployment,
    Disputes,
    LogAnchor,
    Registry,
    deploy_suite,
)
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import open_store
from trustmesh.reading import sign_reading

BOND = 10**15
WINDOW = 3600
INSURANCE = Path(__file__).parent / "contracts" / "AggregateInsurance.vy"


@pytest.fixture
def world(net: Net, tmp_path: Path) -> World:
    deployment = deploy_suite(
        net.deployer, min_stake=MIN_STAKE, unbonding_delay=UNBONDING, reward_bps=REWARD_BPS
    )
    contracts = deploy_aggregates(
        net.deployer, deployment.contracts["LogAnchor"], deployment.contracts["Disputes"],
        bond=BOND, window=WINDOW,
    )  # fmt: skip
    deployment = Deployment(deployment.chain_id, {**deployment.contracts, **contracts})
    registry = Registry(net.owner, deployment)
    origin = f"farms.example/{random.getrandbits(32)}"
    registry.register_log(
        LogSigner.from_seed(origin, os.urandom(32)), "http://127.0.0.1", MIN_STAKE
    )
    devices = [SoftwareSigner.generate() for _ in range(3)]
    outsider = SoftwareSigner.generate()
    for device in [*devices, outsider]:
        registry.register_device(did_from_key(device.public_key), MIN_STAKE)
    store = open_store(tmp_path / "log.db")
    entries = [
        sign_reading(device, seq=seq, ts=TS + seq, sensor="temperature", value=25 + 3 * seq + k)
        for seq in range(1, 5)
        for k, device in enumerate([*devices, outsider])
    ]
    entries.append(sign_reading(devices[0], seq=9, ts=TS + 500, sensor="temperature", value=99))
    entries.append(sign_reading(devices[1], seq=9, ts=TS + 9, sensor="humidity", value=99))
    store.append(entries)
    anchor = LogAnchor(net.owner, deployment)
    anchor_log(anchor, store, origin)
    address = contracts["Aggregates"]
    return World(net, deployment, registry, anchor, store, origin, devices, outsider,
                 AggregatesContract(net.owner, address),
                 AggregatesContract(net.reporter, address))  # fmt: skip


def test_an_honest_claim_survives_its_window_and_pays_the_insurance(world: World) -> None:
    query = world.query()
    claim = world.honest(query)
    assert claim.count == 12 and claim.result == sum(
        1 for leaf in claim.tree.leaves if leaf.value >= 30
    )
    assert find_lie(claim, claim, claim.result, claim.count, world.fetch, world.read) is None
    claim_id = world.post(claim)
    assert claim_id == claim.id
    assert world.claimer.state(claim_id).state == "pending"
    for (method, args), reason in zip(all_challenges(world, claim), WRONG_CHALLENGES, strict=True):
        with pytest.raises(Reverted, match=f"aggregates: {reason}"):
            world.prover.challenge(claim.to_abi(), method, args)
    with pytest.raises(Reverted, match="aggregates: not final"):
        world.claimer.result_of(claim_id)
    output = compile_code(INSURANCE.read_text(), output_formats=["abi", "bytecode"])
    artifact = Artifact("AggregateInsurance", output["abi"], bytes.fromhex(output["bytecode"][2:]),
                        "")  # fmt: skip
    beneficiary = world.net.reporter.address
    insurance = world.net.deployer.contract(
        artifact,
        world.net.deployer.deploy_artifact(artifact, world.claimer.address, query.hash,
                                           claim.result, beneficiary, value=10**16),
    )  # fmt: skip
    with pytest.raises(Reverted, match="aggregates: not final"):
        world.net.deployer.transact(insurance.functions.payout(claim_id))
    world.net.owner.advance_time(WINDOW + 1)
    assert world.claimer.result_of(claim_id) == (query.hash, claim.result)
    with pytest.raises(Reverted, match="aggregates: the window has closed"):
        world.prover.challenge(claim.to_abi(), *all_challenges(world, claim)[0])
    before = world.net.deployer.balance(beneficiary)
    world.net.deployer.transact(insurance.functions.payout(claim_id))
    assert world.net.deployer.balance(beneficiary) == before + 10**16
    claimer_before = world.net.owner.balance()
    world.prover.release(claim_id)
    assert world.net.owner.balance() == claimer_before + BOND
    assert world.claimer.state(claim_id).state == "final"
    with pytest.raises(Reverted, match="aggregates: not releasable"):
        world.prover.release(claim_id)


# The chain's own behaviour is the same on both chains (the honest claim's test and
# the watcher's, which proves every lie, run on anvil too): these run embedded.
EMBEDDED = pytest.mark.parametrize("net", ["embedded"], indirect=True)


@EMBEDDED
@pytest.mark.parametrize(
    "lie",
    list(KINDS),
)  # fmt: skip
def test_each_lie_is_found_proven_and_slashed(world: World, lie: str) -> None:
    honest = world.honest(world.query())
    data, result, count = lies(honest, outsider_leaf(world, honest.query.model))[lie]
    data = replace(data, result=result)
    claim_id = world.post(data, result, count)
    challenge = find_lie(data, honest, result, count, world.fetch, world.read)
    assert isinstance(challenge, Challenge)
    assert challenge.kind == KINDS[lie], challenge
    prover_before = world.net.reporter.balance()
    receipt = world.prover.challenge(data.to_abi(), challenge.method, challenge.args)
    event = world.prover.refuted(receipt)
    assert (event["kind"], event["reason"]) == (challenge.kind, challenge.reason)
    assert event["paid"] == BOND // 2
    cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert world.net.reporter.balance() == prover_before + BOND // 2 - cost
    assert world.claimer.state(claim_id).state == "refuted"
    with pytest.raises(Reverted, match="aggregates: no pending claim"):
        world.prover.challenge(data.to_abi(), challenge.method, challenge.args)
    world.net.owner.advance_time(WINDOW + 1)
    with pytest.raises(Reverted, match="aggregates: not final"):
        world.claimer.result_of(claim_id)


def _outcomes(function: Any, sender: str, gas_limits: range) -> set[str]:
    """How ``function`` ends at each gas limit: a revert's reason, "out of gas", or
    "succeeded"."""
    seen = set()
    for gas in gas_limits:
        try:
            function.call({"from": sender, "gas": gas})
            seen.add("succeeded")
        except Exception as exc:
            text = str(exc)
            reason = re.search(r"(disputes|aggregates): [a-z ]+", text)
            seen.add(reason.group(0) if reason else "out of gas")
    return seen


@EMBEDDED
def test_no_gas_limit_makes_a_true_claim_or_a_valid_entry_provable(world: World) -> None:
    """A challenger that starves a check (a failed sub-call then looks like a bad
    reading or model) gets a revert, never a refutation, at any gas limit."""
    claim = world.honest(world.query())
    world.post(claim)
    from trustmesh.aggregate import challenge as c

    leaf = claim.tree.leaves[0]
    entry, proof = world.fetch(leaf.origin, leaf.index, claim.sizes[0])
    forged = world.prover.contract.functions.prove_forged_leaf(
        *claim.to_abi(), c.placed(claim.tree, 0), (leaf.index, entry, proof)
    )
    output = world.prover.contract.functions.prove_wrong_output(
        *claim.to_abi(), c.placed(claim.tree, 0), c._model_abi(claim)
    )
    sender = world.net.reporter.address
    seen = _outcomes(forged, sender, range(60_000, 400_000, 7_000))
    assert "succeeded" not in seen and "aggregates: send more gas" in " ".join(seen), seen
    # a model is cheap to evaluate: starved, it leaves too little to do anything
    assert "succeeded" not in _outcomes(output, sender, range(30_000, 80_000, 97))
    # the Disputes contract's proof of an invalid entry, on a valid but costly one
    heavy = sign_reading(world.devices[0], seq=50, ts=TS, sensor="t", value=1,
                         extra={"b": [[0]] * 1000})  # fmt: skip
    world.store.append([heavy])
    anchor_log(world.anchor, world.store, world.origin)
    size = world.store.size
    invalid = Disputes(world.net.reporter, world.deployment).contract.functions.prove_invalid_entry(
        world.origin, size, size - 1, heavy, world.store.inclusion_proof(size - 1, size)
    )
    seen = _outcomes(invalid, sender, range(200_000, 3_000_000, 200_000))
    assert "succeeded" not in seen and "disputes: send more gas" in " ".join(seen), seen
    assert _outcomes(invalid, sender, range(29_000_000, 29_000_001)) == {
        "disputes: the entry is valid"
    }


@EMBEDDED
def test_a_malformed_or_unanchored_claim_is_refused_by_name(world: World) -> None:
    claim = world.honest(world.query())
    query, sizes, root = claim.to_abi()
    contract, bond = world.claimer.contract, BOND
    owner = world.net.owner

    def post(q: Any, s: Any, value: int = bond, count: int = claim.count) -> None:
        owner.transact(contract.functions.post(q, s, root, claim.result, count, "u"), value)

    unanchored = Query(**{**vars(world.query()), "logs": frozenset(["nowhere.example"])})
    backwards = list(query)
    backwards[2] = [query[2][0], query[2][0]]  # one log twice
    cases: list[tuple[Callable[[], None], str]] = [
        (lambda: post(query, sizes, value=bond - 1), "aggregates: send the bond"),
        (lambda: post(query, [*sizes, 1]), "aggregates: one size per log"),
        (lambda: post(query, [sizes[0] - 1]), "aggregates: sizes are not the latest anchors"),
        (lambda: post(unanchored.to_abi(), [1]), "aggregates: a log has no anchor"),
        (lambda: post(tuple(backwards), [*sizes, *sizes]), "aggregates: logs not ascending"),
        (lambda: post((*query[:4], 5, 5, *query[6:]), sizes), "aggregates: empty window"),
        (lambda: post((*query[:7], 9), sizes), "aggregates: unknown reduction"),
        (lambda: post(query, sizes, count=0), "aggregates: count out of range"),
        (lambda: post((query[0], 0, *query[2:]), sizes), "aggregates: no devices"),
    ]
    for attempt, reason in cases:
        with pytest.raises(Reverted, match=reason):
            attempt()
    world.post(claim)
    with pytest.raises(Reverted, match="aggregates: already claimed"):
        world.post(claim)
    with pytest.raises(Reverted, match="aggregates: not releasable"):
        world.prover.release(claim.id)


@EMBEDDED
def test_a_copied_root_with_a_wrong_result_pays_the_honest_claimer(world: World) -> None:
    """A claim's id is its query, snapshot and root, not its result: a griefer can
    post an honest claim's root with a wrong result first, and the honest claim is
    then refused as already claimed. The copy is a lie like any other: the honest
    claimer proves it, takes half the griefer's bond, posts its own claim, and that
    claim is final after its window, the griefer's bond gone."""
    claim = world.honest(world.query())
    griefer, victim = world.prover, world.claimer
    wrong = claim.result + 1
    copy_id, _ = griefer.post(claim.to_abi(), wrong, claim.count, "https://griefer.example")
    assert copy_id == claim.id
    with pytest.raises(Reverted, match="aggregates: already claimed"):
        world.post(claim)
    before = world.net.owner.balance()
    proof = find_lie(claim, claim, wrong, claim.count, world.fetch, world.read)
    assert isinstance(proof, Challenge) and proof.kind == "wrong result", proof
    refuting = victim.challenge(claim.to_abi(), proof.method, proof.args)
    assert victim.refuted(refuting)["paid"] == BOND // 2
    assert victim.state(claim.id).state == "refuted"
    claim_id, posting = victim.post(claim.to_abi(), claim.result, claim.count, "u")
    assert claim_id == claim.id and victim.state(claim_id).claimer == world.net.owner.address
    world.net.owner.advance_time(WINDOW + 1)
    releasing = victim.release(claim_id)
    assert victim.result_of(claim_id) == (claim.query.hash, claim.result)
    assert victim.state(claim_id).state == "final"
    cost = sum(r["gasUsed"] * r["effectiveGasPrice"] for r in (refuting, posting, releasing))
    assert world.net.owner.balance() == before + BOND // 2 - cost
    assert world.net.owner.balance(victim.address) == BOND - BOND // 2  # the burned half


@EMBEDDED
def test_a_claimer_refusing_its_bond_cannot_keep_its_claim_pending(world: World) -> None:
    """Its claim is final once released, like any other; the bond it refuses is
    owed to it, and it collects it once it accepts payments. (With the bond pushed,
    release reverted for good, and the claim stayed pending with its bond held.)"""
    artifact = compile_source("RefusingClaimer", REFUSING_CLAIMER)
    deployer = world.net.deployer
    refusing = deployer.contract(artifact, deployer.deploy_artifact(artifact))
    claim = world.honest(world.query())
    contract = world.claimer.contract
    post = contract.functions.post(*claim.to_abi(), claim.result, claim.count, "u")
    calldata = bytes.fromhex(post._encode_transaction_data()[2:])
    deployer.transact(refusing.functions.forward(world.claimer.address, calldata), BOND)
    assert world.claimer.state(claim.id).claimer == refusing.address
    world.net.owner.advance_time(WINDOW + 1)
    world.prover.release(claim.id)
    assert world.claimer.state(claim.id).state == "final"
    assert world.claimer.result_of(claim.id) == (claim.query.hash, claim.result)
    assert world.claimer.owed(refusing.address) == BOND
    assert deployer.balance(world.claimer.address) == BOND
    with pytest.raises(Reverted, match="aggregates: not releasable"):
        world.prover.release(claim.id)
    with pytest.raises(Reverted, match="aggregates: nothing owed"):
        world.prover.collect()
    collect = bytes.fromhex(contract.functions.collect()._encode_transaction_data()[2:])
    deployer.transact(refusing.functions.accept())
    deployer.transact(refusing.functions.forward(world.claimer.address, collect))
    assert deployer.balance(refusing.address) == BOND
    assert world.claimer.owed(refusing.address) == 0
    assert deployer.balance(world.claimer.address) == 0
    events = contract.events
    for event in (events.Owed(), events.Collected()):  # each move of the bond is logged
        (logged,) = event.get_logs(from_block=0)
        assert logged["args"] == {"claimer": refusing.address, "amount": BOND}
