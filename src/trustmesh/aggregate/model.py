"""The per-reading function f of an aggregate: a small integer model, the same
in Python and on-chain (pure: integers in, an integer out).

A model is a kind and a list of int256 parameters, committed by the hash of its
ABI encoding, ``keccak256(abi.encode(uint8 kind, int256[] params))``, so a
contract can evaluate the committed model on the one input a challenge names:

- ``identity``: f(v) = v (plain aggregates: the mean temperature);
- ``threshold(limit)``: 1 if v ≥ limit, else 0 (count-above);
- ``linear(weight, bias, shift)``: (weight·v + bias) >> shift (fixed point; the
  shift floors, as int256's arithmetic shift does on-chain);
- ``logistic(weight, bias, shift)``: a hard sigmoid of z = (weight·v + bias) >> shift,
  clamp(ONE/2 + z/4, 0, ONE) with ONE = 2^16 (z/4 floored too);
- ``tree(nodes, leaves)``: a decision tree of at most 15 nodes, each
  (threshold, left, right): v < threshold goes left; a child ≥ 0 is a node (always
  a later one, so every walk ends), a child < 0 the leaf -child-1, whose value
  is f(v).

Every intermediate stays within int256, or the model is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

from eth_abi.abi import encode

from trustmesh.errors import InvalidAggregate
from trustmesh.reputation.merkle import keccak256

__all__ = ["ONE", "Kind", "Model"]

ONE = 1 << 16  # the logistic model's 1.0
MAX_NODES = 15
INT256_MIN, INT256_MAX = -(1 << 255), (1 << 255) - 1
MAX_SHIFT = 255


class Kind(IntEnum):
    IDENTITY = 0
    THRESHOLD = 1
    LINEAR = 2
    LOGISTIC = 3
    TREE = 4


_ARITY = {Kind.IDENTITY: 0, Kind.THRESHOLD: 1, Kind.LINEAR: 3, Kind.LOGISTIC: 3}


def _int256(value: int, what: str) -> int:
    if not INT256_MIN <= value <= INT256_MAX:
        raise InvalidAggregate(f"{what} is outside int256")
    return value


@dataclass(frozen=True)
class Model:
    kind: Kind
    params: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            raise InvalidAggregate(f"unknown model kind {self.kind!r}")
        for k, param in enumerate(self.params):
            if type(param) is not int:
                raise InvalidAggregate(f"model parameter {k} is not an integer")
            _int256(param, f"model parameter {k}")
        if self.kind is Kind.TREE:
            self._check_tree()
        elif len(self.params) != _ARITY[self.kind]:
            raise InvalidAggregate(
                f"a {self.kind.name.lower()} model takes {_ARITY[self.kind]} parameters"
            )
        elif self.kind in (Kind.LINEAR, Kind.LOGISTIC) and not 0 <= self.params[2] <= MAX_SHIFT:
            raise InvalidAggregate(f"a shift is 0..{MAX_SHIFT}")

    # --- the models ------------------------------------------------------------------

    @classmethod
    def identity(cls) -> Model:
        return cls(Kind.IDENTITY)

    @classmethod
    def threshold(cls, limit: int) -> Model:
        return cls(Kind.THRESHOLD, (limit,))

    @classmethod
    def linear(cls, weight: int, bias: int, shift: int) -> Model:
        return cls(Kind.LINEAR, (weight, bias, shift))

    @classmethod
    def logistic(cls, weight: int, bias: int, shift: int) -> Model:
        return cls(Kind.LOGISTIC, (weight, bias, shift))

    @classmethod
    def tree(cls, nodes: list[tuple[int, int, int]], leaves: list[int]) -> Model:
        """``nodes``: (threshold, left, right) each; ``leaves``: the outputs."""
        flat = [len(nodes)] + [x for node in nodes for x in node] + list(leaves)
        return cls(Kind.TREE, tuple(flat))

    @classmethod
    def parse(cls, spec: str) -> Model:
        """A model from its command-line form: ``identity``, ``threshold:LIMIT``,
        ``linear:W,B,SHIFT``, ``logistic:W,B,SHIFT`` or ``tree:JSON`` with JSON
        ``{"nodes": [[threshold, left, right], …], "leaves": [value, …]}``."""
        kind, _, rest = spec.strip().partition(":")
        try:
            if kind == "tree":
                document = json.loads(rest)
                nodes = [tuple(node) for node in document["nodes"]]
                if any(len(node) != 3 for node in nodes):
                    raise InvalidAggregate("a tree node is [threshold, left, right]")
                return cls.tree(nodes, list(document["leaves"]))
            params = tuple(int(p) for p in rest.split(",")) if rest else ()
            return cls(Kind[kind.upper()], params)
        except KeyError:
            raise InvalidAggregate(
                f"unknown model {spec!r}: identity, threshold:L, linear:W,B,S, logistic:W,B,S "
                "or tree:JSON"
            ) from None
        except (ValueError, TypeError) as exc:
            raise InvalidAggregate(f"malformed model {spec!r}: {exc}") from None

    # --- evaluation --------------------------------------------------------------------

    def apply(self, value: int) -> int:
        """f(value); InvalidAggregate if an intermediate leaves int256."""
        v = _int256(value, "the value")
        p = self.params
        if self.kind is Kind.IDENTITY:
            return v
        if self.kind is Kind.THRESHOLD:
            return 1 if v >= p[0] else 0
        if self.kind in (Kind.LINEAR, Kind.LOGISTIC):
            product = _int256(p[0] * v, "weight * value")
            z = _int256(product + p[1], "weight * value + bias") >> p[2]
            if self.kind is Kind.LINEAR:
                return z
            return min(max(ONE // 2 + (z >> 2), 0), ONE)
        return self._walk(v)

    def _walk(self, v: int) -> int:
        count, p = self.params[0], self.params
        node = 0
        while True:  # each step goes to a later node or a leaf: at most `count` steps
            threshold, left, right = p[1 + 3 * node : 4 + 3 * node]
            child = left if v < threshold else right
            if child < 0:
                return p[1 + 3 * count + (-child - 1)]
            node = child

    def _check_tree(self) -> None:
        p = self.params
        if not p or not 1 <= p[0] <= MAX_NODES:
            raise InvalidAggregate(f"a tree has 1 to {MAX_NODES} nodes")
        count = p[0]
        leaves = len(p) - 1 - 3 * count
        if leaves < 1:
            raise InvalidAggregate("a tree needs its nodes' triples and at least one leaf")
        for node in range(count):
            for child in p[2 + 3 * node : 4 + 3 * node]:
                if child >= 0 and not node < child < count:
                    raise InvalidAggregate(f"node {node}'s child {child} is not a later node")
                if child < 0 and -child - 1 >= leaves:
                    raise InvalidAggregate(f"node {node}'s child {child} names no leaf")

    # --- commitment ----------------------------------------------------------------------

    def encode(self) -> bytes:
        """``abi.encode(uint8 kind, int256[] params)``: what a contract evaluates."""
        return encode(["uint8", "int256[]"], [int(self.kind), list(self.params)])

    @property
    def hash(self) -> bytes:
        return keccak256(self.encode())
