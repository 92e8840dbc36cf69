"""The Reputation contract: a staked attester posts an epoch's table with a bond;
a tampered value is proven in one step and slashed, an honest one cannot be;
contracts read final scores with a proof. Every revert reason. On the embedded
chain and on anvil."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from web3.logs import DISCARD

from tests.chain.conftest import MIN_STAKE, Net
from tests.chain.reputation_lies import tampered
from trustmesh.chain.compile import compile_source
from trustmesh.chain.reputation import ReputationContract, deploy_gate, deploy_reputation
from trustmesh.errors import Reverted
from trustmesh.reputation import (
    Attestation,
    EpochInputs,
    Evidence,
    Kind,
    Params,
    ReputationTable,
    Stake,
    assemble_table,
    compute_epoch,
)
from trustmesh.reputation.check import first_provable
from trustmesh.reputation.publish import published, rebuild

WINDOW = 600
BOND = 10**16
REWARD_BPS = 4000
PARAMS = Params(steps=6)


def _id(n: int) -> bytes:
    return hashlib.sha256(b"subject %d" % n).digest()


def _table(epoch: int) -> ReputationTable:
    """Nine subjects: three staked nodes that witness six devices, which log readings."""
    nodes, devices = [_id(i) for i in range(3)], [_id(i) for i in range(3, 9)]
    evidence = [Evidence(d, Kind.READINGS_LOGGED, _id(100 + i), 50) for i, d in enumerate(devices)]
    evidence.append(Evidence(devices[0], Kind.SEQ_GAP, _id(99), 3))
    attestations = [
        Attestation(n, d, _id(200 + k))
        for k, (n, d) in enumerate((n, d) for n in nodes for d in devices)
    ]
    attestations += [
        Attestation(d, n, _id(400 + k))
        for k, (n, d) in enumerate((n, d) for n in nodes for d in devices)
    ]
    attestations += [Attestation(devices[i], devices[i - 1], _id(300 + i)) for i in range(6)]
    attestations += [Attestation(devices[i - 1], devices[i], _id(350 + i)) for i in range(6)]
    stakes = [Stake(n, 10**18 * (i + 1), 30) for i, n in enumerate(nodes)]
    stakes += [Stake(d, 10**17, 5) for d in devices]
    return compute_epoch(EpochInputs(epoch, evidence, attestations, stakes), PARAMS)


@pytest.fixture
def reputation(net: Net) -> tuple[ReputationContract, ReputationContract]:
    """The contract, through the attester (staked) and through a prover."""
    address = deploy_reputation(
        net.deployer, PARAMS, min_stake=MIN_STAKE, bond=BOND, window=WINDOW, reward_bps=REWARD_BPS
    )
    attester = ReputationContract(net.owner, address)
    attester.join(MIN_STAKE)
    return attester, ReputationContract(net.reporter, address)


def _device_with_attesters(table: ReputationTable) -> bytes:
    return next(s for s, row in table.rows.items() if len(row.attesters) >= 2)


def test_a_final_table_is_read_with_proofs_and_the_bond_comes_back(
    net: Net, reputation: tuple[ReputationContract, ReputationContract]
) -> None:
    attester, reader = reputation
    table = _table(1)
    attester.post(table)
    device = _device_with_attesters(table)
    with pytest.raises(Reverted, match="no final table for the epoch"):
        reader.score_of(table, device)
    assert not reader.is_final(1)
    with pytest.raises(Reverted, match="window still open"):
        reader.finalize(1)
    net.owner.advance_time(WINDOW + 1)
    assert reader.is_final(1)
    for subject, row in table.rows.items():
        assert reader.score_of(table, subject) == row.score
    with pytest.raises(Reverted, match="score not in the table"):
        reader.score_of(table, device, score=table.rows[device].score + 1)
    before = net.owner.balance()
    receipt = reader.finalize(1)
    (event,) = reader.contract.events.Finalized().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["root"] == table.score_root
    assert net.owner.balance() == before + BOND
    with pytest.raises(Reverted, match="already final"):
        reader.finalize(1)
    with pytest.raises(Reverted, match="table already final"):
        reader.prove_wrong_score(table, device)
    attester.leave()  # unbonds for one window: what it posted stays slashable meanwhile
    with pytest.raises(Reverted, match="attester leaving"):
        attester.post(_table(2))
    with pytest.raises(Reverted, match="still unbonding"):
        attester.withdraw()
    net.owner.advance_time(WINDOW + 1)
    before = net.owner.balance()
    receipt = attester.withdraw()
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert attester.stake() == 0 and net.owner.balance() == before + MIN_STAKE - gas
    with pytest.raises(Reverted, match="nothing staked"):
        attester.withdraw()


@pytest.mark.parametrize("step", [0, 3, PARAMS.steps])
def test_a_wrong_trust_value_is_proven_and_slashed(
    net: Net, reputation: tuple[ReputationContract, ReputationContract], step: int
) -> None:
    attester, prover = reputation
    honest = _table(2)
    device = _device_with_attesters(honest)
    trajectory = list(honest.rows[device].trajectory)
    trajectory[step] += 1
    lie = tampered(honest, device, trajectory=tuple(trajectory))
    attester.post(lie)
    before = net.reporter.balance()
    receipt = prover.prove_wrong_trust(lie, device, step)
    (event,) = prover.contract.events.WrongValueProven().process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["what"], event["args"]["subject"]) == ("trust", device)
    paid = BOND + MIN_STAKE * REWARD_BPS // 10_000
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert event["args"]["paid"] == paid and net.reporter.balance() == before + paid - gas
    assert attester.stake() == 0 and attester.root(2) == bytes(32)
    with pytest.raises(Reverted, match="attester not staked"):
        attester.post(honest)  # slashed: it must stake again
    attester.join(MIN_STAKE)
    attester.post(honest)  # the epoch is open for a correct table
    with pytest.raises(Reverted, match="the value is right"):
        prover.prove_wrong_trust(honest, device, step)
    assert attester.root(2) == honest.score_root


@pytest.mark.parametrize("what", ["trust at step 0", "trust at the last step", "score"])
def test_a_checker_finds_the_lie_in_a_published_table_and_proves_it(
    reputation: tuple[ReputationContract, ReputationContract], what: str
) -> None:
    """What `trustmesh reputation recompute --prove` does: rebuild the poster's
    published table, check it is the one posted, find the first provable value, prove it."""
    attester, prover = reputation
    honest = _table(5)
    device = _device_with_attesters(honest)
    row = honest.rows[device]
    if what == "score":
        lie = tampered(honest, device, score=row.score + 1)
    else:
        step = 0 if what == "trust at step 0" else len(row.trajectory) - 1
        trajectory = list(row.trajectory)
        trajectory[step] -= 1
        lie = tampered(honest, device, trajectory=tuple(trajectory))
    assert first_provable(honest) is None
    attester.post(lie)
    document = json.loads(json.dumps(published(lie)))  # as a checker fetches it
    posted = rebuild(document, PARAMS)
    assert posted.score_root == attester.root(5)
    wrong = first_provable(posted)
    assert wrong is not None and wrong.subject == device and wrong.kind == what.split(maxsplit=1)[0]
    receipt = prover.prove(posted, wrong)
    (event,) = prover.contract.events.WrongValueProven().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["what"] == wrong.kind and attester.root(5) == bytes(32)


def test_a_wrong_score_is_proven_and_an_honest_one_stands(
    reputation: tuple[ReputationContract, ReputationContract],
) -> None:
    attester, prover = reputation
    honest = _table(3)
    device = _device_with_attesters(honest)
    attester.post(honest)
    with pytest.raises(Reverted, match="the score is right"):
        prover.prove_wrong_score(honest, device)
    # a second epoch whose table inflates one score
    lie = tampered(_table(4), device, score=_table(4).rows[device].score * 2)
    attester.post(lie)
    receipt = prover.prove_wrong_score(lie, device)
    (event,) = prover.contract.events.WrongValueProven().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["what"] == "score"
    assert attester.root(4) == bytes(32) and attester.root(3) == honest.score_root


def test_a_left_out_subject_is_proven_by_the_count_or_the_chain(
    reputation: tuple[ReputationContract, ReputationContract],
) -> None:
    attester, prover = reputation
    honest = _table(5)
    ordered = [honest.rows[s] for s in sorted(honest.rows)]
    attester.post(honest)
    with pytest.raises(Reverted, match="the count is right"):
        prover.prove_wrong_count(honest, ordered[-1].subject)
    with pytest.raises(Reverted, match="the chain holds"):
        prover.prove_broken_chain(honest, ordered[2].subject, ordered[3].subject)
    # dropped, positions kept: the last leaf sits past the count
    dropped = [row for i, row in enumerate(ordered) if i != 4]
    lie = assemble_table(6, PARAMS, [dataclasses.replace(r, position=r.position) for r in dropped])
    attester.join(MIN_STAKE)
    attester.post(lie)
    receipt = prover.prove_wrong_count(lie, dropped[-1].subject)
    (event,) = prover.contract.events.WrongValueProven().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["what"] == "count"
    # dropped and renumbered: the leaf before the gap names a next that is not there
    renumbered = [dataclasses.replace(r, position=i) for i, r in enumerate(dropped)]
    lie = assemble_table(7, PARAMS, renumbered)
    attester.join(MIN_STAKE)
    attester.post(lie)
    receipt = prover.prove_broken_chain(lie, renumbered[3].subject, renumbered[4].subject)
    (event,) = prover.contract.events.WrongValueProven().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["what"] == "chain"


def test_bad_posts_and_proofs_change_nothing(
    net: Net, reputation: tuple[ReputationContract, ReputationContract]
) -> None:
    attester, prover = reputation
    table = _table(8)
    with pytest.raises(Reverted, match="attester not staked"):
        prover.post(table)  # the prover never staked
    with pytest.raises(Reverted, match="the bond must be sent with the post"):
        attester.post(table, bond=BOND - 1)
    with pytest.raises(Reverted, match="epoch not posted"):
        prover.prove_wrong_score(table, next(iter(table.rows)))
    attester.post(table)
    with pytest.raises(Reverted, match="epoch already posted"):
        attester.post(table)
    with pytest.raises(Reverted, match="not leaving"):
        attester.withdraw()
    device = _device_with_attesters(table)
    # a proof built from another table (one evidence digest changed) misses the posted root
    forged = tampered(table, device, evidence_digest=bytes(32))
    with pytest.raises(Reverted, match="meta not in the table"):
        prover.prove_wrong_score(forged, device)
    net.owner.advance_time(WINDOW + 1)
    with pytest.raises(Reverted, match="table already final|window closed"):
        prover.prove_wrong_trust(table, device, 1)
    assert attester.root(8) == table.score_root and attester.stake() == MIN_STAKE


def test_a_contract_admits_on_a_proven_score_and_only_then(
    net: Net, reputation: tuple[ReputationContract, ReputationContract]
) -> None:
    attester, _ = reputation
    table = _table(10)
    ranked = sorted(table.rows, key=lambda s: table.rows[s].score)
    low, high = ranked[0], ranked[-1]
    threshold = (table.rows[low].score + table.rows[high].score) // 2
    gate = deploy_gate(net.owner, attester.address, threshold)

    def admit(subject: bytes, score: int | None = None) -> object:
        value = table.rows[subject].score if score is None else score
        fn = gate.functions.admit(subject, 10, value, table.score_proof(subject))
        return net.owner.transact(fn)

    attester.post(table)
    with pytest.raises(Reverted, match="no final table for the epoch"):
        admit(high)  # the window is still open
    net.owner.advance_time(WINDOW + 1)
    with pytest.raises(Reverted, match="score not in the table"):
        admit(low, score=10**9 - 1)  # claiming a better score than its own
    with pytest.raises(Reverted, match="gate: score below the threshold"):
        admit(low)
    admit(high)
    assert net.owner.call(gate.functions.admitted(high)) == 10
    high_row, low_row = table.rows[high], table.rows[low]
    check = gate.functions.qualifies
    assert net.owner.call(check(high, 10, high_row.score, table.score_proof(high)))
    assert not net.owner.call(check(low, 10, low_row.score, table.score_proof(low)))
    assert net.owner.call(gate.functions.admitted(low)) == 0


REFUSING_ATTESTER = """
# pragma version ~=0.4.3
# An attester that is a contract: it stakes and posts, and refuses every payment
# until it is told to accept them.
interface Reputation:
    def join(): payable
    def post(epoch: uint256, root: bytes32, state_root: bytes32, subjects: uint256): payable
    def collect(): nonpayable

target: address
accepting: bool

@deploy
def __init__(target: address):
    self.target = target

@external
@payable
def join():
    extcall Reputation(self.target).join(value=msg.value)

@external
@payable
def post(epoch: uint256, root: bytes32, state_root: bytes32, subjects: uint256):
    extcall Reputation(self.target).post(epoch, root, state_root, subjects, value=msg.value)

@external
def accept():
    self.accepting = True

@external
def collect():
    extcall Reputation(self.target).collect()

@external
@payable
def __default__():
    assert self.accepting, "refused"
"""


def test_a_poster_refusing_its_bond_cannot_hold_its_ring_slot(
    net: Net, reputation: tuple[ReputationContract, ReputationContract]
) -> None:
    """Its honest table is final once the window has passed, like any other; the
    bond it refuses is owed to it; the ring slot takes the epoch 64 later. (With
    the bond pushed or nothing, finalize reverted for good, and no later epoch of
    the slot could ever be posted: 64 bonds would stop every table.)"""
    attester, reader = reputation
    artifact = compile_source("Refusing", REFUSING_ATTESTER)
    address = reader.contract.address
    refusing = net.deployer.contract(artifact, net.deployer.deploy_artifact(artifact, address))
    net.deployer.transact(refusing.functions.join(), MIN_STAKE)
    table = _table(1)
    post = refusing.functions.post(1, table.score_root, table.state_root, len(table.rows))
    net.deployer.transact(post, BOND)
    net.owner.advance_time(WINDOW + 1)
    reader.finalize(1)
    assert reader.is_final(1)
    owed = reader.contract.functions.owed
    assert owed(refusing.address).call() == BOND and owed(net.reporter.address).call() == 0
    later = _table(1 + 64)  # the same ring slot
    attester.post(later)
    assert reader.contract.functions.roots(later.epoch).call() == later.score_root
    with pytest.raises(Reverted, match="nothing owed"):
        net.reporter.transact(reader.contract.functions.collect())
    net.deployer.transact(refusing.functions.accept())
    net.deployer.transact(refusing.functions.collect())
    assert net.deployer.balance(refusing.address) == BOND and owed(refusing.address).call() == 0
    events = reader.contract.events
    for event in (events.Owed(), events.Collected()):  # each move of the bond is logged
        (logged,) = event.get_logs(from_block=0)
        assert logged["args"] == {"poster": refusing.address, "amount": BOND}
