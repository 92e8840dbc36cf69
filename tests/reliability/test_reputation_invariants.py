"""Reputation as a hypothesis state machine on the embedded chain: two attesters
(and a stranger who never staked) join, leave, withdraw and post epochs' tables,
computed from random evidence, honest or with one lie told (a trust value, a
score, a subject left out), with the bond or without; a prover proves the lie,
tries to prove values that are right, and brings proofs made from another
table; tables are finalized; time passes.

Each call succeeds exactly when the contract's rules say it may: only a staked
attester that is not leaving posts, with the bond, once per epoch (and not while
the epoch 64 before it is pending); a lie is disproven within its window, once,
paying the prover the bond and its share of the attester's stake and burning
the rest; a right value, in an honest table or a lying one, withstands every
proof; a final table returns its bond to its poster; a stake leaves after one
window of unbonding. After every step each epoch's root and finality, every
stake and the burned total are the model's, and the contract holds exactly the
stakes, the bonds of the tables not yet final and what was burned."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3.logs import DISCARD
from web3.types import TxReceipt

from tests.chain.reputation_lies import tampered
from tests.reliability.budget import invariant_settings, planted_settings
from tests.reputation.strategies import epoch_inputs, subject
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.reputation import ReputationContract, deploy_reputation
from trustmesh.errors import Reverted
from trustmesh.reputation import (
    TRUST_MASS,
    EpochInputs,
    Params,
    ReputationTable,
    Stake,
    assemble_table,
    compute_epoch,
)
from trustmesh.reputation.check import first_provable

MIN_STAKE = 10**15
BOND = 10**16
WINDOW = 600
REWARD_BPS = 4000
PARAMS = Params(steps=4)
SLACK = 30  # seconds of the next block's time that a prediction cannot know
GAS = 8_000_000  # each transaction's limit, never estimated: a refused one is mined, and reverts
EPOCHS = [1, 2, 3, 65]  # 65 shares the ring slot of 1: it waits until 1 is final
LIES = ["none", "trust", "score", "dropped"]
RIGHT = {
    "trust": "reputation: the value is right",
    "score": "reputation: the score is right",
    "count": "reputation: the count is right",
    "chain": "reputation: the chain holds",
}  # why a proof of a right value fails, by what it aims at


@dataclass(frozen=True)
class Posting:
    """A table an attester is asked to post."""

    who: int  # 0 and 1 the attesters, 2 the stranger
    epoch: int
    lie: str  # none, or the value it gets wrong: a trust value, a score, a subject dropped
    inputs: EpochInputs
    pick: int  # which subject (and step) the lie is told of
    bond: int


def _with_stakers(inputs: EpochInputs) -> EpochInputs:
    """Two staked subjects more, so that every table has a lie to tell."""
    extra = [Stake(subject(100), 10**18, 30), Stake(subject(101), 10**17, 5)]
    return dataclasses.replace(inputs, stakes=[*inputs.stakes, *extra])


POSTINGS = st.builds(
    Posting,
    who=st.sampled_from([0, 0, 1, 1, 2]),
    epoch=st.sampled_from(EPOCHS),
    lie=st.sampled_from(LIES),
    inputs=epoch_inputs(max_subjects=6).map(_with_stakers),
    pick=st.integers(0, 10**6),
    bond=st.sampled_from([BOND, BOND, BOND, 0, BOND - 1, BOND + 1]),
)


@dataclass(frozen=True)
class Proof:
    """A proof the prover is asked to bring against an epoch's table."""

    epoch: int
    aim: str  # the lie (what a checker finds), a right value, or another table
    kind: str  # of a right value: trust, score, count, chain
    pick: int
    step: int


PROOFS = st.builds(
    Proof,
    epoch=st.sampled_from(EPOCHS),
    aim=st.sampled_from(["the lie", "the lie", "a right value", "another table"]),
    kind=st.sampled_from(["trust", "score", "count", "chain"]),
    pick=st.integers(0, 10**6),
    step=st.integers(0, PARAMS.steps),
)


@dataclass
class Post:
    table: ReputationTable  # as posted
    honest: ReputationTable  # what the epoch's inputs give
    lie: str
    subject: bytes  # the lie's
    step: int  # of a trust lie
    poster: int
    deadline: int  # its window closes
    final: bool = False


@dataclass
class Attester:
    stake: int = 0
    unbond_at: int = 0  # 0 unless leaving


def _lie(honest: ReputationTable, lie: str, pick: int) -> tuple[ReputationTable, bytes, int]:
    """(the table told with ``lie``, the subject it is told of, the step of a trust lie)."""
    if lie == "none":
        assert first_provable(honest) is None  # (a checker finds nothing to prove)
        return honest, bytes(32), 0
    ordered = sorted(honest.rows)
    if lie == "dropped":  # any subject but the last: the last leaf then sits past the count
        gone = ordered[pick % (len(ordered) - 1)]
        rows = [honest.rows[key] for key in ordered if key != gone]
        return assemble_table(honest.epoch, honest.params, rows), gone, 0
    target = ordered[pick % len(ordered)]
    row = honest.rows[target]
    if lie == "score":
        return tampered(honest, target, score=row.score + 1), target, 0
    step = pick % len(row.trajectory)
    trajectory = list(row.trajectory)
    trajectory[step] += 1 if trajectory[step] < TRUST_MASS else -1
    return tampered(honest, target, trajectory=tuple(trajectory)), target, step


def _machine(chain: EmbeddedChain, *, planted: bool = False) -> type[RuleBasedStateMachine]:
    """The machine; ``planted``: it believes a post's bond goes straight back to its poster."""
    deployer, *attesters, stranger, prover = (
        ChainClient(chain.w3, account, advance_time=chain.advance_time, gas_limit=GAS)
        for account in chain.dev_accounts[:5]
    )
    posters = [*attesters, stranger]

    class Reputation(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            address = deploy_reputation(
                deployer, PARAMS, min_stake=MIN_STAKE, bond=BOND, window=WINDOW,
                reward_bps=REWARD_BPS,
            )  # fmt: skip
            self.as_ = [ReputationContract(client, address) for client in posters]
            self.prover = ReputationContract(prover, address)
            self.address = address
            self.model = [Attester() for _ in posters]
            self.posts: dict[int, Post] = {}  # epoch -> its table, while its root stands
            self.seen: dict[int, Post] = {}  # epoch -> the last table posted for it
            self.burned = 0

        def _now(self) -> int:
            return int(chain.w3.eth.get_block("latest")["timestamp"])

        def _mined_at(self, receipt: TxReceipt) -> int:
            return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])

        @initialize(stakes=st.lists(st.integers(MIN_STAKE, 3 * MIN_STAKE), min_size=2, max_size=2))
        def stake_the_attesters(self, stakes: list[int]) -> None:
            for who, amount in enumerate(stakes):
                self.join(who, amount)

        @rule(who=st.integers(0, 1), amount=st.integers(0, 2 * MIN_STAKE))
        def join(self, who: int, amount: int) -> None:
            if amount == 0:
                with pytest.raises(Reverted, match="reputation: no stake sent"):
                    self.as_[who].join(amount)
                return
            self.as_[who].join(amount)
            self.model[who].stake += amount

        @rule(who=st.integers(0, 2))
        def leave(self, who: int) -> None:
            attester = self.model[who]
            refusal = None
            if attester.stake == 0:
                refusal = "reputation: nothing staked"
            elif attester.unbond_at:
                refusal = "reputation: already leaving"
            if refusal:
                with pytest.raises(Reverted, match=refusal):
                    self.as_[who].leave()
                return
            receipt = self.as_[who].leave()
            attester.unbond_at = self._mined_at(receipt) + WINDOW

        @rule(who=st.integers(0, 2))
        def withdraw(self, who: int) -> None:
            """A stake taken back, all of it, once it has unbonded."""
            attester, now = self.model[who], self._now()
            if attester.stake and now < attester.unbond_at <= now + SLACK:
                return  # too close to the unbonding's end to say which side the block falls
            refusal = None
            if attester.stake == 0:
                refusal = "reputation: nothing staked"
            elif attester.unbond_at == 0:
                refusal = "reputation: not leaving"
            elif now < attester.unbond_at:
                refusal = "reputation: still unbonding"
            if refusal:
                with pytest.raises(Reverted, match=refusal):
                    self.as_[who].withdraw()
                return
            client = posters[who]
            before = client.balance()
            receipt = self.as_[who].withdraw()
            gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
            assert client.balance() - before + gas == attester.stake  # all of it, no more
            attester.stake, attester.unbond_at = 0, 0

        @rule(posting=POSTINGS)
        def post(self, posting: Posting) -> None:
            """A table posted by an attester (or the stranger), honest or with a lie."""
            epoch, attester = posting.epoch, self.model[posting.who]
            honest = compute_epoch(dataclasses.replace(posting.inputs, epoch=epoch), PARAMS)
            table, target, step = _lie(honest, posting.lie, posting.pick)
            pending = [
                post for post in self.posts.values()
                if post.table.epoch % 64 == epoch % 64 and not post.final
            ]  # fmt: skip
            refusal = None
            if attester.stake < MIN_STAKE:
                refusal = "reputation: attester not staked"
            elif attester.unbond_at:
                refusal = "reputation: attester leaving"
            elif posting.bond != BOND:
                refusal = "reputation: the bond must be sent with the post"
            elif epoch in self.posts:
                refusal = "reputation: epoch already posted"
            elif pending:
                refusal = "reputation: an older epoch is still pending"
            if refusal:
                with pytest.raises(Reverted, match=refusal):
                    self.as_[posting.who].post(table, bond=posting.bond)
                return
            receipt = self.as_[posting.who].post(table, bond=posting.bond)
            deadline = self._mined_at(receipt) + WINDOW
            post = Post(table, honest, posting.lie, target, step, posting.who, deadline)
            self.posts[epoch] = self.seen[epoch] = post

        @precondition(lambda self: bool(self.seen))
        @rule(proof=PROOFS)
        def prove(self, proof: Proof) -> None:
            """A proof against the last table posted for an epoch (standing or not)."""
            epochs = sorted(self.seen)
            epoch = proof.epoch if proof.epoch in self.seen else epochs[proof.pick % len(epochs)]
            post, now = self.seen[epoch], self._now()
            if epoch in self.posts and not post.final and now < post.deadline <= now + SLACK:
                return  # too close to the window's end to say which side the block falls
            refusal = self._refusal(epoch)
            if proof.aim == "another table":  # its proofs lead to another root
                other = post.honest if post.lie != "none" else _lie(post.honest, "score", 0)[0]
                with pytest.raises(Reverted, match=refusal or "reputation: meta not in the table"):
                    self.prover.prove_wrong_score(other, min(other.rows))
                return
            if proof.aim == "a right value" or post.lie == "none":
                attempt, why = self._right_value(post, proof)
                with pytest.raises(Reverted, match=refusal or why):
                    attempt()
                return
            if refusal:
                with pytest.raises(Reverted, match=refusal):
                    self._prove_the_lie(post)
                return
            self._disproved(post, self._prove_the_lie(post))

        def _refusal(self, epoch: int) -> str | None:
            """Why no proof against the epoch's table is heard now, if none is."""
            post = self.posts.get(epoch)
            if post is None:
                return "reputation: epoch not posted"
            if post.final:
                return "reputation: table already final"
            if self._now() >= post.deadline:
                return "reputation: window closed"
            return None

        def _prove_the_lie(self, post: Post) -> TxReceipt:
            """The proof a checker makes of the table as posted."""
            table = post.table
            if post.lie == "dropped":
                return self.prover.prove_wrong_count(table, max(table.rows))
            wrong = first_provable(table)
            assert wrong is not None and wrong.subject == post.subject  # where the lie was told
            assert wrong.kind == post.lie and (post.lie == "score" or wrong.step == post.step)
            return self.prover.prove(table, wrong)

        def _right_value(self, post: Post, proof: Proof) -> tuple[Callable[[], TxReceipt], str]:
            """A proof aimed at a value the table gets right, and why it must fail: any
            value of an honest table; in a lying one, any value of another subject than
            the lie's, up to the lie's step (later ones follow from it); in a table with
            a subject left out, a pre-trust."""
            table, contract = post.table, self.prover
            subjects = sorted(table.rows)
            if post.lie in ("trust", "score"):
                subjects.remove(post.subject)
            chosen = subjects[proof.pick % len(subjects)]
            second = subjects[proof.pick // len(subjects) % len(subjects)]
            kind, step = proof.kind, proof.step
            if post.lie == "trust":
                step = min(step, post.step)
            if post.lie == "dropped":
                kind, step = "trust", 0
            attempts = {
                "trust": partial(contract.prove_wrong_trust, table, chosen, step),
                "score": partial(contract.prove_wrong_score, table, chosen),
                "count": partial(contract.prove_wrong_count, table, chosen),
                "chain": partial(contract.prove_broken_chain, table, chosen, second),
            }
            return attempts[kind], RIGHT[kind]

        def _disproved(self, post: Post, receipt: TxReceipt) -> None:
            """Account for a lie proven: the poster's stake taken, shared and burned."""
            epoch = post.table.epoch
            events = self.prover.contract.events.WrongValueProven()
            (event,) = events.process_receipt(receipt, errors=DISCARD)
            poster = self.model[post.poster]
            taken = poster.stake
            reward = taken * REWARD_BPS // 10_000
            assert event["args"]["paid"] == BOND + reward
            assert event["args"]["attester"] == posters[post.poster].address
            assert event["args"]["what"] == {"dropped": "count"}.get(post.lie, post.lie)
            poster.stake = 0
            self.burned += taken - reward
            del self.posts[epoch]

        @rule(epoch=st.sampled_from(EPOCHS))
        def finalize(self, epoch: int) -> None:
            """An epoch's table made final by anyone, its bond back to its poster."""
            post, now = self.posts.get(epoch), self._now()
            if post and not post.final and now < post.deadline <= now + SLACK:
                return  # too close to the window's end to say which side the block falls
            refusal = None
            if post is None:
                refusal = "reputation: epoch not posted"
            elif post.final:
                refusal = "reputation: already final"
            elif now < post.deadline:
                refusal = "reputation: window still open"
            if refusal:
                with pytest.raises(Reverted, match=refusal):
                    self.prover.finalize(epoch)
                return
            assert post is not None
            poster = posters[post.poster]
            before = poster.balance()
            self.prover.finalize(epoch)
            assert poster.balance() == before + BOND  # (the poster sends nothing)
            post.final = True

        @rule(seconds=st.sampled_from([1, WINDOW // 2, WINDOW + SLACK + 1]))
        def wait(self, seconds: int) -> None:
            chain.advance_time(seconds)

        @invariant()
        def every_root_stake_and_wei_is_the_models(self) -> None:
            reader, now = self.prover, self._now()
            functions = reader.contract.functions
            for epoch in self.seen:  # (the others have no root: a refused post never lands)
                post = self.posts.get(epoch)
                assert reader.root(epoch) == (post.table.score_root if post else bytes(32))
                if post and not post.final and abs(now - post.deadline) <= SLACK:
                    continue  # (which side of its deadline a call runs is not ours to say)
                assert reader.is_final(epoch) == bool(post and (post.final or now >= post.deadline))
            for who, client in enumerate(attesters):  # (the stranger never stakes)
                unbond_at = reader.client.call(functions.unbond_at(client.address))
                stake = reader.stake(client.address)
                assert (stake, unbond_at) == (self.model[who].stake, self.model[who].unbond_at)
            assert reader.client.call(functions.burned()) == self.burned
            bonds = BOND * sum(1 for post in self.posts.values() if not post.final)
            bonds = 0 if planted else bonds
            stakes = sum(attester.stake for attester in self.model)
            held = reader.client.balance(self.address)
            assert held == stakes + bonds + self.burned, "held"

    return Reputation


def test_only_a_lie_is_slashed_and_every_wei_is_accounted_for(chain: EmbeddedChain) -> None:
    run_state_machine_as_test(_machine(chain), settings=invariant_settings(examples=5, steps=25))


def test_the_machine_fails_on_a_planted_wrong_expectation(chain: EmbeddedChain) -> None:
    """The same machine, believing that a post's bond goes straight back to its
    poster: it must find a sequence that shows otherwise (so it can find a real slip)."""
    with pytest.raises(AssertionError, match="held"):
        run_state_machine_as_test(
            _machine(chain, planted=True),
            settings=planted_settings(examples=20, steps=10),
        )
