# pragma version ~=0.4.3
"""
@title trustmesh Registry
@notice Who the devices and the nodes (gateways) are, the keys they sign with,
        and the stake each puts at risk. Stake is paid in the chain's native
        currency; it is what makes a Sybil identity expensive and what a fraud
        proof slashes.
@dev    Devices are keyed by `device_id = sha256(DID)`, nodes by
        `origin_id = sha256(origin)`: off-chain code derives both the same way.
        A device's key history is kept (each key with the seq and time it took
        effect), so that a reading is judged by the key valid when it was made.
        Revocation and unbonding keep the stake slashable for `unbonding_delay`
        seconds before it can be withdrawn, so fraud found late still costs.
        The Disputes contract, set once by the deployer, is the only caller of
        the slashing hooks.
"""

# Key algorithms, as COSE identifies them.
ALG_ES256: constant(int256) = -7
ALG_EDDSA: constant(int256) = -8

# Status of a device or a node.
STATUS_NONE: constant(uint8) = 0
STATUS_ACTIVE: constant(uint8) = 1
STATUS_REVOKED: constant(uint8) = 2  # no longer valid; stake unbonding
STATUS_WITHDRAWN: constant(uint8) = 3  # stake paid back; the record stays

MAX_BATCH: constant(uint256) = 64
MAX_KEY: constant(uint256) = 64  # P-256: x || y (64 bytes); Ed25519: 32 bytes
MAX_ORIGIN: constant(uint256) = 128
MAX_URL: constant(uint256) = 256
MAX_MESH: constant(uint256) = 1024  # a node's libp2p multiaddrs, separated by spaces
BPS: constant(uint256) = 10_000
P256VERIFY: constant(address) = 0x0000000000000000000000000000000000000100
PROOF_KEY_DOMAIN: constant(Bytes[26]) = b"trustmesh.dev/proof-key/v1"


struct Device:
    owner: address
    stake: uint256
    status: uint8
    keys: uint256  # number of keys in the history
    unbond_at: uint256  # when the stake may be withdrawn (0 while active)
    price: uint256  # wei per reading the owner asks of consumers (0: free)
    node_bps: uint256  # the serving node's share of each sale, in basis points
    currency: address  # what the price is in: empty(address) the native currency, or an ERC-20


struct Key:
    alg: int256
    key: Bytes[MAX_KEY]
    from_seq: uint256  # the first seq this key signs
    since: uint256  # block time it took effect


struct Node:
    owner: address
    stake: uint256
    status: uint8
    checkpoint_key: bytes32  # Ed25519 public key of the log's signed notes
    unbond_at: uint256
    url: String[MAX_URL]
    proof_key: Bytes[MAX_KEY]  # P-256 x || y: its second signature on notes, checked on-chain


event DeviceRegistered:
    device_id: indexed(bytes32)
    owner: indexed(address)
    alg: int256
    key: Bytes[MAX_KEY]
    stake: uint256


event KeyRotated:
    device_id: indexed(bytes32)
    alg: int256
    key: Bytes[MAX_KEY]
    from_seq: uint256
    since: uint256


event DeviceRevoked:
    device_id: indexed(bytes32)
    unbond_at: uint256


event StakeAdded:
    id: indexed(bytes32)
    amount: uint256


event PriceSet:
    device_id: indexed(bytes32)
    price: uint256
    node_bps: uint256
    currency: address


event NodeRegistered:
    origin_id: indexed(bytes32)
    owner: indexed(address)
    origin: String[MAX_ORIGIN]
    checkpoint_key: bytes32
    url: String[MAX_URL]
    stake: uint256
    proof_key: Bytes[MAX_KEY]


event NodeRetired:
    origin_id: indexed(bytes32)
    unbond_at: uint256


event NodeMeshAddrs:
    origin_id: indexed(bytes32)
    addrs: String[MAX_MESH]


event Withdrawn:
    id: indexed(bytes32)
    owner: indexed(address)
    amount: uint256


event Slashed:
    id: indexed(bytes32)
    amount: uint256
    reporter: indexed(address)
    reward: uint256


event DisputesSet:
    disputes: address


min_stake: public(uint256)
unbonding_delay: public(uint256)
reward_bps: public(uint256)  # share of a slashed amount paid to the reporter
deployer: public(address)
disputes: public(address)
devices: public(HashMap[bytes32, Device])
device_keys: public(HashMap[bytes32, HashMap[uint256, Key]])
nodes: public(HashMap[bytes32, Node])
mesh_addrs: public(HashMap[bytes32, String[MAX_MESH]])  # a node's, where the mesh is joined
slashed_total: public(uint256)  # slashed stake not paid out: burned, held forever


@deploy
def __init__(min_stake: uint256, unbonding_delay: uint256, reward_bps: uint256):
    """
    @param min_stake The least stake (wei) a device or a node must put up.
    @param unbonding_delay Seconds between revocation and withdrawal.
    @param reward_bps Share of a slash paid to the reporter, in basis points.
    """
    assert reward_bps <= BPS, "registry: reward above 100%"
    self.min_stake = min_stake
    self.unbonding_delay = unbonding_delay
    self.reward_bps = reward_bps
    self.deployer = msg.sender


@external
def set_disputes(disputes: address):
    """
    @notice Name the Disputes contract, the only caller of the slashing hooks.
            Once, by the deployer.
    """
    assert msg.sender == self.deployer, "registry: only the deployer"
    assert self.disputes == empty(address), "registry: disputes already set"
    assert disputes != empty(address), "registry: zero address"
    self.disputes = disputes
    log DisputesSet(disputes=disputes)


@internal
def _register_device(device_id: bytes32, alg: int256, key: Bytes[MAX_KEY], stake: uint256):
    assert self.devices[device_id].status == STATUS_NONE, "registry: device exists"
    assert stake >= self.min_stake, "registry: stake below minimum"
    self._check_key(alg, key)
    self.devices[device_id] = Device(
        owner=msg.sender, stake=stake, status=STATUS_ACTIVE, keys=1, unbond_at=0, price=0,
        node_bps=0, currency=empty(address)
    )
    self.device_keys[device_id][0] = Key(alg=alg, key=key, from_seq=0, since=block.timestamp)
    log DeviceRegistered(device_id=device_id, owner=msg.sender, alg=alg, key=key, stake=stake)


@internal
@pure
def _check_key(alg: int256, key: Bytes[MAX_KEY]):
    if alg == ALG_ES256:
        assert len(key) == 64, "registry: P-256 key must be x || y"
    else:
        assert alg == ALG_EDDSA, "registry: unknown alg"
        assert len(key) == 32, "registry: Ed25519 key must be 32 bytes"


@external
@payable
def register_device(device_id: bytes32, alg: int256, key: Bytes[MAX_KEY]):
    """
    @notice Register a device with all of `msg.value` as its stake; the sender owns it.
    @param device_id sha256 of the device's DID.
    @param alg -7 (ES256) or -8 (EdDSA).
    @param key The public key: x || y for P-256, 32 bytes for Ed25519.
    """
    self._register_device(device_id, alg, key, msg.value)


@external
@payable
def register_devices(
    device_ids: DynArray[bytes32, MAX_BATCH],
    algs: DynArray[int256, MAX_BATCH],
    keys: DynArray[Bytes[MAX_KEY], MAX_BATCH],
):
    """
    @notice Register a fleet in one transaction; `msg.value` is split evenly.
    """
    count: uint256 = len(device_ids)
    assert count > 0, "registry: empty batch"
    assert len(algs) == count and len(keys) == count, "registry: batch lengths differ"
    assert msg.value % count == 0, "registry: stake not divisible by the batch"
    stake: uint256 = msg.value // count
    for i: uint256 in range(count, bound=MAX_BATCH):
        self._register_device(device_ids[i], algs[i], keys[i], stake)


@external
@payable
def add_stake(id: bytes32):
    """
    @notice Add `msg.value` to the stake of an active device or node.
    """
    if self.devices[id].status == STATUS_ACTIVE:
        self.devices[id].stake += msg.value
    else:
        assert self.nodes[id].status == STATUS_ACTIVE, "registry: not active"
        self.nodes[id].stake += msg.value
    log StakeAdded(id=id, amount=msg.value)


@external
def rotate_key(device_id: bytes32, alg: int256, key: Bytes[MAX_KEY], from_seq: uint256):
    """
    @notice Replace the device's key from `from_seq` on; the history is kept.
    @dev `from_seq` must exceed the previous key's, so histories only move forward.
    """
    device: Device = self.devices[device_id]
    assert device.status == STATUS_ACTIVE, "registry: device not active"
    assert msg.sender == device.owner, "registry: only the owner"
    self._check_key(alg, key)
    previous: uint256 = self.device_keys[device_id][device.keys - 1].from_seq
    assert from_seq > previous, "registry: from_seq must grow"
    self.device_keys[device_id][device.keys] = Key(
        alg=alg, key=key, from_seq=from_seq, since=block.timestamp
    )
    self.devices[device_id].keys = device.keys + 1
    log KeyRotated(
        device_id=device_id, alg=alg, key=key, from_seq=from_seq, since=block.timestamp
    )


@external
def set_price(device_id: bytes32, price: uint256, node_bps: uint256, currency: address):
    """
    @notice Set the price per reading the owner asks of consumers, in `currency`
            (empty: the native currency, in wei; else an ERC-20, in its base
            units), and the share of each sale (basis points) the node that serves
            it keeps. A channel opened for the device keeps the share it was opened
            with.
    """
    assert msg.sender == self.devices[device_id].owner, "registry: only the owner"
    assert node_bps <= BPS, "registry: node share above 100%"
    self.devices[device_id].price = price
    self.devices[device_id].node_bps = node_bps
    self.devices[device_id].currency = currency
    log PriceSet(device_id=device_id, price=price, node_bps=node_bps, currency=currency)


@external
@view
def terms(device_id: bytes32) -> (address, uint256, uint256, address):
    """
    @notice A device's sale terms: its owner, its price, the node's share and the
            price's currency.
    """
    return (
        self.devices[device_id].owner, self.devices[device_id].price,
        self.devices[device_id].node_bps, self.devices[device_id].currency,
    )


@external
@view
def owner_of(device_id: bytes32) -> address:
    """
    @notice A device's owner (empty if it was never registered).
    """
    return self.devices[device_id].owner


@external
def revoke(device_id: bytes32):
    """
    @notice Revoke a device: its readings stop being valid now, and its stake
            starts unbonding (still slashable until `unbond_at`).
    """
    device: Device = self.devices[device_id]
    assert device.status == STATUS_ACTIVE, "registry: device not active"
    assert msg.sender == device.owner, "registry: only the owner"
    unbond_at: uint256 = block.timestamp + self.unbonding_delay
    self.devices[device_id].status = STATUS_REVOKED
    self.devices[device_id].unbond_at = unbond_at
    log DeviceRevoked(device_id=device_id, unbond_at=unbond_at)


@external
@payable
def register_node(
    origin: String[MAX_ORIGIN],
    checkpoint_key: bytes32,
    url: String[MAX_URL],
    proof_key: Bytes[MAX_KEY],
    proof_signature: Bytes[64],
):
    """
    @notice Register a node (gateway) for a log origin, with all of `msg.value` as stake.
    @param checkpoint_key The Ed25519 key that signs the log's checkpoints.
    @param proof_key The P-256 key (x || y) that also signs its checkpoints and
           receipts (C2SP signature type 0x02), so that Disputes can check them.
    @param proof_signature r || s: `proof_key`'s signature (ECDSA, SHA-256) of
           "trustmesh.dev/proof-key/v1" || origin id || sender || chain id, so a
           node cannot register a key it does not hold (and so escape every proof).
    """
    origin_id: bytes32 = sha256(origin)
    assert len(origin) > 0, "registry: empty origin"
    assert self.nodes[origin_id].status == STATUS_NONE, "registry: origin taken"
    assert msg.value >= self.min_stake, "registry: stake below minimum"
    assert checkpoint_key != empty(bytes32), "registry: empty checkpoint key"
    assert len(proof_key) == 64, "registry: proof key must be P-256 x || y"
    message: Bytes[110] = concat(
        PROOF_KEY_DOMAIN, origin_id, convert(msg.sender, bytes20), convert(chain.id, bytes32)
    )
    assert self._p256(sha256(message), proof_signature, proof_key), "registry: proof key not proven"
    self.nodes[origin_id] = Node(
        owner=msg.sender,
        stake=msg.value,
        status=STATUS_ACTIVE,
        checkpoint_key=checkpoint_key,
        unbond_at=0,
        url=url,
        proof_key=proof_key,
    )
    log NodeRegistered(
        origin_id=origin_id,
        owner=msg.sender,
        origin=origin,
        checkpoint_key=checkpoint_key,
        url=url,
        stake=msg.value,
        proof_key=proof_key,
    )


@external
def set_mesh_addrs(origin_id: bytes32, addrs: String[MAX_MESH]):
    """
    @notice Publish where a node's libp2p peer listens (multiaddrs with their /p2p/
            ids, separated by spaces), so that devices and watchers find the mesh
            from the Registry alone (read before a partition, dialled during it).
    """
    node: Node = self.nodes[origin_id]
    assert node.status == STATUS_ACTIVE, "registry: node not active"
    assert msg.sender == node.owner, "registry: only the owner"
    self.mesh_addrs[origin_id] = addrs
    log NodeMeshAddrs(origin_id=origin_id, addrs=addrs)


@external
def retire_node(origin_id: bytes32):
    """
    @notice Stop a node; its stake unbonds (still slashable until `unbond_at`).
    """
    node: Node = self.nodes[origin_id]
    assert node.status == STATUS_ACTIVE, "registry: node not active"
    assert msg.sender == node.owner, "registry: only the owner"
    unbond_at: uint256 = block.timestamp + self.unbonding_delay
    self.nodes[origin_id].status = STATUS_REVOKED
    self.nodes[origin_id].unbond_at = unbond_at
    log NodeRetired(origin_id=origin_id, unbond_at=unbond_at)


@external
@nonreentrant
def withdraw(id: bytes32):
    """
    @notice Pay a revoked device's or retired node's remaining stake to its owner,
            once the unbonding delay has passed.
    """
    owner: address = empty(address)
    amount: uint256 = 0
    if self.devices[id].status == STATUS_REVOKED:
        device: Device = self.devices[id]
        assert block.timestamp >= device.unbond_at, "registry: still unbonding"
        assert msg.sender == device.owner, "registry: only the owner"
        owner = device.owner
        amount = device.stake
        self.devices[id].stake = 0
        self.devices[id].status = STATUS_WITHDRAWN
    else:
        node: Node = self.nodes[id]
        assert node.status == STATUS_REVOKED, "registry: nothing to withdraw"
        assert block.timestamp >= node.unbond_at, "registry: still unbonding"
        assert msg.sender == node.owner, "registry: only the owner"
        owner = node.owner
        amount = node.stake
        self.nodes[id].stake = 0
        self.nodes[id].status = STATUS_WITHDRAWN
    log Withdrawn(id=id, owner=owner, amount=amount)
    # (not `send`: an owner that is a contract may need more than 2,300 gas to take
    # it; a call back finds the stake paid out and the lock held)
    raw_call(owner, b"", value=amount)


@internal
def _pay_slash(id: bytes32, taken: uint256, reporter: address):
    # Called after the stake was reduced by `taken` (effects before interactions).
    reward: uint256 = taken * self.reward_bps // BPS
    self.slashed_total += taken - reward
    log Slashed(id=id, amount=taken, reporter=reporter, reward=reward)
    if reward > 0:
        send(reporter, reward)


@external
@nonreentrant
def slash_device(device_id: bytes32, amount: uint256, reporter: address) -> uint256:
    """
    @notice Take up to `amount` of a device's stake; pay the reporter its share.
    @dev Only the Disputes contract, after it has checked a fraud proof.
    @return The amount taken.
    """
    assert msg.sender == self.disputes, "registry: only disputes"
    stake: uint256 = self.devices[device_id].stake
    assert stake > 0, "registry: nothing to slash"
    taken: uint256 = min(amount, stake)
    self.devices[device_id].stake = stake - taken
    self._pay_slash(device_id, taken, reporter)
    return taken


@external
@nonreentrant
def slash_node(origin_id: bytes32, amount: uint256, reporter: address) -> uint256:
    """
    @notice Take up to `amount` of a node's stake; pay the reporter its share.
    @dev Only the Disputes contract, after it has checked a fraud proof.
    @return The amount taken.
    """
    assert msg.sender == self.disputes, "registry: only disputes"
    stake: uint256 = self.nodes[origin_id].stake
    assert stake > 0, "registry: nothing to slash"
    taken: uint256 = min(amount, stake)
    self.nodes[origin_id].stake = stake - taken
    self._pay_slash(origin_id, taken, reporter)
    return taken


@external
@view
def device_key_at(device_id: bytes32, seq: uint256) -> Key:
    """
    @notice The key that signs `seq` for this device (the latest key whose
            `from_seq` is at most `seq`).
    """
    count: uint256 = self.devices[device_id].keys
    assert count > 0, "registry: unknown device"
    for i: uint256 in range(count, bound=1024):
        key: Key = self.device_keys[device_id][count - 1 - i]
        if key.from_seq <= seq:
            return key
    raise "registry: no key for seq"


@external
@view
def device_status(device_id: bytes32) -> uint8:
    """
    @notice 0 unknown, 1 active, 2 revoked, 3 withdrawn.
    """
    return self.devices[device_id].status


@external
@view
def node_operator(origin_id: bytes32) -> address:
    """
    @notice The owner of an active node for this origin, or the zero address.
    """
    if self.nodes[origin_id].status != STATUS_ACTIVE:
        return empty(address)
    return self.nodes[origin_id].owner


@external
@view
def node_proof_key(origin_id: bytes32) -> Bytes[MAX_KEY]:
    """
    @notice The P-256 key (x || y) that signs this origin's notes for the chain,
            whatever the node's status (a retired node's signed lies still count).
    """
    return self.nodes[origin_id].proof_key


@internal
@view
def _p256(digest: bytes32, signature: Bytes[64], key: Bytes[MAX_KEY]) -> bool:
    if len(signature) != 64 or len(key) != 64:
        return False
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        P256VERIFY,
        concat(digest, signature, key),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    return success and len(response) == 32 and convert(response, uint256) == 1
