"""Aggregates as a hypothesis state machine on the embedded chain: over a log of
signed readings that grows and is anchored, a claimer posts claims of several
queries, honest ones and ones with each kind of lie (a wrong result, a node that
does not add up, a wrong model output, a forged leaf, a foreign device, an
omitted reading, leaves out of order), and claims of a snapshot that is no
longer the latest, some through a claimer contract that refuses its bonds until
it collects them; a prover proves each lie as a checker finds it and brings
every kind of proof against the honest claims; bonds are released; time passes.

Each call succeeds exactly when the contract's rules say it may: a claim is
posted with the bond over the latest anchors, once (again only once refuted); a
lie is refuted once, within its window, paying the prover half the bond and
burning the rest; no proof refutes an honest claim; nothing is final, released
or readable before its window has closed; a refused bond is owed, and
collected once. After every step each claim's state, claimer, deadline and
readable result are the model's, and the contract holds exactly the bonds of the
pending claims, the bonds owed and what was burned."""

from __future__ import annotations

import dataclasses
import functools
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

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
from tests.reliability.budget import invariant_settings, planted_settings
from trustmesh.aggregate import Model, Reduction
from trustmesh.aggregate.challenge import Challenge, find_lie, omitted
from trustmesh.aggregate.claim import Claim
from trustmesh.aggregate.tree import Leaf
from trustmesh.chain.aggregates import AggregatesContract, deploy_aggregates
from trustmesh.chain.anchoring import anchor_log
from trustmesh.chain.client import ChainClient
from trustmesh.chain.compile import compile_source
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import LogAnchor, Registry, deploy_suite
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log.note_p256 import LogSigner
from trustmesh.log.store import open_store
from trustmesh.reading import parse_reading, sign_reading
from trustmesh.reputation.witness import subject_id

BOND = 10**15
WINDOW = 3600
SLACK = 30  # seconds of the next block's time that a prediction cannot know
GAS = 10_000_000  # each transaction's limit, never estimated: a refused one is mined, and reverts
QUERIES = [
    {"reduction": Reduction.SUM, "model": Model.threshold(30)},
    {"reduction": Reduction.COUNT, "model": Model.identity()},
    {"reduction": Reduction.MEAN, "model": Model.identity()},
    {"reduction": Reduction.MIN, "model": Model.linear(3, -7, 1)},
    {"reduction": Reduction.MAX, "model": Model.threshold(40)},
]
LIES = ["none", "none", *KINDS, "stale"]  # "stale": an honest claim of an older snapshot
READINGS = ["in the window", "in the window", "late", "other sensor", "too long", "not an integer"]
TOO_LONG = 512  # bytes of an entry no aggregate holds


@dataclass
class Claimed:
    data: Claim  # as published
    lie: str
    honest: Claim  # of the same query and snapshot
    result: int
    count: int
    deadline: int
    claimer: str
    state: str = "pending"  # refuted, final


def _world(chain: EmbeddedChain, directory: Path) -> World:
    """The suite, a log node and four registered devices (three in the queries),
    each device's readings logged and anchored (as tests/chain/test_aggregates does)."""
    deployer = ChainClient(chain.w3, chain.dev_accounts[0])
    owner, reporter = (
        ChainClient(chain.w3, account, advance_time=chain.advance_time, gas_limit=GAS)
        for account in chain.dev_accounts[1:3]
    )
    deployment = deploy_suite(
        deployer, min_stake=MIN_STAKE, unbonding_delay=UNBONDING, reward_bps=REWARD_BPS
    )
    registry = Registry(owner, deployment)
    origin = f"farms.example/{random.getrandbits(32)}"
    signer = LogSigner.from_seed(origin, os.urandom(32))
    registry.register_log(signer, "http://127.0.0.1", MIN_STAKE)
    devices = [SoftwareSigner.generate() for _ in range(3)]
    outsider = SoftwareSigner.generate()
    for device in [*devices, outsider]:
        registry.register_device(did_from_key(device.public_key), MIN_STAKE)
    store = open_store(directory / "log.db")
    store.append([
        sign_reading(device, seq=seq, ts=TS + seq, sensor="temperature", value=25 + 3 * seq + k)
        for seq in range(1, 5)
        for k, device in enumerate([*devices, outsider])
    ])  # fmt: skip
    anchor = LogAnchor(owner, deployment)
    anchor_log(anchor, store, origin)
    net = Net("embedded", chain.w3, deployer, owner, reporter, deployment)
    address = deployment.contracts["Aggregates"]  # (each example deploys its own)
    claimer, prover = AggregatesContract(owner, address), AggregatesContract(reporter, address)
    return World(
        net, deployment, registry, anchor, store, origin, devices, outsider, claimer, prover
    )


def _reading(device: SoftwareSigner, seq: int, kind: str) -> bytes:
    """A reading of one of the kinds the log grows by: only the first matches the queries."""
    ts = TS + (500 if kind == "late" else seq % 90)  # (the queries' window: 100 ms)
    sensor = "humidity" if kind == "other sensor" else "temperature"
    value: int | float = seq % 61 if kind != "not an integer" else seq % 61 + 0.5
    extra = {"note": "x" * TOO_LONG} if kind == "too long" else None
    return sign_reading(device, seq=seq, ts=ts, sensor=sensor, value=value, extra=extra)


def _left_out(world: World, claim: Claim) -> list[int]:
    """Where the readings of the query's devices are in the claim's snapshot that the
    claim leaves out (an honest claim: those that do not match its query)."""
    kept = {leaf.index for leaf in claim.tree.leaves}
    left = []
    for index in range(claim.sizes[0]):
        reading = parse_reading(world.store.entry(index))
        if index not in kept and reading.did in claim.query.devices:
            left.append(index)
    return left


def _omission(world: World, claim: Claim, index: int) -> tuple[Challenge, str]:
    """The proof that the reading at ``index`` is a matching one the claim omits, and
    why it must fail (it is not one)."""
    reading = parse_reading(world.store.entry(index))
    missing = Leaf(claim.query.log_ids[0], index, world.store.leaf_hash(index),
                   subject_id(reading.did), reading.seq, reading.ts, 0, 0)  # fmt: skip
    if len(reading.entry) > TOO_LONG:
        why = "aggregates: the entry is too long to aggregate"
    elif type(reading.value) is not int:
        why = "disputes: value is not an integer"
    else:
        why = "aggregates: the reading does not match the query"
    return omitted(claim, missing, world.fetch), why


@pytest.fixture(scope="module")
def world(chain: EmbeddedChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = _world(chain, tmp_path_factory.mktemp("aggregates"))
    yield made
    made.store.close()


def _machine(world: World, *, planted: bool = False) -> type[RuleBasedStateMachine]:
    """The machine; ``planted``: it believes a pending claim's bond is not held."""
    deployer, claimer, prover = world.net.deployer, world.net.owner, world.net.reporter
    contracts = world.deployment.contracts
    refusing_claimer = compile_source("RefusingClaimer", REFUSING_CLAIMER)

    class Aggregates(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            address = deploy_aggregates(
                deployer, contracts["LogAnchor"], contracts["Disputes"], bond=BOND, window=WINDOW
            )["Aggregates"]
            self.world = dataclasses.replace(
                world,
                claimer=AggregatesContract(claimer, address),
                prover=AggregatesContract(prover, address),
            )
            self.address = address
            self.refusing = deployer.contract(
                refusing_claimer, deployer.deploy_artifact(refusing_claimer)
            )  # a claimer contract, refusing its bonds until it collects them
            self.accepting = False
            self.claims: dict[bytes, Claimed] = {}  # by id, the last posted under each
            self.older: list[Claim] = []  # honest claims of snapshots since grown past
            self.burned = 0
            self.owed = 0  # to the claimer contract
            self.asked: set[tuple[bytes, int, str, bool]] = set()  # results read, by their cause

        def _now(self) -> int:
            return int(world.net.w3.eth.get_block("latest")["timestamp"])

        def _close_to(self, claimed: Claimed) -> bool:
            """Too close to the window's end to say which side the next block falls."""
            now = self._now()
            return claimed.state == "pending" and now < claimed.deadline <= now + SLACK

        def _forward(self, function: ContractFunction, value: int = 0) -> TxReceipt:
            """``function`` sent by the claimer contract."""
            data = bytes.fromhex(function._encode_transaction_data()[2:])
            return claimer.transact(self.refusing.functions.forward(self.address, data), value)

        @rule(
            query=st.integers(0, len(QUERIES) - 1),
            lie=st.sampled_from(LIES),
            by_contract=st.booleans(),
        )
        def claim(self, query: int, lie: str, by_contract: bool) -> None:
            """A claim of one of the queries over the latest snapshot, honest or lying,
            or an honest claim of an older snapshot, by the claimer or its contract."""
            honest = self.world.honest(self.world.query(**QUERIES[query]))
            assert find_lie(honest, honest, honest.result, honest.count, world.fetch,
                            world.read) is None  # fmt: skip
            data, result, count = honest, honest.result, honest.count
            if lie == "stale" and self.older:
                data = honest = self.older[query % len(self.older)]
                result, count = data.result, data.count
            elif lie in KINDS:
                outsider = outsider_leaf(world, honest.query.model)
                data, result, count = lies(honest, outsider)[lie]
                data = dataclasses.replace(data, result=result)
            claim_id = data.id
            refusal = None
            if data.sizes != (world.store.size,):
                refusal = "aggregates: sizes are not the latest anchors"
            elif claim_id in self.claims and self.claims[claim_id].state != "refuted":
                refusal = "aggregates: already claimed"
            contract = self.world.claimer.contract
            post = contract.functions.post(*data.to_abi(), result, count, "u")
            send = functools.partial(self._forward if by_contract else claimer.transact, post, BOND)
            if refusal:
                with pytest.raises(Reverted, match=refusal):
                    send()
                return
            before = claimer.balance(self.address)
            receipt = send()
            (posted,) = contract.events.Posted().process_receipt(receipt, errors=DISCARD)
            poster = self.refusing.address if by_contract else claimer.address
            assert (posted["args"]["claim_id"], posted["args"]["claimer"]) == (claim_id, poster)
            assert claimer.balance(self.address) == before + BOND
            mined = world.net.w3.eth.get_block(receipt["blockNumber"])
            kind = "none" if lie == "stale" else lie
            self.claims[claim_id] = Claimed(
                data, kind, honest, result, count, int(mined["timestamp"]) + WINDOW, poster
            )

        @precondition(lambda self: bool(self.claims))
        @rule(pick=st.integers(0, 10**6))
        def challenge(self, pick: int) -> None:
            """The proof of a lie as a checker finds it, or, against an honest claim,
            a proof of one kind or another (each must fail)."""
            claimed = list(self.claims.values())[pick % len(self.claims)]
            if self._close_to(claimed):
                return
            refusal = None
            if claimed.state != "pending":
                refusal = "aggregates: no pending claim"
            elif self._now() >= claimed.deadline:
                refusal = "aggregates: the window has closed"
            data = claimed.data
            if claimed.lie == "none":
                attempts = [
                    (method, args, f"aggregates: {why}")
                    for (method, args), why in zip(
                        all_challenges(world, data), WRONG_CHALLENGES, strict=True
                    )
                ]
                left_out = _left_out(world, data)
                chosen = pick % (len(attempts) + len(left_out))
                if chosen < len(attempts):
                    method, args, why = attempts[chosen]
                else:  # a reading the claim rightly leaves out, called omitted
                    omission, why = _omission(world, data, left_out[chosen - len(attempts)])
                    method, args = omission.method, omission.args
                with pytest.raises(Reverted, match=refusal or why):
                    self.world.prover.challenge(data.to_abi(), method, args)
                return
            found = find_lie(data, claimed.honest, claimed.result, claimed.count, world.fetch,
                             world.read)  # fmt: skip
            assert found is not None and found.kind == KINDS[claimed.lie]
            if refusal:
                with pytest.raises(Reverted, match=refusal):
                    self.world.prover.challenge(data.to_abi(), found.method, found.args)
                return
            before = prover.balance()
            receipt = self.world.prover.challenge(data.to_abi(), found.method, found.args)
            event = self.world.prover.refuted(receipt)
            assert (event["kind"], event["reason"]) == (found.kind, found.reason)
            gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
            assert event["paid"] == BOND // 2 == prover.balance() - before + gas
            claimed.state = "refuted"
            self.burned += BOND - BOND // 2

        @precondition(lambda self: bool(self.claims))
        @rule(pick=st.integers(0, 10**6))
        def release(self, pick: int) -> None:
            """A claim's bond back to its claimer, asked by anyone."""
            claimed = list(self.claims.values())[pick % len(self.claims)]
            if self._close_to(claimed):
                return
            claim_id = claimed.data.id
            if claimed.state != "pending" or self._now() < claimed.deadline:
                with pytest.raises(Reverted, match="aggregates: not releasable"):
                    self.world.prover.release(claim_id)
                return
            before = claimer.balance(claimed.claimer)
            self.world.prover.release(claim_id)
            refused = claimed.claimer == self.refusing.address and not self.accepting
            paid = 0 if refused else BOND
            assert claimer.balance(claimed.claimer) == before + paid  # (it sends nothing)
            self.owed += BOND - paid
            claimed.state = "final"

        @rule()
        def collect(self) -> None:
            """The claimer contract takes the bonds it refused (it accepts them from
            now on); with nothing owed, it is refused."""
            collect = self.world.claimer.contract.functions.collect()
            if self.owed == 0:
                with pytest.raises(Reverted, match="aggregates: nothing owed"):
                    self._forward(collect)
                return
            before = claimer.balance(self.refusing.address)
            claimer.transact(self.refusing.functions.accept())
            self._forward(collect)
            assert claimer.balance(self.refusing.address) == before + self.owed
            self.accepting, self.owed = True, 0

        @rule(count=st.integers(1, 6), kind=st.sampled_from(READINGS))
        def grow(self, count: int, kind: str) -> None:
            """Readings of the queries' devices logged and anchored: the snapshot of
            every claim posted so far is now an older one."""
            first = 1000 + world.store.size  # a seq no reading has (the log outlives examples)
            devices = world.devices
            entries = [_reading(devices[k % len(devices)], first + k, kind) for k in range(count)]
            query = QUERIES[count % len(QUERIES)]
            self.older.append(self.world.honest(self.world.query(**query)))
            world.store.append(entries)
            anchor_log(world.anchor, world.store, world.origin)

        @precondition(lambda self: bool(self.claims))
        @rule(seconds=st.sampled_from([1, WINDOW // 2, WINDOW + SLACK + 1]))
        def wait(self, seconds: int) -> None:
            world.net.owner.advance_time(seconds)

        @invariant()
        def every_claim_and_wei_is_the_models(self) -> None:
            contract, now = self.world.prover, self._now()
            for claim_id, claimed in self.claims.items():
                state = contract.state(claim_id)
                assert (state.state, state.claimer, state.deadline) == (
                    claimed.state, claimed.claimer, claimed.deadline)  # fmt: skip
                readable = claimed.state == "final" or (
                    claimed.state == "pending" and now >= claimed.deadline
                )
                asked = (claim_id, claimed.deadline, claimed.state, readable)
                if self._close_to(claimed) or asked in self.asked:
                    continue  # (its answer follows from the state, the deadline and the clock)
                self.asked.add(asked)
                if readable:
                    assert contract.result_of(claim_id) == (claimed.data.query.hash, claimed.result)
                else:
                    with pytest.raises(Reverted, match="aggregates: not final"):
                        contract.result_of(claim_id)
            pending = sum(1 for claimed in self.claims.values() if claimed.state == "pending")
            bonds = 0 if planted else BOND * pending
            assert contract.owed(self.refusing.address) == self.owed
            assert claimer.balance(self.address) == bonds + self.owed + self.burned, "held"

    return Aggregates


def test_only_a_false_claim_is_refuted_and_every_bond_is_accounted_for(world: World) -> None:
    run_state_machine_as_test(_machine(world), settings=invariant_settings(examples=5, steps=25))


def test_the_machine_fails_on_a_planted_wrong_expectation(world: World) -> None:
    """The same machine, believing that a pending claim's bond is not held: it must
    find a sequence that shows otherwise (so it can find a real slip)."""
    with pytest.raises(AssertionError, match="held"):
        run_state_machine_as_test(
            _machine(world, planted=True),
            settings=planted_settings(examples=20, steps=25),
        )
