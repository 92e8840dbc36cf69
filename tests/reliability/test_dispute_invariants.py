"""Disputes, with the Registry and the LogAnchor it slashes through, as a
hypothesis state machine on the embedded chain. Nodes and devices register with
stake; nodes log devices' readings and anchor them honestly. Some lie: a node
signs a checkpoint it does not anchor within the maximum merge delay, logs a
reading no device signed, or signs two trees that cannot both be true; a device
signs two readings with one seq. A reporter proves each lie, and proves it
again; anyone tries proofs of honest data or of a stranger's signatures; parties
retire and withdraw; time passes.

Every call succeeds exactly when the contracts' rules allow it: a lie is slashed
once, in full, its reporter paid its share, and no one the machine kept honest is
ever slashed. After every step each party's stake and status on-chain are the
model's, the Disputes contract remembers the proofs the model does, and the
Registry holds exactly the live stakes and what slashes kept: no wei created,
none lost. A last test plants a wrong payout and checks that the machine fails."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import cbor2
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from tests.reliability.budget import invariant_settings, planted_settings
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import (
    STATUS,
    Deployment,
    Disputes,
    LogAnchor,
    Registry,
    SignedTree,
    device_id,
    origin_id,
)
from trustmesh.errors import Reverted
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.log import merkle
from trustmesh.log.checkpoint import Checkpoint, sign_checkpoint
from trustmesh.log.note_p256 import LogSigner, p256_signature
from trustmesh.reading import sign_reading

MIN_STAKE = 10**15
UNBONDING = 3600
MERGE_DELAY = 600
REWARD_BPS = 4000
BPS = 10_000
GAS = 25_000_000  # a fixed limit: an estimate runs each proof some twenty times in py-evm
SLACK = 30  # seconds of the next block's time that a prediction cannot know
TS = 1_700_000_000_000


@dataclass(kw_only=True)
class Party:
    owner: int  # which of the two owners
    deposit: int  # the stake it registered with
    stake: int
    honest: bool = True  # until a rule makes it lie
    status: str = "active"
    unbond_at: int = 0


@dataclass(kw_only=True)
class Device(Party):
    signer: SoftwareSigner
    seq: int = 0  # the next seq it signs
    lies: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)  # proven, by seq


@dataclass(kw_only=True)
class Node(Party):
    signer: LogSigner
    entries: list[bytes] = field(default_factory=list)  # what it logged
    forged: set[int] = field(default_factory=set)  # indices of entries it should have refused
    roots: dict[int, bytes] = field(default_factory=dict)  # of every anchored size
    anchored: int = 0
    previous: int = 0  # the size anchored before the latest
    anchored_at: int = 0  # the latest anchor's block time
    notarized: dict[int, int] = field(default_factory=dict)  # size -> block time
    late: set[int] = field(default_factory=set)  # sizes proven late
    invalid: set[int] = field(default_factory=set)  # indices proven invalid
    split: bool = False  # a split view proven

    def leaves(self, size: int | None = None) -> list[bytes]:
        return [merkle.leaf_hash(entry) for entry in self.entries[:size]]


def _signed_tree(origin: str, leaves: list[bytes], signer: LogSigner) -> SignedTree:
    """A checkpoint of ``leaves`` signed by ``signer`` (its P-256 signature, for the chain)."""
    root = merkle.root(leaves)
    note = sign_checkpoint(Checkpoint(origin, len(leaves), root), signer)
    r, s = p256_signature(note, signer.p256.verifier)
    return SignedTree(len(leaves), root, r + s)


def _reading_as(did: str, signer: SoftwareSigner, seq: int, value: int) -> bytes:
    """A reading in the name of ``did`` signed by ``signer`` (another key than the DID's)."""
    protected = cbor2.dumps({1: -7, 4: did.encode()}, canonical=True)
    payload = cbor2.dumps({"seq": seq, "ts": TS, "sensor": "s", "value": value}, canonical=True)
    signature = signer.sign(cbor2.dumps(["Signature1", protected, b"", payload]))
    return cbor2.dumps([protected, {}, payload, signature], canonical=True)


def _slot(id_: bytes, number: int) -> bytes:
    """Where Disputes remembers a proof: sha256(id || uint256 number)."""
    return sha256(id_ + number.to_bytes(32, "big")).digest()


def _gas(receipt: TxReceipt) -> int:
    return int(receipt["gasUsed"] * receipt["effectiveGasPrice"])


def _machine(chain: EmbeddedChain, deployed_reward_bps: int) -> type[RuleBasedStateMachine]:
    """The machine, on contracts deployed with ``deployed_reward_bps`` (the model
    always expects REWARD_BPS: another value plants a wrong payout)."""
    w3 = chain.w3
    deployer, *owners, reporter = (
        ChainClient(w3, account, advance_time=chain.advance_time, gas_limit=GAS)
        for account in chain.dev_accounts[:4]
    )
    count = 0

    class DisputesMachine(RuleBasedStateMachine):
        devices = Bundle("devices")
        nodes = Bundle("nodes")
        parties = Bundle("parties")

        def __init__(self) -> None:
            super().__init__()
            nonlocal count
            count += 1
            self.example = count
            registry = deployer.deploy("Registry", MIN_STAKE, UNBONDING, deployed_reward_bps)
            anchor = deployer.deploy("LogAnchor", registry)
            disputes = deployer.deploy("Disputes", registry, anchor, MERGE_DELAY)
            self.deployment = Deployment(
                deployer.chain_id,
                {"Registry": registry, "LogAnchor": anchor, "Disputes": disputes},
            )
            self.registries = [Registry(client, self.deployment) for client in owners]
            self.anchors = [LogAnchor(client, self.deployment) for client in owners]
            self.disputes = Disputes(reporter, self.deployment)
            wiring = self.registries[0].contract.functions.set_disputes(disputes)
            deployer.transact(wiring)
            self.device_models: dict[str, Device] = {}
            self.node_models: dict[str, Node] = {}
            self.kept = 0  # slashed and not paid out

        # --- helpers ------------------------------------------------------------------

        def _now(self) -> int:
            return int(w3.eth.get_block("latest")["timestamp"])

        def _time_of(self, receipt: TxReceipt) -> int:
            return int(w3.eth.get_block(receipt["blockNumber"])["timestamp"])

        def _party(self, name: str) -> Party:
            return self.node_models.get(name) or self.device_models[name]

        def _id(self, name: str) -> bytes:
            return origin_id(name) if name in self.node_models else device_id(name)

        def _view(self, function: ContractFunction) -> Any:
            # (a named sender spares eth-tester looking one up: most of a call's time)
            return function.call({"from": reporter.address})

        def _record(self, name: str) -> tuple[int, str, int]:
            """A party's (stake, status, unbond_at) on-chain."""
            functions = self.registries[0].contract.functions
            read = functions.nodes if name in self.node_models else functions.devices
            record = self._view(read(self._id(name)))
            return int(record[1]), STATUS[record[2]], int(record[4])  # (a node's as a device's)

        def _prove(
            self, party: Party, allowed: bool, refusal: str, send: Callable[[], TxReceipt]
        ) -> None:
            """Send a proof: it must land exactly when ``allowed`` (then slash the
            party's whole stake and pay the reporter its share), else be refused for
            ``refusal`` and change nothing."""
            if not allowed:
                with pytest.raises(Reverted, match=f"^{re.escape(refusal)}$"):
                    send()
                return
            before = reporter.balance()
            receipt = send()
            taken = party.stake
            reward = taken * REWARD_BPS // BPS
            paid = reporter.balance() - before + _gas(receipt)
            assert paid == reward, f"the reporter was paid {paid}, not its share {reward}"
            party.stake = 0
            self.kept += taken - reward

        def _log(self, origin: str, did: str, values: list[int]) -> None:
            """The node logs the device's next readings, as signed."""
            node, device = self.node_models[origin], self.device_models[did]
            for value in values:
                entry = sign_reading(device.signer, seq=device.seq, ts=TS, sensor="s", value=value)
                device.seq += 1
                node.entries.append(entry)

        def _anchor(self, origin: str, size: int) -> None:
            """The node anchors the first ``size`` entries it logged, with the RFC 9162
            proof from its last anchor: it lands exactly when the node is active and
            the size grows."""
            node = self.node_models[origin]
            leaves = node.leaves(size)
            proof = (
                merkle.consistency_proof(leaves, node.anchored)
                if (0 < node.anchored < size)
                else []
            )
            anchor = self.anchors[node.owner]
            if node.status != "active" or size <= node.anchored:
                refusal = "anchor: (not the origin's node|size must grow)"
                with pytest.raises(Reverted, match=refusal):
                    anchor.anchor(origin, size, merkle.root(leaves), proof)
                return
            receipt = anchor.anchor(origin, size, merkle.root(leaves), proof)
            node.previous, node.anchored = node.anchored, size
            node.anchored_at = self._time_of(receipt)
            node.roots[size] = merkle.root(leaves)

        def _retire(self, name: str, who: int) -> None:
            party = self._party(name)
            registry = self.registries[who]
            stop = registry.retire_node if name in self.node_models else registry.revoke
            if party.status != "active" or who != party.owner:
                with pytest.raises(Reverted, match="registry: (.* not active|only the owner)"):
                    stop(name)
                return
            stop(name)
            party.status = "revoked"
            _, _, party.unbond_at = self._record(name)

        def _withdraw(self, name: str, who: int) -> None:
            """After the unbonding, the owner takes what slashes left: nothing, for a
            liar; before it, or anyone else, nothing at all."""
            party = self._party(name)
            now = self._now()
            if party.status == "revoked" and now < party.unbond_at <= now + SLACK:
                return  # too close to the unbonding's end to say which side the block falls
            owner = owners[who]
            if party.status != "revoked" or party.unbond_at > now or who != party.owner:
                with pytest.raises(Reverted, match="registry: "):
                    self.registries[who].withdraw(self._id(name))
                return
            before = owner.balance()
            receipt = self.registries[who].withdraw(self._id(name))
            assert owner.balance() - before + _gas(receipt) == party.stake
            party.stake, party.status = 0, "withdrawn"

        # --- registration, honest work, retirement ------------------------------------

        def _register_device(self, who: int, extra: int) -> str:
            signer = SoftwareSigner.generate()
            did = did_from_key(signer.public_key)
            self.registries[who].register_device(did, MIN_STAKE + extra)
            self.device_models[did] = Device(
                owner=who, deposit=MIN_STAKE + extra, stake=MIN_STAKE + extra, signer=signer
            )
            return did

        def _register_node(self, who: int, extra: int) -> str:
            origin = f"disputes.example/{self.example}/{len(self.node_models)}"
            signer = LogSigner.from_seed(origin, os.urandom(32))
            self.registries[who].register_log(signer, "http://127.0.0.1", MIN_STAKE + extra)
            self.node_models[origin] = Node(
                owner=who, deposit=MIN_STAKE + extra, stake=MIN_STAKE + extra, signer=signer
            )
            return origin

        @initialize(targets=(devices, parties))
        def a_device_each(self) -> MultipleResults[str]:
            return multiple(self._register_device(0, 0), self._register_device(1, 1))

        @initialize(targets=(nodes, parties))
        def a_node_each(self) -> MultipleResults[str]:
            return multiple(self._register_node(0, 0), self._register_node(1, 1))

        @rule(targets=(devices, parties), who=st.integers(0, 1), extra=st.integers(0, 10**6))
        def register_device(self, who: int, extra: int) -> str:
            return self._register_device(who, extra)

        @rule(targets=(nodes, parties), who=st.integers(0, 1), extra=st.integers(0, 10**6))
        def register_node(self, who: int, extra: int) -> str:
            return self._register_node(who, extra)

        @rule(
            origin=nodes,
            did=devices,
            values=st.lists(st.integers(-100, 100), min_size=1, max_size=4),
        )
        def log_readings(self, origin: str, did: str, values: list[int]) -> None:
            self._log(origin, did, values)

        @rule(origin=nodes, at=st.integers(0, 10**6))
        def anchor_honestly(self, origin: str, at: int) -> None:
            node = self.node_models[origin]
            self._anchor(origin, at % (len(node.entries) + 1))

        @rule(name=parties, who=st.integers(0, 1))
        def retire(self, name: str, who: int) -> None:
            self._retire(name, who)

        @rule(name=parties, who=st.integers(0, 1))
        def withdraw(self, name: str, who: int) -> None:
            self._withdraw(name, who)

        @rule(name=parties)
        def leave(self, name: str) -> None:
            """The owner retires the party, waits out the unbonding and withdraws."""
            owner = self._party(name).owner
            self._retire(name, owner)
            chain.advance_time(UNBONDING + SLACK + 1)
            self._withdraw(name, owner)

        @rule(seconds=st.sampled_from([1, 300, MERGE_DELAY + SLACK + 1, UNBONDING + SLACK + 1]))
        def wait(self, seconds: int) -> None:
            chain.advance_time(seconds)

        # --- lies, and their proofs ---------------------------------------------------

        @rule(did=devices, again=st.booleans(), data=st.data())
        def equivocate(self, did: str, again: bool, data: st.DataObject) -> None:
            """The device signs two readings with one seq (or a proven pair is sent again)."""
            device = self.device_models[did]
            device.honest = False
            if again and device.lies:
                seq = data.draw(st.sampled_from(sorted(device.lies)))
                first, second = device.lies[seq]
                with pytest.raises(Reverted, match="disputes: already proven"):
                    self.disputes.prove_equivocation(second, first)
                return
            seq, device.seq = device.seq, device.seq + 1
            first, second = (
                sign_reading(device.signer, seq=seq, ts=TS, sensor="s", value=value)
                for value in (1, 2)
            )
            allowed = device.stake > 0
            proving = functools.partial(self.disputes.prove_equivocation, first, second)
            self._prove(device, allowed, "registry: nothing to slash", proving)
            if allowed:
                device.lies[seq] = (first, second)

        @rule(
            origin=nodes,
            did=devices,
            fresh=st.booleans(),
            then=st.sampled_from(["nothing", "never anchored", "anchored in time"]),
        )
        def withhold_a_checkpoint(self, origin: str, did: str, fresh: bool, then: str) -> None:
            """The node signs a checkpoint of all it logged (a reading more, if ``fresh``)
            and a watcher notarizes it. Then the node anchors it at once, or never: once
            the maximum merge delay has passed the reporter tries to prove it late."""
            node = self.node_models[origin]
            if fresh:
                self._log(origin, did, [0])
            size = len(node.entries)
            tree = _signed_tree(origin, node.leaves(), node.signer)
            if size <= node.anchored or size in node.notarized:
                with pytest.raises(Reverted, match="disputes: already (anchored|notarized)"):
                    self.disputes.notarize(origin, tree)
                return
            receipt = self.disputes.notarize(origin, tree)
            node.notarized[size] = self._time_of(receipt)
            if then == "nothing":
                node.honest = False  # (it may still anchor in time: a proof decides)
                return
            if then == "anchored in time":
                self._anchor(origin, size)
            if node.anchored < size:  # (never, or refused: the node retired)
                node.honest = False
            chain.advance_time(MERGE_DELAY + SLACK + 1)
            self._prove_late(origin, size)

        @rule(origin=nodes, data=st.data())
        def prove_late(self, origin: str, data: st.DataObject) -> None:
            """Any size: notarized or not, anchored in time or late, proven or not."""
            node = self.node_models[origin]
            self._prove_late(
                origin, data.draw(st.sampled_from([*sorted(node.notarized), len(node.entries) + 1]))
            )

        def _prove_late(self, origin: str, size: int) -> None:
            node = self.node_models[origin]
            now = self._now()
            refusal = ""
            if size not in node.notarized:
                refusal = "disputes: not notarized"
            else:
                deadline = node.notarized[size] + MERGE_DELAY
                if now <= deadline < now + SLACK:
                    return  # too close to the deadline to say which side the block falls
                if deadline >= now:
                    refusal = "disputes: merge delay not passed"
                elif node.anchored >= size and node.previous >= size:
                    refusal = "disputes: anchored"
                elif node.anchored >= size and node.anchored_at <= deadline:
                    refusal = "disputes: anchored in time"
                elif size in node.late:
                    refusal = "disputes: already proven"
                elif node.stake == 0:
                    refusal = "registry: nothing to slash"
            proving = functools.partial(self.disputes.prove_late, origin, size)
            self._prove(node, not refusal, refusal, proving)
            if not refusal:
                node.late.add(size)

        @rule(
            origin=nodes,
            did=devices,
            how=st.sampled_from(["bad signature", "unregistered", "malformed"]),
        )
        def log_a_forgery(self, origin: str, did: str, how: str) -> None:
            """The node logs an entry it should have refused, and anchors it."""
            node, device = self.node_models[origin], self.device_models[did]
            if how == "bad signature":
                honest = sign_reading(device.signer, seq=device.seq, ts=TS, sensor="s", value=0)
                device.seq += 1  # (a reading it signed, never published: its seq is used)
                entry = honest[:-1] + bytes([honest[-1] ^ 1])
            elif how == "unregistered":
                entry = sign_reading(SoftwareSigner.generate(), seq=0, ts=TS, sensor="s", value=0)
            else:
                entry = b"\x00not a reading"
            node.forged.add(len(node.entries))
            node.entries.append(entry)
            node.honest = False
            self._anchor(origin, len(node.entries))  # (refused if it is not active any more)

        @precondition(lambda self: any(node.roots for node in self.node_models.values()))
        @rule(data=st.data())
        def prove_invalid_entry(self, data: st.DataObject) -> None:
            """An entry of an anchored tree: honest ones are valid, forged ones slashable once."""
            origin = data.draw(
                st.sampled_from(sorted(o for o, n in self.node_models.items() if n.roots))
            )
            node = self.node_models[origin]
            size = data.draw(st.sampled_from(sorted(node.roots)))
            index = data.draw(st.integers(0, size - 1))
            proof = merkle.inclusion_proof(node.leaves(size), index)
            refusal = ""
            if index not in node.forged:
                refusal = "disputes: the entry is valid"
            elif index in node.invalid:
                refusal = "disputes: already proven"
            elif node.stake == 0:
                refusal = "registry: nothing to slash"
            proving = functools.partial(
                self.disputes.prove_invalid_entry, origin, size, index, node.entries[index], proof
            )
            self._prove(node, not refusal, refusal, proving)
            if not refusal:
                node.invalid.add(index)

        @rule(origin=nodes, rewrite=st.booleans())
        def split_view(self, origin: str, rewrite: bool) -> None:
            """The node signs two trees that cannot both be true: two roots of one size,
            or a tree that a larger one it signed does not extend."""
            node = self.node_models[origin]
            node.honest = False
            leaves = node.leaves() or [merkle.leaf_hash(b"first")]
            refusal = (
                "disputes: already proven"
                if node.split
                else ("registry: nothing to slash" if node.stake == 0 else "")
            )
            if rewrite and len(leaves) >= 2:
                size = len(leaves) - 1  # a rewritten prefix: its last leaf another
                old = _signed_tree(
                    origin, [*leaves[: size - 1], merkle.leaf_hash(os.urandom(16))], node.signer
                )
                new = _signed_tree(origin, leaves, node.signer)
                path = merkle.prefix_proof(
                    size, merkle.root(leaves[:size]), merkle.consistency_proof(leaves, size)
                )
                proving = functools.partial(
                    self.disputes.prove_inconsistent, origin, old, new, path
                )
            else:
                one = _signed_tree(origin, leaves, node.signer)
                forked = [*leaves[:-1], merkle.leaf_hash(os.urandom(16))]
                other = _signed_tree(origin, forked, node.signer)
                proving = functools.partial(self.disputes.prove_split_view, origin, one, other)
            self._prove(node, not refusal, refusal, proving)
            if not refusal:
                node.split = True

        # --- proofs that must fail --------------------------------------------------

        @rule(did=devices, how=st.sampled_from(["two seqs", "one reading", "a stranger's key"]))
        def no_equivocation_from_honest_readings(self, did: str, how: str) -> None:
            """Honest readings, or a stranger's signature in the device's name, prove nothing."""
            device = self.device_models[did]
            seq, device.seq = device.seq, device.seq + 2
            first = sign_reading(device.signer, seq=seq, ts=TS, sensor="s", value=1)
            if how == "two seqs":
                second, refusal = (
                    sign_reading(device.signer, seq=seq + 1, ts=TS, sensor="s", value=2),
                    "disputes: different seqs",
                )
            elif how == "one reading":
                second, refusal = first, "disputes: same payload"
            else:
                second = _reading_as(did, SoftwareSigner.generate(), seq, 2)
                refusal = "disputes: second signature invalid"
            with pytest.raises(Reverted, match=refusal):
                self.disputes.prove_equivocation(first, second)

        @rule(origin=nodes, notarize=st.booleans())
        def no_proof_from_a_strangers_checkpoint(self, origin: str, notarize: bool) -> None:
            """Checkpoints a stranger signed in the node's name hold it to nothing."""
            node = self.node_models[origin]
            stranger = LogSigner.from_seed(origin, os.urandom(32))
            leaves = [*node.leaves(), merkle.leaf_hash(b"stranger")]
            forged = _signed_tree(origin, leaves, stranger)
            if notarize:
                with pytest.raises(Reverted, match="disputes: checkpoint not signed"):
                    self.disputes.notarize(origin, forged)
                return
            honest = _signed_tree(
                origin, [*node.leaves(), merkle.leaf_hash(b"honest")], node.signer
            )
            with pytest.raises(Reverted, match="disputes: checkpoint a not signed"):
                self.disputes.prove_split_view(origin, forged, honest)

        # --- what must hold after every step --------------------------------------------

        @invariant()
        def every_stake_is_the_models_and_the_honest_keep_theirs(self) -> None:
            for name in [*self.device_models, *self.node_models]:
                party = self._party(name)
                assert self._record(name) == (party.stake, party.status, party.unbond_at)
                if party.honest:
                    assert party.stake == (0 if party.status == "withdrawn" else party.deposit)

        @invariant()
        def the_registry_holds_the_live_stakes_and_what_slashes_kept(self) -> None:
            registry = self.registries[0]
            assert self._view(registry.contract.functions.slashed_total()) == self.kept
            live = sum(self._party(n).stake for n in [*self.device_models, *self.node_models])
            assert deployer.balance(registry.address) == live + self.kept

        @invariant()
        def disputes_remembers_what_was_proven(self) -> None:
            functions = self.disputes.contract.functions
            for did, device in self.device_models.items():
                for seq in device.lies:
                    assert self._view(functions.proven(_slot(device_id(did), seq)))
            for origin, node in self.node_models.items():
                id_ = origin_id(origin)
                assert self._view(functions.split_proven(id_)) == node.split
                for size, at in node.notarized.items():
                    assert self._view(functions.notarized(id_, size)) == at
                    late = self._view(functions.late_proven(_slot(id_, size)))
                    assert late == (size in node.late)
                for index in node.forged:
                    proven = self._view(functions.invalid_proven(_slot(id_, index)))
                    assert proven == (index in node.invalid)

    return DisputesMachine


def test_lies_are_slashed_once_and_the_honest_never(chain: EmbeddedChain) -> None:
    budget = invariant_settings(examples=4, steps=15, database=None)
    run_state_machine_as_test(_machine(chain, REWARD_BPS), settings=budget)


def test_the_machine_fails_on_a_planted_wrong_expectation(chain: EmbeddedChain) -> None:
    """A Registry paying reporters one basis point more than the rules say: the
    machine must fail at the first slash (so it is not blind to payouts)."""
    with pytest.raises(AssertionError, match="the reporter was paid"):
        run_state_machine_as_test(
            _machine(chain, REWARD_BPS + 1),
            settings=planted_settings(examples=30, steps=15),
        )
