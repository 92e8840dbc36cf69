# pragma version ~=0.4.3
"""
@title trustmesh LogAnchor
@notice Final checkpoints of each log, anchored so that history cannot be
        rewritten: a new checkpoint is accepted only from the origin's
        registered node, and only with a valid RFC 9162 consistency proof from
        the last anchored checkpoint, checked here, on-chain.
@dev    The root of every anchored tree is kept (fraud proofs name any of
        them); the size anchored before it, the block and the time are kept
        for the latest anchor (a receipt its latest anchor covered after the
        deadline is proven late by these) and logged for every one. One new
        storage slot per anchor keeps the cost per reading low. Logs are keyed by `origin_id = sha256(origin)`, as in the
        Registry. Tree sizes, block numbers and times must fit in 64 bits.
"""

interface Registry:
    def node_operator(origin_id: bytes32) -> address: view


MAX_PROOF: constant(uint256) = 128  # a consistency proof is at most ~2·log2(size) hashes
MAX_ORIGIN: constant(uint256) = 128
NODE_PREFIX: constant(bytes1) = 0x01


event Anchored:
    origin_id: indexed(bytes32)
    size: uint256
    root: bytes32
    block_number: uint256
    timestamp: uint256


registry: public(immutable(address))
# size << 192 | previous anchored size << 128 | block number << 64 | timestamp, of the
# latest anchor of each log: one slot, written by every anchor anyway
latest_packed: HashMap[bytes32, uint256]
roots: public(HashMap[bytes32, HashMap[uint256, bytes32]])
MASK64: constant(uint256) = 2**64 - 1


@deploy
def __init__(registry_address: address):
    registry = registry_address


@external
def anchor(origin: String[MAX_ORIGIN], size: uint256, root: bytes32, proof: DynArray[bytes32, MAX_PROOF]):
    """
    @notice Anchor the checkpoint (size, root) of `origin`.
    @param proof RFC 9162 consistency proof from the last anchored size to `size`
           (empty for the first anchor of a log).
    """
    origin_id: bytes32 = sha256(origin)
    assert staticcall Registry(registry).node_operator(origin_id) == msg.sender, "anchor: not the origin's node"
    assert size <= MASK64, "anchor: size beyond 2**64"
    old_size: uint256 = self.latest_packed[origin_id] >> 192
    assert size > old_size, "anchor: size must grow"
    old_root: bytes32 = self.roots[origin_id][old_size]
    assert self._consistent(old_size, size, old_root, root, proof), "anchor: not consistent with the last anchor"
    self.roots[origin_id][size] = root
    # unsafe_add: the four fields are below 2**64 and do not overlap.
    self.latest_packed[origin_id] = unsafe_add(
        unsafe_add(size << 192, old_size << 128), unsafe_add(block.number << 64, block.timestamp)
    )
    log Anchored(origin_id=origin_id, size=size, root=root, block_number=block.number, timestamp=block.timestamp)


@external
@view
def latest(origin_id: bytes32) -> (uint256, bytes32, uint256, uint256):
    """
    @notice The last anchored checkpoint of a log: size, root, block, time.
    """
    packed: uint256 = self.latest_packed[origin_id]
    size: uint256 = packed >> 192
    return size, self.roots[origin_id][size], (packed >> 64) & MASK64, packed & MASK64


@external
@view
def previous(origin_id: bytes32) -> uint256:
    """
    @notice The size anchored before the latest anchor of a log (0 if none): the
            latest anchor is the first to cover the indices from there up.
    """
    return (self.latest_packed[origin_id] >> 128) & MASK64


@external
@pure
def verify_consistency(old_size: uint256, new_size: uint256, old_root: bytes32, new_root: bytes32, proof: DynArray[bytes32, MAX_PROOF]) -> bool:
    """
    @notice The RFC 9162 §2.1.4.2 check, for anyone to call.
    """
    return self._consistent(old_size, new_size, old_root, new_root, proof)


@internal
@pure
def _node(left: bytes32, right: bytes32) -> bytes32:
    return sha256(concat(NODE_PREFIX, left, right))


@internal
@pure
def _consistent(old_size: uint256, new_size: uint256, old_root: bytes32, new_root: bytes32, proof: DynArray[bytes32, MAX_PROOF]) -> bool:
    # RFC 9162 §2.1.4.2, step by step. The empty tree is a prefix of any tree.
    if old_size > new_size:
        return False
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if old_size == 0:
        return len(proof) == 0
    if len(proof) == 0:
        return False
    # Step 2: when old_size is a power of two, the old root starts the path.
    start: uint256 = 1
    fr: bytes32 = proof[0]
    if old_size & (old_size - 1) == 0:
        start = 0
        fr = old_root
    sr: bytes32 = fr
    # unsafe_sub: both sizes are at least 1 here.
    fn: uint256 = unsafe_sub(old_size, 1)
    sn: uint256 = unsafe_sub(new_size, 1)
    for _: uint256 in range(256):
        if fn & 1 == 0:
            break
        fn = fn >> 1
        sn = sn >> 1
    for i: uint256 in range(start, len(proof), bound=MAX_PROOF):
        c: bytes32 = proof[i]
        if sn == 0:
            return False
        if fn & 1 == 1 or fn == sn:
            fr = self._node(c, fr)
            sr = self._node(c, sr)
            if fn & 1 == 0:
                for _: uint256 in range(256):
                    if fn & 1 == 1 or fn == 0:
                        break
                    fn = fn >> 1
                    sn = sn >> 1
        else:
            sr = self._node(sr, c)
        fn = fn >> 1
        sn = sn >> 1
    return sn == 0 and fr == old_root and sr == new_root
