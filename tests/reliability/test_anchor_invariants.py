"""LogAnchor as a hypothesis state machine on the embedded chain: a log grows,
and its node, a stranger, and a node that would rewrite history send anchors in
any order, with honest proofs and with proofs cut, padded, bent or pointed at
another tree. An anchor lands exactly when it is the origin's node's, the size
grows and the RFC 9162 consistency proof from the last anchor holds; after
every step the chain's latest anchor is the last that landed, and every root
it ever recorded is still a prefix of the log (anchored history is never
rewritten)."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.reliability.budget import invariant_settings, planted_settings
from trustmesh.chain.client import ChainClient
from trustmesh.chain.embedded import EmbeddedChain
from trustmesh.chain.suite import LogAnchor, Registry, deploy_suite, origin_id
from trustmesh.errors import Reverted
from trustmesh.log import merkle
from trustmesh.log.note_p256 import LogSigner

MIN_STAKE = 10**15
REFUSED = "anchor: (size must grow|not the origin's node|not consistent with the last anchor)"


def _machine(chain: EmbeddedChain, planted: bool = False) -> type[RuleBasedStateMachine]:
    """The machine; ``planted``: it believes a stranger's anchor lands."""
    node, stranger = (ChainClient(chain.w3, account) for account in chain.dev_accounts[:2])
    deployment = deploy_suite(node, min_stake=MIN_STAKE, with_disputes=False)
    anchors = {who: LogAnchor(who, deployment) for who in (node, stranger)}
    registry = Registry(node, deployment)
    count = 0

    class Anchoring(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            nonlocal count
            count += 1
            self.origin = f"anchor.example/{count}{'-planted' if planted else ''}"
            registry.register_log(
                LogSigner.from_seed(self.origin, os.urandom(32)), "http://127.0.0.1", MIN_STAKE
            )
            self.leaves: list[bytes] = []
            self.anchored = 0
            self.history: dict[int, bytes] = {}  # size -> root, of every anchor that landed

        def _try(self, who: ChainClient, size: int, root: bytes, proof: list[bytes]) -> bool:
            """Whether the anchor landed (a refusal must be one of the contract's own)."""
            refusal = None
            try:
                anchors[who].anchor(self.origin, size, root, proof)
            except Reverted as exc:
                refusal = str(exc)
            assert refusal is None or re.search(REFUSED, refusal), refusal
            return refusal is None

        @rule(count=st.integers(1, 40))
        def append(self, count: int) -> None:
            start = len(self.leaves)
            self.leaves += [merkle.leaf_hash(os.urandom(8) + bytes([i])) for i in range(count)]
            assert len(self.leaves) == start + count

        @rule(at=st.integers(0, 10**6))
        def anchor_honestly(self, at: int) -> None:
            size = at % (len(self.leaves) + 1)
            root = merkle.root(self.leaves[:size])
            proof = merkle.consistency_proof(self.leaves[:size], self.anchored) if (
                0 < self.anchored < size) else []  # fmt: skip
            landed = self._try(node, size, root, proof)
            assert landed == (size > self.anchored)
            if landed:
                self.anchored, self.history[size] = size, root

        @precondition(lambda self: len(self.leaves) > 0)
        @rule(data=st.data())
        def anchor_as_a_stranger(self, data: st.DataObject) -> None:
            size = data.draw(st.integers(self.anchored + 1, self.anchored + len(self.leaves)))
            size = min(size, len(self.leaves))
            if size <= self.anchored:
                return
            proof = merkle.consistency_proof(self.leaves[:size], self.anchored) if (
                self.anchored) else []  # fmt: skip
            assert self._try(stranger, size, merkle.root(self.leaves[:size]), proof) == planted

        @precondition(lambda self: self.anchored > 0)
        @rule(data=st.data())
        def rewrite_history(self, data: st.DataObject) -> None:
            """Another tree: one leaf at or below the last anchor changed, grown past it."""
            extra = data.draw(st.integers(1, 20))
            other = list(self.leaves[: self.anchored]) + [os.urandom(32) for _ in range(extra)]
            changed = data.draw(st.integers(0, self.anchored - 1))
            other[changed] = merkle.leaf_hash(b"rewritten" + os.urandom(8))
            size = len(other)
            assert not self._try(
                node, size, merkle.root(other), merkle.consistency_proof(other, self.anchored)
            )

        @precondition(lambda self: 0 < self.anchored < len(self.leaves))
        @rule(data=st.data(), how=st.sampled_from(["cut", "pad", "bend", "root"]))
        def anchor_with_a_bad_proof(self, data: st.DataObject, how: str) -> None:
            size = data.draw(st.integers(self.anchored + 1, len(self.leaves)))
            root = merkle.root(self.leaves[:size])
            proof = merkle.consistency_proof(self.leaves[:size], self.anchored)
            if how == "cut":
                proof = proof[:-1]
            elif how == "pad":
                proof = [*proof, os.urandom(32)]
            elif how == "bend":
                i = data.draw(st.integers(0, len(proof) - 1))
                proof[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
            else:
                root = os.urandom(32)  # a root no tree of these leaves has
            assert not self._try(node, size, root, proof)

        @invariant()
        def the_chain_holds_the_last_anchor_and_every_root_still_a_prefix(self) -> None:
            size, root, _, _ = anchors[node].latest(self.origin)
            assert (size, root) == (self.anchored, self.history.get(self.anchored, bytes(32)))
            roots = anchors[node].contract.functions.roots
            for anchored_size, anchored_root in self.history.items():
                assert anchored_root == merkle.root(self.leaves[:anchored_size])
                assert bytes(node.call(roots(origin_id(self.origin), anchored_size))) == (
                    anchored_root
                )

    return Anchoring


def test_anchored_history_is_never_rewritten(chain: EmbeddedChain) -> None:
    run_state_machine_as_test(_machine(chain), settings=invariant_settings(examples=6, steps=20))


def test_the_machine_fails_on_a_planted_wrong_expectation(chain: EmbeddedChain) -> None:
    """The same machine, believing a stranger's anchor lands:
    it must find a sequence that shows otherwise (so it can find a real slip)."""
    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            _machine(chain, planted=True), settings=planted_settings(examples=30, steps=20)
        )
