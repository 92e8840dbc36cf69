# pragma version ~=0.4.3
"""
@title trustmesh AggregateModel
@notice The per-reading models of aggregate claims, evaluated on-chain exactly as
        `trustmesh.aggregate.model` evaluates them: so a claim's f(value) can be
        checked on the one input a challenge names. A model is (kind, int256
        params), committed by `keccak256(abi.encode(uint8 kind, int256[] params))`.
        identity: v. threshold(limit): 1 if v >= limit else 0.
        linear(w, b, shift): (w * v + b) >> shift (arithmetic shift: a floor).
        logistic(w, b, shift): z as linear; clamp(ONE / 2 + (z >> 2), 0, ONE).
        tree: [n, (threshold, left, right) * n, leaves...]: v < threshold goes
        left; a child >= 0 is a later node, < 0 the leaf -child - 1.
        Arithmetic is checked: what overflows int256 reverts, as the Python side
        refuses it.
"""

MAX_PARAMS: constant(uint256) = 64  # a tree of 15 nodes and 16 leaves needs 62
MAX_NODES: constant(uint256) = 15
ONE: constant(int256) = 65536


@external
@pure
def model_hash(kind: uint8, params: DynArray[int256, MAX_PARAMS]) -> bytes32:
    return keccak256(abi_encode(kind, params))


@external
@pure
def evaluate(kind: uint8, params: DynArray[int256, MAX_PARAMS], v: int256) -> int256:
    """
    @notice f(v) for the model (kind, params); reverts on a malformed model.
    """
    return self._evaluate(kind, params, v)


@internal
@pure
def _evaluate(kind: uint8, params: DynArray[int256, MAX_PARAMS], v: int256) -> int256:
    if kind == 0:
        assert len(params) == 0, "model: identity takes no parameters"
        return v
    if kind == 1:
        assert len(params) == 1, "model: threshold takes 1 parameter"
        if v >= params[0]:
            return 1
        return 0
    if kind == 2 or kind == 3:
        assert len(params) == 3, "model: linear and logistic take 3 parameters"
        assert params[2] >= 0 and params[2] <= 255, "model: shift out of range"
        z: int256 = (params[0] * v + params[1]) >> convert(params[2], uint256)
        if kind == 2:
            return z
        return min(max(ONE // 2 + (z >> 2), 0), ONE)
    assert kind == 4, "model: unknown kind"
    return self._walk(params, v)


@internal
@pure
def _walk(params: DynArray[int256, MAX_PARAMS], v: int256) -> int256:
    assert len(params) > 0, "model: a tree has nodes"
    count: int256 = params[0]
    assert count >= 1 and count <= convert(MAX_NODES, int256), "model: 1 to 15 nodes"
    leaves: int256 = convert(len(params), int256) - 1 - 3 * count
    assert leaves >= 1, "model: a tree needs a leaf"
    # The whole tree is checked, not just the walk: a model is well-formed or refused,
    # whatever the input, as the Python side refuses it.
    for n: uint256 in range(MAX_NODES):
        i: int256 = convert(n, int256)
        if i == count:
            break
        for side: uint256 in range(2):
            child: int256 = params[2 + 3 * n + side]
            if child < 0:
                assert -child - 1 < leaves, "model: no such leaf"
            else:
                assert child > i and child < count, "model: a child is a later node"
    node: int256 = 0
    for step: uint256 in range(MAX_NODES):
        at: uint256 = convert(1 + 3 * node, uint256)
        child: int256 = params[at + 2]
        if v < params[at]:
            child = params[at + 1]
        if child < 0:
            return params[convert(1 + 3 * count - child - 1, uint256)]
        node = child
    raise "model: the tree does not end"
