# pragma version ~=0.4.3
"""
@title trustmesh Disputes
@notice Fraud proofs checked entirely on-chain; each one slashes the liar's
        stake in the Registry, which pays the reporter its share.
        Four kinds: device equivocation (two readings signed by one device
        key under one seq, with different payloads); an invalid entry in an
        anchored tree; a split view (two trees of one log, each signed or
        anchored by its node, that cannot both be true: one of them may be
        the checkpoint of a receipt); and a late log (a checkpoint it signed,
        notarized here, and no anchor at least as large within the maximum
        merge delay).
@dev    Readings are parsed only as far as the proof needs: a reading is
        untagged, deterministic CBOR (as trustmesh logs them), so every item
        has its shortest head and a slice of the entry is the exact encoding
        the signature covers. P-256 signatures are checked with P256VERIFY
        (0x100, EIP-7951); Ed25519 devices are audited off-chain (no
        precompile for them). Checkpoints are C2SP signed notes (a receipt is
        a tlog-proof: an inclusion proof in a signed checkpoint);
        a node signs each with its Ed25519 key and with the P-256 key it
        registered (`node_proof_key`, signature type 0x02), and the chain
        checks the latter: the note text is rebuilt here from its fields, so
        only notes without extension lines are provable.
"""

interface Registry:
    def device_key_at(device_id: bytes32, seq: uint256) -> Key: view
    def slash_device(device_id: bytes32, amount: uint256, reporter: address) -> uint256: nonpayable
    def device_status(device_id: bytes32) -> uint8: view
    def slash_node(origin_id: bytes32, amount: uint256, reporter: address) -> uint256: nonpayable


    def node_proof_key(origin_id: bytes32) -> Bytes[64]: view


interface LogAnchor:
    def roots(origin_id: bytes32, size: uint256) -> bytes32: view
    def latest(origin_id: bytes32) -> (uint256, bytes32, uint256, uint256): view
    def previous(origin_id: bytes32) -> uint256: view


struct Key:
    alg: int256
    key: Bytes[64]
    from_seq: uint256
    since: uint256


struct Parsed:
    device_id: bytes32
    seq: uint256
    protected_start: uint256  # offset of the protected header's bstr item in the entry
    protected_end: uint256
    payload_start: uint256  # offset of the payload's bstr item
    map_start: uint256  # offset of the payload map inside that byte string
    payload_end: uint256
    payload_hash: bytes32
    r: bytes32
    s: bytes32


P256VERIFY: constant(address) = 0x0000000000000000000000000000000000000100
MAX_ENTRY: constant(uint256) = 8192
# Bounds no valid reading can exceed (an 8 KiB entry holds fewer items than
# bytes), so an honest node is never slashed for a reading too big to parse.
MAX_FIELDS: constant(uint256) = MAX_ENTRY // 2
MAX_ITEMS: constant(uint256) = MAX_ENTRY
MAX_PROOF: constant(uint256) = 64
MAX_CONSISTENCY: constant(uint256) = 130  # a consistency proof, with the old tree's hash first
MAX_ORIGIN: constant(uint256) = 128
MAX_SENSOR: constant(uint256) = 64
STATUS_ACTIVE: constant(uint8) = 1
LEAF_PREFIX: constant(bytes1) = 0x00
NODE_PREFIX: constant(bytes1) = 0x01
ALG_ES256: constant(int256) = -7
# ["Signature1", …: array(4) head, then the text "Signature1" (RFC 9052 §4.4)
SIG_PREFIX: constant(Bytes[12]) = b"\x84\x6aSignature1"
EMPTY_AAD: constant(Bytes[1]) = b"\x40"
PROTECTED_ES256: constant(Bytes[4]) = b"\xa2\x01\x26\x04"  # {1: -7, 4: …}
MAX_NOTE: constant(uint256) = 512


event InvalidEntryProven:
    origin_id: indexed(bytes32)
    index: uint256
    reason: String[32]
    reporter: indexed(address)
    slashed: uint256


event EquivocationProven:
    device_id: indexed(bytes32)
    seq: uint256
    reporter: indexed(address)
    slashed: uint256


event SplitViewProven:
    origin_id: indexed(bytes32)
    size_a: uint256
    size_b: uint256
    reporter: indexed(address)
    slashed: uint256


event Notarized:
    origin_id: indexed(bytes32)
    size: uint256
    root: bytes32
    notary: indexed(address)
    timestamp: uint256


event LateProven:
    origin_id: indexed(bytes32)
    size: uint256
    notarized_at: uint256
    reporter: indexed(address)
    slashed: uint256


struct VerifiedReading:
    device_id: bytes32
    seq: uint256
    ts: uint256
    sensor: String[MAX_SENSOR]
    value: int256


registry: public(immutable(address))
log_anchor: public(immutable(address))
proven: public(HashMap[bytes32, bool])  # sha256(device_id, seq) of each proven equivocation
invalid_proven: public(HashMap[bytes32, bool])  # sha256(origin_id, index) of each invalid entry
split_proven: public(HashMap[bytes32, bool])  # origin_id of each log proven to show a split view
late_proven: public(HashMap[bytes32, bool])  # sha256(origin_id, size) of each late checkpoint
# origin_id → size → block time of the first notarization of a checkpoint of that size
notarized: public(HashMap[bytes32, HashMap[uint256, uint256]])
max_merge_delay: public(immutable(uint256))  # seconds a node has to anchor a notarized size


@deploy
def __init__(registry_address: address, log_anchor_address: address, merge_delay: uint256):
    """
    @param merge_delay The maximum merge delay, in seconds: a node must anchor a tree
           at least as large as any checkpoint it signed within this long of that
           checkpoint's notarization.
    """
    registry = registry_address
    log_anchor = log_anchor_address
    max_merge_delay = merge_delay


@external
def prove_invalid_entry(
    origin: String[MAX_ORIGIN],
    size: uint256,
    index: uint256,
    entry: Bytes[MAX_ENTRY],
    proof: DynArray[bytes32, MAX_PROOF],
) -> uint256:
    """
    @notice Prove that a node logged an entry it should have refused, inside a
            tree it anchored: an entry that is not a well-formed ES256 reading,
            or whose device is not registered, or whose signature does not
            verify under the key the Registry holds for its seq. Slashes the
            node's whole stake; the reporter gets its share.
    @dev Ed25519 readings are audited off-chain (no precompile): they are not
         provable here and revert.
    @return The amount slashed.
    """
    origin_id: bytes32 = sha256(origin)
    root: bytes32 = staticcall LogAnchor(log_anchor).roots(origin_id, size)
    assert root != empty(bytes32), "disputes: tree not anchored"
    leaf: bytes32 = sha256(concat(LEAF_PREFIX, entry))
    assert self._included(leaf, index, size, proof, root), "disputes: not included"
    slot: bytes32 = sha256(concat(origin_id, convert(index, bytes32)))
    assert not self.invalid_proven[slot], "disputes: already proven"
    reason: String[32] = self._invalidity(entry)
    assert reason != "", "disputes: the entry is valid"
    self.invalid_proven[slot] = True
    slashed: uint256 = extcall Registry(registry).slash_node(origin_id, max_value(uint256), msg.sender)
    log InvalidEntryProven(origin_id=origin_id, index=index, reason=reason, reporter=msg.sender, slashed=slashed)
    return slashed


@external
@view
def parsed_reading(entry: Bytes[MAX_ENTRY]) -> (bytes32, uint256, bool):
    """
    @notice (device id, seq, whether ES256) of a well-formed reading; reverts
            for anything else. Used by `prove_invalid_entry` to tell malformed
            entries apart without reverting itself.
    """
    if len(entry) > 0 and self._byte(entry, 0) == 132:
        major: uint256 = 0
        length: uint256 = 0
        inner: uint256 = 0
        major, length, inner = self._head(entry, 1)
        if major == 2 and length >= 4 and slice(entry, inner, 4) != PROTECTED_ES256:
            return empty(bytes32), 0, False  # well formed enough, not ES256: not provable here
    parsed: Parsed = self._parse(entry)
    return parsed.device_id, parsed.seq, True


@internal
@view
def _invalidity(entry: Bytes[MAX_ENTRY]) -> String[32]:
    """Why the entry is not a valid reading, or "" if it is (or cannot be judged here)."""
    success: bool = False
    response: Bytes[96] = b""
    before: uint256 = msg.gas
    success, response = raw_call(
        self,
        abi_encode(entry, method_id=method_id("parsed_reading(bytes)")),
        max_outsize=96,
        is_static_call=True,
        revert_on_failure=False,
    )
    if not success:
        # A parse that ran out of gas used all but 1/64 of what was left (EIP-150):
        # that is no proof the entry is malformed, so a starved proof reverts.
        assert msg.gas * 32 > before, "disputes: send more gas to parse the entry"
        return "malformed"
    device_id: bytes32 = extract32(response, 0)
    seq: uint256 = convert(extract32(response, 32), uint256)
    es256: bool = convert(extract32(response, 64), uint256) == 1
    assert es256, "disputes: only ES256 readings are proven on-chain"
    if staticcall Registry(registry).device_status(device_id) == 0:
        return "unregistered device"
    key: Key = staticcall Registry(registry).device_key_at(device_id, seq)
    assert key.alg == ALG_ES256, "disputes: only ES256 devices are proven on-chain"
    if not self._signed(entry, self._parse(entry), key.key):
        return "bad signature"
    return ""


@external
@view
def verify_reading(
    origin: String[MAX_ORIGIN],
    size: uint256,
    index: uint256,
    entry: Bytes[MAX_ENTRY],
    proof: DynArray[bytes32, MAX_PROOF],
) -> VerifiedReading:
    """
    @notice Check a device reading trustlessly: it is included (RFC 9162 proof)
            in an anchored tree of `origin`, signed (ES256, P256VERIFY) by the key
            the Registry holds for its device and seq, and its device is active.
            Any contract can consume readings this way, with no oracle committee.
    @param size The size of an anchored tree of the log.
    @param index The reading's index in that tree.
    @param entry The reading as logged (untagged COSE_Sign1).
    @param proof The inclusion proof of `index` in the tree of `size`.
    @return The device id (sha256 of its DID), seq, ts, sensor and integer value.
    """
    root: bytes32 = staticcall LogAnchor(log_anchor).roots(sha256(origin), size)
    assert root != empty(bytes32), "disputes: tree not anchored"
    leaf: bytes32 = sha256(concat(LEAF_PREFIX, entry))
    assert self._included(leaf, index, size, proof, root), "disputes: not included"
    reading: VerifiedReading = self._read(entry)
    status: uint8 = staticcall Registry(registry).device_status(reading.device_id)
    assert status == STATUS_ACTIVE, "disputes: device not active"
    return reading


@external
@view
def included(origin_id: bytes32, size: uint256, index: uint256, leaf: bytes32, proof: DynArray[bytes32, MAX_PROOF]) -> bool:
    """
    @notice Whether `leaf` (an RFC 9162 leaf hash) is at `index` of the anchored
            tree of `size` of the log `origin_id`: false if no such tree is anchored.
    """
    root: bytes32 = staticcall LogAnchor(log_anchor).roots(origin_id, size)
    return root != empty(bytes32) and self._included(leaf, index, size, proof, root)


@external
@view
def signed_reading(entry: Bytes[MAX_ENTRY]) -> VerifiedReading:
    """
    @notice The fields of a reading signed (ES256) by the key the Registry holds
            for its device and seq, whatever the device's status now; reverts for
            anything else. What `verify_reading` checks of the entry itself, for
            contracts that prove inclusion on their own terms (Aggregates).
    """
    return self._read(entry)


@internal
@view
def _read(entry: Bytes[MAX_ENTRY]) -> VerifiedReading:
    parsed: Parsed = self._parse(entry)
    assert staticcall Registry(registry).device_status(parsed.device_id) != 0, "disputes: unregistered device"
    key: Key = staticcall Registry(registry).device_key_at(parsed.device_id, parsed.seq)
    assert key.alg == ALG_ES256, "disputes: only ES256 devices are proven on-chain"
    assert self._signed(entry, parsed, key.key), "disputes: signature invalid"
    start: uint256 = 0
    end: uint256 = 0
    ts_at: uint256 = self._field(entry, parsed.map_start, parsed.payload_end, b"ts")
    major: uint256 = 0
    ts: uint256 = 0
    major, ts, start = self._head(entry, ts_at)
    assert major == 0, "disputes: ts is not an unsigned integer"
    sensor_at: uint256 = self._field(entry, parsed.map_start, parsed.payload_end, b"sensor")
    length: uint256 = 0
    major, length, start = self._head(entry, sensor_at)
    assert major == 3 and length <= MAX_SENSOR, "disputes: sensor is not short text"
    sensor: String[MAX_SENSOR] = convert(slice(entry, start, length), String[MAX_SENSOR])
    value_at: uint256 = self._field(entry, parsed.map_start, parsed.payload_end, b"value")
    argument: uint256 = 0
    major, argument, end = self._head(entry, value_at)
    value: int256 = 0
    if major == 0:
        value = convert(argument, int256)
    elif major == 1:
        value = -1 - convert(argument, int256)
    else:
        raise "disputes: value is not an integer"
    return VerifiedReading(device_id=parsed.device_id, seq=parsed.seq, ts=ts, sensor=sensor, value=value)


@internal
@pure
def _included(leaf: bytes32, index: uint256, size: uint256, proof: DynArray[bytes32, MAX_PROOF], root: bytes32) -> bool:
    # RFC 9162 §2.1.3.2, step by step.
    if index >= size:
        return False
    fn: uint256 = index
    sn: uint256 = size - 1
    r: bytes32 = leaf
    for p: bytes32 in proof:
        if sn == 0:
            return False
        if fn & 1 == 1 or fn == sn:
            r = sha256(concat(NODE_PREFIX, p, r))
            if fn & 1 == 0:
                for _: uint256 in range(256):
                    if fn & 1 == 1 or fn == 0:
                        break
                    fn = fn >> 1
                    sn = sn >> 1
        else:
            r = sha256(concat(NODE_PREFIX, r, p))
        fn = fn >> 1
        sn = sn >> 1
    return sn == 0 and r == root


@external
def prove_equivocation(first: Bytes[MAX_ENTRY], second: Bytes[MAX_ENTRY]) -> uint256:
    """
    @notice Prove that one device signed two different readings with one seq.
            Slashes the device's whole stake; the reporter gets its share.
    @param first A reading, as logged (untagged COSE_Sign1).
    @param second Another reading, same device and seq, different payload.
    @return The amount slashed.
    """
    a: Parsed = self._parse(first)
    b: Parsed = self._parse(second)
    assert a.device_id == b.device_id, "disputes: different devices"
    assert a.seq == b.seq, "disputes: different seqs"
    assert a.payload_hash != b.payload_hash, "disputes: same payload"
    key: Key = staticcall Registry(registry).device_key_at(a.device_id, a.seq)
    assert key.alg == ALG_ES256, "disputes: only ES256 devices are proven on-chain"
    assert self._signed(first, a, key.key), "disputes: first signature invalid"
    assert self._signed(second, b, key.key), "disputes: second signature invalid"
    slot: bytes32 = sha256(concat(a.device_id, convert(a.seq, bytes32)))
    assert not self.proven[slot], "disputes: already proven"
    self.proven[slot] = True
    slashed: uint256 = extcall Registry(registry).slash_device(a.device_id, max_value(uint256), msg.sender)
    log EquivocationProven(device_id=a.device_id, seq=a.seq, reporter=msg.sender, slashed=slashed)
    return slashed


@internal
@view
def _signed(entry: Bytes[MAX_ENTRY], parsed: Parsed, key: Bytes[64]) -> bool:
    # Sig_structure = ["Signature1", protected, h'', payload]: the protected and
    # payload items are sliced from the (deterministic) entry as they are encoded.
    protected: Bytes[MAX_ENTRY] = slice(entry, parsed.protected_start, parsed.protected_end - parsed.protected_start)
    payload: Bytes[MAX_ENTRY] = slice(entry, parsed.payload_start, parsed.payload_end - parsed.payload_start)
    digest: bytes32 = sha256(concat(SIG_PREFIX, protected, EMPTY_AAD, payload))
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        P256VERIFY,
        concat(digest, parsed.r, parsed.s, key),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    # An empty answer (a failed check, or a chain without the precompile) is "no".
    return success and len(response) == 32 and convert(response, uint256) == 1


@internal
@pure
def _byte(data: Bytes[MAX_ENTRY], at: uint256) -> uint256:
    assert at < len(data), "disputes: truncated reading"
    return convert(slice(data, at, 1), uint256)


@internal
@pure
def _head(data: Bytes[MAX_ENTRY], at: uint256) -> (uint256, uint256, uint256):
    """(major type, argument, offset after the head) of the CBOR item at `at`."""
    assert at < len(data), "disputes: truncated reading"
    first: uint256 = convert(slice(data, at, 1), uint256)
    major: uint256 = first >> 5
    info: uint256 = first & 31
    if info < 24:
        return major, info, at + 1
    assert info <= 27, "disputes: not deterministic CBOR"
    size: uint256 = 1 << (info - 24)
    assert at + 1 + size <= len(data), "disputes: truncated reading"
    argument: uint256 = 0
    for k: uint256 in range(8):
        if k == size:
            break
        argument = (argument << 8) | convert(slice(data, at + 1 + k, 1), uint256)
    return major, argument, at + 1 + size


@internal
@pure
def _skip(data: Bytes[MAX_ENTRY], at: uint256) -> uint256:
    """The offset just after the (possibly nested) CBOR item at `at`. Each head is
    read in place, from the 32 bytes at it: a call per item would copy the whole
    entry each time, and a reading of thousands of tiny items would cost more than
    a block's gas to prove. (A reading's items are followed by its 66-byte
    signature, so the 32 bytes are there; where they are not, it is malformed.)"""
    # (unchecked arithmetic: every argument is below 2^64 and there are at most
    # MAX_ITEMS steps, so nothing here comes near 2^256)
    position: uint256 = at
    remaining: uint256 = 1
    for _: uint256 in range(MAX_ITEMS):
        if remaining == 0:
            return position
        word: uint256 = convert(extract32(data, position), uint256)
        major: uint256 = word >> 253
        argument: uint256 = (word >> 248) & 31
        position = unsafe_add(position, 1)
        if argument >= 24:
            assert argument <= 27, "disputes: not deterministic CBOR"
            size: uint256 = 1 << unsafe_sub(argument, 24)
            bits: uint256 = unsafe_mul(size, 8)
            one: uint256 = 1
            argument = (word >> unsafe_sub(248, bits)) & unsafe_sub(one << bits, 1)
            position = unsafe_add(position, size)
        remaining = unsafe_sub(remaining, 1)
        if major == 2 or major == 3:
            position = unsafe_add(position, argument)
        elif major == 4:
            remaining = unsafe_add(remaining, argument)
        elif major == 5:
            remaining = unsafe_add(remaining, unsafe_mul(2, argument))
        elif major == 6:
            remaining = unsafe_add(remaining, 1)
    assert remaining == 0, "disputes: reading too complex"
    return position


@internal
@pure
def _parse(entry: Bytes[MAX_ENTRY]) -> Parsed:
    parsed: Parsed = empty(Parsed)
    assert len(entry) > 0 and self._byte(entry, 0) == 132, "disputes: not an untagged COSE_Sign1"  # 0x84: array(4)
    # protected: bstr holding {1: -7, 4: kid}
    major: uint256 = 0
    length: uint256 = 0
    inner: uint256 = 0
    parsed.protected_start = 1
    major, length, inner = self._head(entry, 1)
    assert major == 2, "disputes: protected header is not a byte string"
    parsed.protected_end = inner + length
    assert slice(entry, inner, 4) == PROTECTED_ES256, "disputes: not an ES256 reading"
    kid_length: uint256 = 0
    kid_start: uint256 = 0
    major, kid_length, kid_start = self._head(entry, inner + 4)
    assert major == 2 and kid_start + kid_length == parsed.protected_end, "disputes: bad kid"
    parsed.device_id = sha256(slice(entry, kid_start, kid_length))
    # unprotected: the empty map
    assert self._byte(entry, parsed.protected_end) == 160, "disputes: unprotected header not empty"  # 0xa0: {}
    parsed.payload_start = parsed.protected_end + 1
    payload_start: uint256 = 0
    major, length, payload_start = self._head(entry, parsed.payload_start)
    assert major == 2, "disputes: payload is not a byte string"
    parsed.payload_end = payload_start + length
    parsed.payload_hash = keccak256(slice(entry, payload_start, length))
    # signature: 64 bytes, r || s
    signature_start: uint256 = 0
    major, length, signature_start = self._head(entry, parsed.payload_end)
    assert major == 2 and length == 64, "disputes: signature is not 64 bytes"
    assert signature_start + 64 == len(entry), "disputes: trailing bytes"
    parsed.r = extract32(entry, signature_start)
    parsed.s = extract32(entry, signature_start + 32)
    parsed.map_start = payload_start
    seq_at: uint256 = self._field(entry, payload_start, parsed.payload_end, b"seq")
    after: uint256 = 0
    major, parsed.seq, after = self._head(entry, seq_at)
    assert major == 0, "disputes: seq is not an unsigned integer"
    return parsed


@internal
@pure
def _field(entry: Bytes[MAX_ENTRY], start: uint256, end: uint256, name: Bytes[8]) -> uint256:
    """The offset of the value of payload field `name` (the map is at `start`)."""
    major: uint256 = 0
    count: uint256 = 0
    position: uint256 = 0
    major, count, position = self._head(entry, start)
    assert major == 5, "disputes: payload is not a map"
    for _: uint256 in range(count, bound=MAX_FIELDS):
        # The key's head, and a one-byte value, read in place as _skip reads: only
        # a value of more than one byte costs a call (a copy of the entry).
        word: uint256 = convert(extract32(entry, position), uint256)
        assert word >> 253 == 3, "disputes: payload keys must be text"
        key_length: uint256 = (word >> 248) & 31
        key_start: uint256 = position + 1
        if key_length >= 24:
            major, key_length, key_start = self._head(entry, position)
        if key_length == len(name) and slice(entry, key_start, key_length) == name:
            assert key_start + key_length < end, "disputes: truncated payload"
            return key_start + key_length
        position = key_start + key_length
        value: uint256 = convert(extract32(entry, position), uint256) >> 248
        if (value < 64 or value >= 224) and value & 31 < 24:  # (major 0, 1 or 7)
            position += 1
        else:
            position = self._skip(entry, position)
        assert position <= end, "disputes: truncated payload"
    raise "disputes: missing field"


@external
def prove_split_view(
    origin: String[MAX_ORIGIN],
    size_a: uint256,
    root_a: bytes32,
    signature_a: Bytes[64],
    size_b: uint256,
    root_b: bytes32,
    signature_b: Bytes[64],
    index: uint256,
    leaf_a: bytes32,
    proof_a: DynArray[bytes32, MAX_PROOF],
    leaf_b: bytes32,
    proof_b: DynArray[bytes32, MAX_PROOF],
) -> uint256:
    """
    @notice Prove that a node signed two views of its log that cannot both be
            true: two checkpoints of one size with different roots, or two
            trees holding different leaves at one index. Slashes the node's
            whole stake; the reporter gets its share.
    @param signature_a r || s of the node's P-256 signature on checkpoint a.
    @param signature_b The same for checkpoint b; empty when (size_b, root_b)
           is an anchored tree instead (the node's own transaction signed it).
    @param index When the sizes differ: an index below both sizes where the
           trees hold different leaves (`leaf_a`, `leaf_b`, with their
           inclusion proofs `proof_a`, `proof_b`).
    @return The amount slashed.
    """
    origin_id: bytes32 = sha256(origin)
    key: Bytes[64] = self._node_key(origin_id)
    assert self._note_signed(self._checkpoint_text(origin, size_a, root_a), signature_a, key), "disputes: checkpoint a not signed"
    if len(signature_b) == 0:
        assert root_b != empty(bytes32), "disputes: tree b not anchored"
        assert staticcall LogAnchor(log_anchor).roots(origin_id, size_b) == root_b, "disputes: tree b not anchored"
    else:
        assert self._note_signed(self._checkpoint_text(origin, size_b, root_b), signature_b, key), "disputes: checkpoint b not signed"
    if size_a == size_b:
        assert root_a != root_b, "disputes: the same tree"
    else:
        assert index < min(size_a, size_b), "disputes: index beyond a tree"
        assert leaf_a != leaf_b, "disputes: the same leaf"
        assert self._included(leaf_a, index, size_a, proof_a, root_a), "disputes: leaf a not included"
        assert self._included(leaf_b, index, size_b, proof_b, root_b), "disputes: leaf b not included"
    assert not self.split_proven[origin_id], "disputes: already proven"
    self.split_proven[origin_id] = True
    slashed: uint256 = extcall Registry(registry).slash_node(origin_id, max_value(uint256), msg.sender)
    log SplitViewProven(origin_id=origin_id, size_a=size_a, size_b=size_b, reporter=msg.sender, slashed=slashed)
    return slashed


@external
def prove_inconsistent(
    origin: String[MAX_ORIGIN],
    size_a: uint256,
    root_a: bytes32,
    signature_a: Bytes[64],
    size_b: uint256,
    root_b: bytes32,
    signature_b: Bytes[64],
    proof: DynArray[bytes32, MAX_CONSISTENCY],
) -> uint256:
    """
    @notice Prove that a node signed a tree (a) that a larger tree it vouched for
            (b) does not extend: `proof` rebuilds root b from its subtrees, and the
            same subtrees give b's first `size_a` leaves another root than root a.
            This catches a receipt's checkpoint that a later tree rewrote, wherever
            the two differ. Slashes the node's whole stake; the reporter gets its share.
    @param signature_a r || s of the node's P-256 signature on checkpoint a.
    @param signature_b The same for checkpoint b; empty when b is an anchored tree.
    @param proof The RFC 9162 consistency proof from size_a to size_b in tree b,
           with the hash of b's first `size_a` leaves first when size_a is a power
           of two (the one case where the RFC's proof leaves it out).
    @return The amount slashed.
    """
    origin_id: bytes32 = sha256(origin)
    key: Bytes[64] = self._node_key(origin_id)
    assert self._note_signed(self._checkpoint_text(origin, size_a, root_a), signature_a, key), "disputes: checkpoint a not signed"
    if len(signature_b) == 0:
        assert root_b != empty(bytes32), "disputes: tree b not anchored"
        assert staticcall LogAnchor(log_anchor).roots(origin_id, size_b) == root_b, "disputes: tree b not anchored"
    else:
        assert self._note_signed(self._checkpoint_text(origin, size_b, root_b), signature_b, key), "disputes: checkpoint b not signed"
    assert 0 < size_a and size_a < size_b, "disputes: tree a must be the smaller"
    ok: bool = False
    prefix: bytes32 = empty(bytes32)
    ok, prefix = self._prefix_root(size_a, size_b, root_b, proof)
    assert ok, "disputes: not a proof in tree b"
    assert prefix != root_a, "disputes: tree b extends tree a"
    assert not self.split_proven[origin_id], "disputes: already proven"
    self.split_proven[origin_id] = True
    slashed: uint256 = extcall Registry(registry).slash_node(origin_id, max_value(uint256), msg.sender)
    log SplitViewProven(origin_id=origin_id, size_a=size_a, size_b=size_b, reporter=msg.sender, slashed=slashed)
    return slashed


@internal
@pure
def _node(left: bytes32, right: bytes32) -> bytes32:
    return sha256(concat(NODE_PREFIX, left, right))


@internal
@pure
def _prefix_root(
    old_size: uint256, new_size: uint256, new_root: bytes32, proof: DynArray[bytes32, MAX_CONSISTENCY]
) -> (bool, bytes32):
    """
    (whether `proof` rebuilds `new_root`, and the root of the first `old_size`
    leaves it implies): RFC 9162 §2.1.4.2, step by step, the old tree's hash taken
    from the proof like every other. Once the proof rebuilds the new root, its
    hashes are that tree's (else SHA-256 collides), and so is the old root it gives.
    """
    if old_size == 0 or old_size >= new_size or len(proof) == 0:
        return False, empty(bytes32)
    # unsafe_sub: both sizes are at least 1 here.
    fn: uint256 = unsafe_sub(old_size, 1)
    sn: uint256 = unsafe_sub(new_size, 1)
    for _: uint256 in range(256):
        if fn & 1 == 0:
            break
        fn = fn >> 1
        sn = sn >> 1
    fr: bytes32 = proof[0]
    sr: bytes32 = proof[0]
    for i: uint256 in range(1, len(proof), bound=MAX_CONSISTENCY):
        c: bytes32 = proof[i]
        if sn == 0:
            return False, empty(bytes32)
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
    return sn == 0 and sr == new_root, fr


@external
def notarize(origin: String[MAX_ORIGIN], size: uint256, root: bytes32, signature: Bytes[64]):
    """
    @notice Record, at this block's time, that the node of `origin` signed a
            checkpoint of `size` it has not anchored yet. From then it has
            `max_merge_delay` seconds to anchor a tree at least that large, or
            anyone may slash it with `prove_late`. Anyone may notarize.
    @param signature r || s of the node's P-256 signature on the checkpoint.
    """
    origin_id: bytes32 = sha256(origin)
    assert self._note_signed(self._checkpoint_text(origin, size, root), signature, self._node_key(origin_id)), "disputes: checkpoint not signed"
    anchored: uint256 = 0
    ignored: bytes32 = empty(bytes32)
    at_block: uint256 = 0
    anchored_time: uint256 = 0
    anchored, ignored, at_block, anchored_time = staticcall LogAnchor(log_anchor).latest(origin_id)
    assert anchored < size, "disputes: already anchored"
    assert self.notarized[origin_id][size] == 0, "disputes: already notarized"
    self.notarized[origin_id][size] = block.timestamp
    log Notarized(origin_id=origin_id, size=size, root=root, notary=msg.sender, timestamp=block.timestamp)


@external
def prove_late(origin: String[MAX_ORIGIN], size: uint256) -> uint256:
    """
    @notice Prove that a node did not anchor a tree of at least `size` within the
            maximum merge delay of the notarization of its checkpoint of that size:
            none is anchored yet, or the latest anchor is the first to cover it and
            came late. Slashes the node's whole stake; the reporter gets its share.
    @dev Only the latest anchor's time is kept on-chain (one slot per anchor keeps
         anchoring cheap): a size first covered, late, by an anchor before the
         latest is no longer provable here. Watchers prove at the deadline.
    @return The amount slashed.
    """
    origin_id: bytes32 = sha256(origin)
    notarized_at: uint256 = self.notarized[origin_id][size]
    assert notarized_at != 0, "disputes: not notarized"
    deadline: uint256 = notarized_at + max_merge_delay
    assert block.timestamp > deadline, "disputes: merge delay not passed"
    anchored: uint256 = 0
    root: bytes32 = empty(bytes32)
    at_block: uint256 = 0
    anchored_time: uint256 = 0
    anchored, root, at_block, anchored_time = staticcall LogAnchor(log_anchor).latest(origin_id)
    if anchored >= size:
        assert staticcall LogAnchor(log_anchor).previous(origin_id) < size, "disputes: anchored"
        assert anchored_time > deadline, "disputes: anchored in time"
    slot: bytes32 = sha256(concat(origin_id, convert(size, bytes32)))
    assert not self.late_proven[slot], "disputes: already proven"
    self.late_proven[slot] = True
    slashed: uint256 = extcall Registry(registry).slash_node(origin_id, max_value(uint256), msg.sender)
    log LateProven(origin_id=origin_id, size=size, notarized_at=notarized_at, reporter=msg.sender, slashed=slashed)
    return slashed


@internal
@view
def _node_key(origin_id: bytes32) -> Bytes[64]:
    key: Bytes[64] = staticcall Registry(registry).node_proof_key(origin_id)
    assert len(key) == 64, "disputes: unknown node"
    return key


@internal
@pure
def _checkpoint_text(origin: String[MAX_ORIGIN], size: uint256, root: bytes32) -> Bytes[MAX_NOTE]:
    # C2SP tlog-checkpoint, no extension lines: "<origin>\n<size>\n<base64 root>\n"
    return concat(convert(origin, Bytes[MAX_ORIGIN]), b"\n", convert(uint2str(size), Bytes[78]), b"\n", self._base64(root), b"\n")


@internal
@pure
def _base64(data: bytes32) -> Bytes[44]:
    """Standard base64 (RFC 4648 §4) of 32 bytes: 43 characters and one "="."""
    value: uint256 = convert(data, uint256)
    high: uint256 = 0  # characters 0..31
    low: uint256 = 0  # characters 32..43, left-aligned
    for i: uint256 in range(44):
        sextet: uint256 = 0
        if i < 42:
            sextet = (value >> (250 - 6 * i)) & 63
        elif i == 42:
            sextet = (value & 15) << 2
        char: uint256 = 61  # "="
        if i < 43:
            if sextet < 26:
                char = 65 + sextet
            elif sextet < 52:
                char = 71 + sextet  # 97 + sextet - 26
            elif sextet < 62:
                char = sextet - 4  # 48 + sextet - 52
            elif sextet == 62:
                char = 43  # "+"
            else:
                char = 47  # "/"
        if i < 32:
            high = high | (char << (8 * (31 - i)))
        else:
            low = low | (char << (8 * (63 - i)))
    return concat(convert(high, bytes32), slice(convert(low, bytes32), 0, 12))


@internal
@view
def _note_signed(text: Bytes[MAX_NOTE], signature: Bytes[64], key: Bytes[64]) -> bool:
    if len(signature) != 64:
        return False
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        P256VERIFY,
        concat(sha256(text), signature, key),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    return success and len(response) == 32 and convert(response, uint256) == 1
