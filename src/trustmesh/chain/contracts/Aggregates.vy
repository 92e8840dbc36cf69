# pragma version ~=0.4.3
"""
@title trustmesh Aggregates
@notice Optimistic claims of computations over logged readings, each lie
        provable in one O(log n) step. A claimer posts, with a bond, a query
        (devices, logs, sensor, window, model, reduction), the logs' latest
        anchored sizes (the snapshot the claim reads), the root of a Merkle-sum
        tree over the matching readings and the result. Until the challenge
        window closes anyone may prove that the claim lies, by one of:
        - a wrong result: the root's totals give another result or count;
        - a node that does not add up: its totals are not its children's join
          (a leaf's are not (1, f, f, f));
        - a wrong model output: the committed model, evaluated here on the
          leaf's value, gives another f (or none);
        - a forged leaf: it is not the logged reading (its log is not read, its
          index is outside the snapshot, the entry there is another, is longer
          than 512 bytes, or is not a validly signed reading, or its fields are
          not the leaf's or do not match the query), or its device is not in
          the query;
        - leaves out of order (or one reading twice);
        - an omitted reading: one that matches the query, in the snapshot,
          whose (device, seq) falls between two adjacent leaves.
        A proven lie refutes the claim, pays the prover half the bond and burns
        the rest (so a liar gains nothing by refuting itself first); an
        unrefuted claim is final after the window, its bond returns to the
        claimer (or, if it refuses it, is owed to it: `collect` takes it), and
        any contract reads its result with `result_of`.
@dev    Tree shape (trustmesh.aggregate.tree): every node is
        keccak256(abi.encode(a, b, count, sum, min, max)); a leaf node has
        a = keccak256(abi.encode(origin, index, leaf_hash, device, seq, ts, value,
        fx)), b = 0 and totals (1, fx, fx, fx); an inner node's a and b are its
        children's hashes. A path step gives the sibling's hash and totals; the
        parent is recomputed, so a leaf's rank is the count of its left siblings.
        Readings are read through the Disputes contract (parse and ES256
        signature, as `verify_reading` does) and models through AggregateModel.
"""

from snekmate.utils import merkle_proof_verification as mpv

interface LogAnchor:
    def latest(origin_id: bytes32) -> (uint256, bytes32, uint256, uint256): view


interface Disputes:
    def included(origin_id: bytes32, size: uint256, index: uint256, leaf: bytes32, proof: DynArray[bytes32, MAX_PROOF]) -> bool: view
    def signed_reading(entry: Bytes[MAX_ENTRY]) -> VerifiedReading: view


interface AggregateModel:
    def evaluate(kind: uint8, params: DynArray[int256, MAX_PARAMS], v: int256) -> int256: pure


MAX_LOGS: constant(uint256) = 16
MAX_SENSOR: constant(uint256) = 64
MAX_ENTRY: constant(uint256) = 8192
MAX_PROOF: constant(uint256) = 64
MAX_DEPTH: constant(uint256) = 64
MAX_PARAMS: constant(uint256) = 64
MAX_URI: constant(uint256) = 256
MAX_COUNT: constant(uint256) = 2**48
LEAF_PREFIX: constant(bytes1) = 0x00
PENDING: constant(uint256) = 1
REFUTED: constant(uint256) = 2
FINAL: constant(uint256) = 3
# Readings longer than this are not aggregated (a claim that holds one lies): a
# reading's parse here costs gas in proportion to its items, and this bounds it
# (~1M gas), so that every reading a claim holds can be checked in one call.
MAX_AGGREGATE_ENTRY: constant(uint256) = 512


struct VerifiedReading:
    device_id: bytes32
    seq: uint256
    ts: uint256
    sensor: String[MAX_SENSOR]
    value: int256


struct Query:
    devices_root: bytes32  # sorted-pair tree over abi.encode(position, device id)
    device_count: uint256
    logs: DynArray[bytes32, MAX_LOGS]  # origin ids, ascending
    sensor: Bytes[MAX_SENSOR]
    start: uint256  # ms, included
    end: uint256  # ms, excluded
    model: bytes32  # keccak256(abi.encode(uint8 kind, int256[] params))
    reduction: uint8  # count, sum, mean, min, max


struct Leaf:
    origin: bytes32
    index: uint256
    leaf_hash: bytes32
    device: bytes32
    seq: uint256
    ts: uint256
    value: int256
    fx: int256


struct Opening:
    a: bytes32
    b: bytes32
    count: uint256
    sum: int256
    min: int256
    max: int256


struct Step:
    hash: bytes32
    count: uint256
    sum: int256
    min: int256
    max: int256
    left: bool


struct Placed:
    leaf: Leaf
    path: DynArray[Step, MAX_DEPTH]


struct DeviceProof:
    position: uint256
    device: bytes32
    proof: DynArray[bytes32, MAX_PROOF]


struct Logged:
    index: uint256
    entry: Bytes[MAX_ENTRY]
    proof: DynArray[bytes32, MAX_PROOF]  # inclusion in the snapshot's tree of its log


struct Model:
    kind: uint8
    params: DynArray[int256, MAX_PARAMS]


struct Claim:
    query_hash: bytes32
    result: int256
    # claimer << 96 | count << 48 | deadline << 8 | state
    meta: uint256


event Posted:
    claim_id: indexed(bytes32)
    claimer: indexed(address)
    query_hash: bytes32
    root: bytes32
    result: int256
    count: uint256
    sizes: DynArray[uint256, MAX_LOGS]
    deadline: uint256
    uri: String[MAX_URI]


event Refuted:
    claim_id: indexed(bytes32)
    kind: String[16]
    reason: String[48]
    prover: indexed(address)
    paid: uint256


event Owed:
    claimer: indexed(address)
    amount: uint256


event Collected:
    claimer: indexed(address)
    amount: uint256


event Finalized:
    claim_id: indexed(bytes32)
    result: int256


log_anchor: public(immutable(address))
disputes: public(immutable(address))
evaluator: public(immutable(address))
bond: public(immutable(uint256))
window: public(immutable(uint256))  # seconds a claim can be challenged
claims: HashMap[bytes32, Claim]
owed: public(HashMap[address, uint256])  # bonds their claimers refused at release


@deploy
def __init__(log_anchor_address: address, disputes_address: address, model_address: address,
             claim_bond: uint256, challenge_window: uint256):
    log_anchor = log_anchor_address
    disputes = disputes_address
    evaluator = model_address
    bond = claim_bond
    window = challenge_window


# --- claims -----------------------------------------------------------------------


@external
@pure
def query_hash(query: Query) -> bytes32:
    return self._query_hash(query)


@external
@pure
def claim_id(query_hash: bytes32, sizes: DynArray[uint256, MAX_LOGS], root: bytes32) -> bytes32:
    return self._claim_id(query_hash, sizes, root)


@external
@payable
def post(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32, result: int256,
         count: uint256, uri: String[MAX_URI]) -> bytes32:
    """
    @notice Claim that `result` is the query's answer over the logs' latest
            anchored trees (`sizes`, one per log of the query), committed by the
            Merkle-sum tree `root` over `count` readings, published at `uri`.
            Send the bond along.
    @return The claim's id.
    """
    assert msg.value == bond, "aggregates: send the bond"
    assert len(query.logs) > 0 and len(sizes) == len(query.logs), "aggregates: one size per log"
    assert query.device_count > 0, "aggregates: no devices"
    assert query.start < query.end, "aggregates: empty window"
    assert query.reduction <= 4, "aggregates: unknown reduction"
    assert count > 0 and count < MAX_COUNT, "aggregates: count out of range"
    previous: bytes32 = empty(bytes32)
    for k: uint256 in range(MAX_LOGS):
        if k == len(sizes):
            break
        assert convert(query.logs[k], uint256) > convert(previous, uint256), "aggregates: logs not ascending"
        previous = query.logs[k]
        size: uint256 = (staticcall LogAnchor(log_anchor).latest(query.logs[k]))[0]
        assert size > 0, "aggregates: a log has no anchor"
        assert size == sizes[k], "aggregates: sizes are not the latest anchors"
    query_hash: bytes32 = self._query_hash(query)
    claim_id: bytes32 = self._claim_id(query_hash, sizes, root)
    assert self.claims[claim_id].meta & 255 in [0, REFUTED], "aggregates: already claimed"
    deadline: uint256 = block.timestamp + window
    self.claims[claim_id] = Claim(
        query_hash=query_hash,
        result=result,
        meta=(convert(msg.sender, uint256) << 96) | (count << 48) | (deadline << 8) | PENDING,
    )
    log Posted(claim_id=claim_id, claimer=msg.sender, query_hash=query_hash, root=root,
               result=result, count=count, sizes=sizes, deadline=deadline, uri=uri)
    return claim_id


@external
@view
def status(claim_id: bytes32) -> (uint256, address, uint256):
    """
    @notice (state, claimer, deadline): state 0 none, 1 pending (final once the
            deadline has passed), 2 refuted, 3 final with its bond returned (or
            owed).
    """
    meta: uint256 = self.claims[claim_id].meta
    return meta & 255, convert(convert(meta >> 96, uint160), address), (meta >> 8) & (2**40 - 1)


@external
@view
def result_of(claim_id: bytes32) -> (bytes32, int256):
    """
    @notice The (query hash, result) of a final claim; reverts if it is not final.
    """
    claim: Claim = self.claims[claim_id]
    assert self._final(claim.meta), "aggregates: not final"
    return claim.query_hash, claim.result


@external
@nonreentrant
def release(claim_id: bytes32):
    """
    @notice Make a claim past its window final and return its bond to its
            claimer (anyone may call). A claimer that refuses the bond is owed
            it: `collect` takes it.
    """
    claim: Claim = self.claims[claim_id]
    assert self._final(claim.meta) and claim.meta & 255 == PENDING, "aggregates: not releasable"
    self.claims[claim_id].meta = claim.meta - PENDING + FINAL
    log Finalized(claim_id=claim_id, result=claim.result)
    claimer: address = convert(convert(claim.meta >> 96, uint160), address)
    # As `send` pays (the 2,300-gas stipend), but a refusal is owed, not a revert: a
    # claimer that refused its bond would otherwise keep its claim pending for good.
    if not raw_call(claimer, b"", value=bond, gas=0, revert_on_failure=False):
        self.owed[claimer] += bond
        log Owed(claimer=claimer, amount=bond)


@external
@nonreentrant
def collect():
    """
    @notice Take the bonds this claimer refused when its claims were released.
    """
    amount: uint256 = self.owed[msg.sender]
    assert amount > 0, "aggregates: nothing owed"
    self.owed[msg.sender] = 0
    log Collected(claimer=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)


# --- challenges -------------------------------------------------------------------


@external
@nonreentrant
def prove_wrong_result(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32,
                       top: Opening):
    """
    @notice The root's totals (`top` is what the root is the hash of) give another
            result, or another count, than the claim's.
    """
    claim_id: bytes32 = self._pending(query, sizes, root)
    assert self._hash(top) == root, "aggregates: not the root's opening"
    claim: Claim = self.claims[claim_id]
    if top.count != (claim.meta >> 48) & (2**48 - 1):
        self._refute(claim_id, "wrong result", "the count is not the root's")
        return
    if top.count == 0:
        self._refute(claim_id, "wrong result", "the root holds no readings")
        return
    expected: int256 = top.max
    if query.reduction == 0:
        expected = convert(top.count, int256)
    elif query.reduction == 1:
        expected = top.sum
    elif query.reduction == 2:
        expected = top.sum // convert(top.count, int256)  # truncates toward zero
    elif query.reduction == 3:
        expected = top.min
    assert expected != claim.result, "aggregates: the result follows from the root"
    self._refute(claim_id, "wrong result", "the result does not follow from the root")


@external
@nonreentrant
def prove_bad_sum(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32,
                  node: Opening, path: DynArray[Step, MAX_DEPTH], left: Opening, right: Opening,
                  leaf: Leaf):
    """
    @notice A node of the tree whose totals are not its children's join (`left`
            and `right` are what its children are the hashes of), or a leaf node
            (b = 0) whose totals are not (1, fx, fx, fx) of its `leaf`.
    """
    claim_id: bytes32 = self._pending(query, sizes, root)
    top: bytes32 = empty(bytes32)
    rank: uint256 = 0
    total: uint256 = 0
    top, rank, total = self._climb(self._hash(node), node.count, node.sum, node.min, node.max, path)
    assert top == root, "aggregates: the node is not in the tree"
    if node.b == empty(bytes32):
        assert keccak256(abi_encode(leaf)) == node.a, "aggregates: not the node's leaf"
        assert node.count != 1 or node.sum != leaf.fx or node.min != leaf.fx or node.max != leaf.fx, "aggregates: the leaf node adds up"
        self._refute(claim_id, "bad sum", "a leaf node's totals are not its value's")
        return
    assert self._hash(left) == node.a and self._hash(right) == node.b, "aggregates: not the node's children"
    assert (
        node.count != left.count + right.count
        or node.sum != left.sum + right.sum
        or node.min != min(left.min, right.min)
        or node.max != max(left.max, right.max)
    ), "aggregates: the node adds up"
    self._refute(claim_id, "bad sum", "a node's totals are not its children's")


@external
@nonreentrant
def prove_wrong_output(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32,
                       placed: Placed, model: Model):
    """
    @notice The committed model gives another f for the leaf's value than the
            leaf's, or is not defined on it.
    """
    claim_id: bytes32 = self._pending(query, sizes, root)
    self._in_tree(placed, root)
    assert keccak256(abi_encode(model.kind, model.params)) == query.model, "aggregates: not the query's model"
    success: bool = False
    response: Bytes[32] = b""
    before: uint256 = msg.gas
    success, response = raw_call(
        evaluator,
        abi_encode(model.kind, model.params, placed.leaf.value, method_id=method_id("evaluate(uint8,int256[],int256)")),
        max_outsize=32, is_static_call=True, revert_on_failure=False,
    )
    if not success:
        self._starved(before)
        self._refute(claim_id, "wrong output", "the model is not defined on the value")
        return
    assert convert(extract32(response, 0), int256) != placed.leaf.fx, "aggregates: the output is right"
    self._refute(claim_id, "wrong output", "the model gives another output")


@external
@nonreentrant
def prove_forged_leaf(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32,
                      placed: Placed, logged: Logged):
    """
    @notice The leaf is not the logged reading: its log is not one the query
            reads, its index is outside the snapshot, the snapshot holds another
            entry there (`logged`, with its inclusion proof), that entry is not a
            validly signed reading, or its fields are not the leaf's or do not
            match the query's sensor and window.
    """
    claim_id: bytes32 = self._pending(query, sizes, root)
    self._in_tree(placed, root)
    leaf: Leaf = placed.leaf
    size: uint256 = 0
    for k: uint256 in range(MAX_LOGS):
        if k == len(query.logs):
            break
        if query.logs[k] == leaf.origin:
            size = sizes[k]
    if size == 0:
        self._refute(claim_id, "forged leaf", "its log is not one the query reads")
        return
    if leaf.index >= size:
        self._refute(claim_id, "forged leaf", "its index is outside the snapshot")
        return
    entry_hash: bytes32 = sha256(concat(LEAF_PREFIX, logged.entry))
    assert staticcall Disputes(disputes).included(leaf.origin, size, leaf.index, entry_hash, logged.proof), "aggregates: the entry is not in the snapshot"
    if entry_hash != leaf.leaf_hash:
        self._refute(claim_id, "forged leaf", "the log holds another entry there")
        return
    if len(logged.entry) > MAX_AGGREGATE_ENTRY:
        self._refute(claim_id, "forged leaf", "the entry is too long to aggregate")
        return
    success: bool = False
    response: Bytes[288] = b""
    before: uint256 = msg.gas
    success, response = raw_call(
        disputes,
        abi_encode(logged.entry, method_id=method_id("signed_reading(bytes)")),
        max_outsize=288, is_static_call=True, revert_on_failure=False,
    )
    if not success:
        self._starved(before)
        self._refute(claim_id, "forged leaf", "the entry is not a valid reading")
        return
    reading: VerifiedReading = abi_decode(response, VerifiedReading)
    if reading.device_id != leaf.device or reading.seq != leaf.seq or reading.ts != leaf.ts or reading.value != leaf.value:
        self._refute(claim_id, "forged leaf", "the reading is not the leaf")
        return
    assert not self._matches(query, reading), "aggregates: the leaf is the logged reading"
    self._refute(claim_id, "forged leaf", "the reading does not match the query")


@external
@nonreentrant
def prove_foreign_device(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32,
                         placed: Placed, below: DynArray[DeviceProof, 1],
                         above: DynArray[DeviceProof, 1]):
    """
    @notice The leaf's device is not in the query: `below` and `above` are the
            query's adjacent devices around it (one is left out at either end).
    """
    claim_id: bytes32 = self._pending(query, sizes, root)
    self._in_tree(placed, root)
    device: bytes32 = placed.leaf.device
    assert len(below) + len(above) > 0, "aggregates: name the neighbours"
    if len(below) == 1:
        self._member(query, below[0])
        assert convert(below[0].device, uint256) < convert(device, uint256), "aggregates: not below the device"
    if len(above) == 1:
        self._member(query, above[0])
        assert convert(device, uint256) < convert(above[0].device, uint256), "aggregates: not above the device"
    if len(below) == 1 and len(above) == 1:
        assert above[0].position == below[0].position + 1, "aggregates: the neighbours are not adjacent"
    elif len(below) == 1:
        assert below[0].position + 1 == query.device_count, "aggregates: not the last device"
    else:
        assert above[0].position == 0, "aggregates: not the first device"
    self._refute(claim_id, "forged leaf", "its device is not in the query")


@external
@nonreentrant
def prove_disorder(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32,
                   first: Placed, second: Placed):
    """
    @notice Two adjacent leaves out of (device, seq) order, or with one key.
    """
    claim_id: bytes32 = self._pending(query, sizes, root)
    rank_first: uint256 = self._in_tree(first, root)
    assert self._in_tree(second, root) == rank_first + 1, "aggregates: the leaves are not adjacent"
    assert not self._before(first.leaf.device, first.leaf.seq, second.leaf.device, second.leaf.seq), "aggregates: the leaves are in order"
    self._refute(claim_id, "disorder", "two leaves out of order")


@external
@nonreentrant
def prove_omitted(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32,
                  before: DynArray[Placed, 1], after: DynArray[Placed, 1], at: uint256,
                  logged: Logged, device: DeviceProof, model: Model):
    """
    @notice A reading in the snapshot of the query's `at`-th log that matches
            the query (its device is in the set: `device`; f is defined on its
            value: `model`) and whose (device, seq) falls strictly between two
            adjacent leaves, `before` and `after` (one is left out at either end).
    """
    claim_id: bytes32 = self._pending(query, sizes, root)
    assert at < len(query.logs), "aggregates: no such log"
    assert len(logged.entry) <= MAX_AGGREGATE_ENTRY, "aggregates: the entry is too long to aggregate"
    entry_hash: bytes32 = sha256(concat(LEAF_PREFIX, logged.entry))
    assert staticcall Disputes(disputes).included(query.logs[at], sizes[at], logged.index, entry_hash, logged.proof), "aggregates: the entry is not in the snapshot"
    reading: VerifiedReading = staticcall Disputes(disputes).signed_reading(logged.entry)
    assert self._matches(query, reading), "aggregates: the reading does not match the query"
    self._member(query, device)
    assert device.device == reading.device_id, "aggregates: not the reading's device"
    assert keccak256(abi_encode(model.kind, model.params)) == query.model, "aggregates: not the query's model"
    defined: int256 = staticcall AggregateModel(evaluator).evaluate(model.kind, model.params, reading.value)  # or it reverts
    assert len(before) + len(after) > 0, "aggregates: name the adjacent leaves"
    rank: uint256 = 0
    total: uint256 = 0
    if len(before) == 1:
        rank, total = self._placed(before[0], root)
        assert self._before(before[0].leaf.device, before[0].leaf.seq, reading.device_id, reading.seq), "aggregates: the reading is not after the leaf before"
    if len(after) == 1:
        after_rank: uint256 = 0
        after_rank, total = self._placed(after[0], root)
        assert self._before(reading.device_id, reading.seq, after[0].leaf.device, after[0].leaf.seq), "aggregates: the reading is not before the leaf after"
        if len(before) == 1:
            assert after_rank == rank + 1, "aggregates: the leaves are not adjacent"
        else:
            assert after_rank == 0, "aggregates: not the first leaf"
    else:
        assert rank + 1 == total, "aggregates: not the last leaf"
    self._refute(claim_id, "omitted", "a matching reading is not in the tree")


# --- internals --------------------------------------------------------------------


@internal
@pure
def _query_hash(query: Query) -> bytes32:
    return keccak256(abi_encode(query.devices_root, query.device_count, query.logs, query.sensor,
                                query.start, query.end, query.model, query.reduction))


@internal
@pure
def _claim_id(query_hash: bytes32, sizes: DynArray[uint256, MAX_LOGS], root: bytes32) -> bytes32:
    return keccak256(abi_encode(query_hash, sizes, root))


@internal
@view
def _final(meta: uint256) -> bool:
    state: uint256 = meta & 255
    return state == FINAL or (state == PENDING and block.timestamp >= (meta >> 8) & (2**40 - 1))


@internal
@view
def _pending(query: Query, sizes: DynArray[uint256, MAX_LOGS], root: bytes32) -> bytes32:
    claim_id: bytes32 = self._claim_id(self._query_hash(query), sizes, root)
    meta: uint256 = self.claims[claim_id].meta
    assert meta & 255 == PENDING, "aggregates: no pending claim"
    assert block.timestamp < (meta >> 8) & (2**40 - 1), "aggregates: the window has closed"
    return claim_id


@internal
@view
def _starved(before: uint256):
    """Revert if a failed sub-call may have failed for want of gas: one that ran out
    used all but 1/64 of what was left (EIP-150), which proves nothing of its input."""
    assert msg.gas * 32 > before, "aggregates: send more gas to check the leaf"


@internal
def _refute(claim_id: bytes32, kind: String[16], reason: String[48]):
    self.claims[claim_id].meta = self.claims[claim_id].meta - PENDING + REFUTED
    paid: uint256 = bond // 2  # the rest stays here, burned
    log Refuted(claim_id=claim_id, kind=kind, reason=reason, prover=msg.sender, paid=paid)
    raw_call(msg.sender, b"", value=paid)


@internal
@pure
def _hash(node: Opening) -> bytes32:
    return keccak256(abi_encode(node.a, node.b, node.count, node.sum, node.min, node.max))


@internal
@pure
def _climb(start: bytes32, count: uint256, sum: int256, low: int256, high: int256,
           path: DynArray[Step, MAX_DEPTH]) -> (bytes32, uint256, uint256):
    """The root the path leads to, the start's rank (leaves left of it) and the
    root's count."""
    node: bytes32 = start
    rank: uint256 = 0
    c: uint256 = count
    s: int256 = sum
    lo: int256 = low
    hi: int256 = high
    for step: Step in path:
        c += step.count
        s += step.sum
        lo = min(lo, step.min)
        hi = max(hi, step.max)
        if step.left:
            rank += step.count
            node = keccak256(abi_encode(step.hash, node, c, s, lo, hi))
        else:
            node = keccak256(abi_encode(node, step.hash, c, s, lo, hi))
    return node, rank, c


@internal
@pure
def _placed(placed: Placed, root: bytes32) -> (uint256, uint256):
    """(rank, the root's count) of a leaf; reverts unless it is in the tree."""
    leaf: Leaf = placed.leaf
    one: uint256 = 1
    start: bytes32 = keccak256(abi_encode(keccak256(abi_encode(leaf)), empty(bytes32), one, leaf.fx, leaf.fx, leaf.fx))
    top: bytes32 = empty(bytes32)
    rank: uint256 = 0
    total: uint256 = 0
    top, rank, total = self._climb(start, 1, leaf.fx, leaf.fx, leaf.fx, placed.path)
    assert top == root, "aggregates: the leaf is not in the tree"
    return rank, total


@internal
@pure
def _in_tree(placed: Placed, root: bytes32) -> uint256:
    rank: uint256 = 0
    total: uint256 = 0
    rank, total = self._placed(placed, root)
    return rank


@internal
@pure
def _member(query: Query, proof: DeviceProof):
    assert proof.position < query.device_count, "aggregates: no such device position"
    leaf: bytes32 = keccak256(keccak256(abi_encode(proof.position, proof.device)))
    assert mpv._verify(proof.proof, query.devices_root, leaf), "aggregates: not in the query's devices"


@internal
@pure
def _before(device_a: bytes32, seq_a: uint256, device_b: bytes32, seq_b: uint256) -> bool:
    """(device_a, seq_a) sorts strictly before (device_b, seq_b)."""
    a: uint256 = convert(device_a, uint256)
    b: uint256 = convert(device_b, uint256)
    return a < b or (a == b and seq_a < seq_b)


@internal
@pure
def _matches(query: Query, reading: VerifiedReading) -> bool:
    """The reading's sensor and time match the query (its device and f are
    checked where they are needed)."""
    return (
        keccak256(reading.sensor) == keccak256(query.sensor)
        and query.start <= reading.ts
        and reading.ts < query.end
    )
