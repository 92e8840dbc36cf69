"""An epoch's reward pool, shared by reputation (pure: a table in, a Merkle
distribution out, integers only, so anyone recomputes the same root).

A subject's weight is its stake-anchored trust times its score, damped by the
density of vouching around it::

    weight = trust * score // ONE // (1 + vouchers)

``trust`` is EigenTrust mass anchored in unslashed stake: it is conserved, so an
identity split into many (or a swarm of unstaked Sybils) shares what flowed to
one and gains nothing; ``score`` is its behaviour (beta reputation with
forgetting, combined as the table combines them); ``vouchers`` counts the
subject's kept attesters (the table keeps an edge only where two identities
witnessed each other, so these are its mutual vouchers). A cluster that vouches
for itself all round, the way to farm a pool, has each member's weight divided
by the cluster's size on top of sharing its trust: splitting one stake into a
clique of k identities earns the clique about 1/k of what the one would. A share is
``pool * weight // total weight``; what rounding leaves stays in the pool (its
funder takes it back after the expiry). Only subjects with a recipient (a
device's own account, a node's owner) share; the others' weight is left out.

Leaves are ``keccak256(keccak256(abi.encode(epoch, index, account, amount)))``
in subject-id order, the tree the Rewards contract checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address

from trustmesh.reputation.merkle import MerkleTree, leaf_hash
from trustmesh.reputation.params import ONE
from trustmesh.reputation.table import ReputationTable

__all__ = ["Distribution", "Share", "distribute", "weights"]


@dataclass(frozen=True)
class Share:
    index: int
    subject: bytes
    account: str
    amount: int

    def leaf(self, epoch: int) -> bytes:
        return leaf_hash(
            encode(["uint256", "uint256", "address", "uint256"],
                   [epoch, self.index, self.account, self.amount])
        )  # fmt: skip


@dataclass(frozen=True)
class Distribution:
    epoch: int
    pool: int
    shares: tuple[Share, ...]
    tree: MerkleTree

    @property
    def root(self) -> bytes:
        return self.tree.root

    @property
    def total(self) -> int:
        """What the shares add up to (at most the pool)."""
        return sum(share.amount for share in self.shares)

    def proof(self, index: int) -> list[bytes]:
        return self.tree.proof(index)


def weights(table: ReputationTable) -> dict[bytes, int]:
    """Each subject's weight in ``table`` (see the module's formula)."""
    result = {}
    for subject in table.rows:
        row = table.rows[subject]
        result[subject] = row.trust * row.score // ONE // (1 + len(row.attesters))
    return result


def distribute(
    epoch: int, pool: int, weight: Mapping[bytes, int], recipients: Mapping[bytes, str]
) -> Distribution:
    """Share ``pool`` among the subjects with a recipient, by ``weight``."""
    if pool <= 0:
        raise ValueError("a reward pool must be positive")
    if any(value < 0 for value in weight.values()):
        raise ValueError("weights must not be negative")
    sharing = sorted(s for s in weight if s in recipients and weight[s] > 0)
    total = sum(weight[s] for s in sharing)
    shares = tuple(
        Share(index, subject, to_checksum_address(recipients[subject]),
              pool * weight[subject] // total)
        for index, subject in enumerate(sharing)
    )  # fmt: skip
    return Distribution(epoch, pool, shares, MerkleTree([s.leaf(epoch) for s in shares]))
