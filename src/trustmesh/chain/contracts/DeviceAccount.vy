# pragma version ~=0.4.3
"""
@title trustmesh DeviceAccount
@notice An ERC-4337 account (EntryPoint v0.8) whose signer is a device's own
        P-256 key, the key its did:key names. Each account is a minimal proxy
        (EIP-1167) to this implementation with the key's x and y appended to the
        proxy's code, where they are read for 100 gas instead of two cold storage
        reads; `DeviceAccountFactory` deploys it at a CREATE2 address that depends
        on the key alone, known before deployment.
        Signatures are ES256 as the device makes them (a secure element through
        PKCS#11, or a keystore): ECDSA P-256 over SHA-256 of the 32-byte hash,
        r || s, checked by the P256VERIFY precompile (0x100, EIP-7951). High-S
        signatures are accepted, as hardware signers produce them half the time;
        that allows no replay, since nothing here keys on the signature's bytes (a
        user operation is spent by its EntryPoint nonce, a payment voucher by its
        cumulative amount).
        An optional owner (an EOA or a Safe) can recover: it may execute calls and
        change the owner. The device changes the owner through a user operation
        that calls the account itself.
"""

P256VERIFY: constant(address) = 0x0000000000000000000000000000000000000100
PROXY_CODE: constant(uint256) = 45  # EIP-1167 runtime; the key follows it
EIP1271_MAGIC: constant(bytes4) = 0x1626ba7e
LEGACY_MAGIC: constant(bytes4) = 0x20c13b0b  # isValidSignature(bytes,bytes)
SAFE_PREIMAGE: constant(uint256) = 66  # 0x1901 || domain separator || struct hash
SIG_VALIDATION_FAILED: constant(uint256) = 1
MAX_CALL: constant(uint256) = 16384
MAX_DATA: constant(uint256) = 16000
MAX_INIT: constant(uint256) = 1024
MAX_PAYMASTER: constant(uint256) = 1024
MAX_SIGNATURE: constant(uint256) = 1024
MAX_BATCH: constant(uint256) = 16


struct PackedUserOperation:
    sender: address
    nonce: uint256
    initCode: Bytes[MAX_INIT]
    callData: Bytes[MAX_CALL]
    accountGasLimits: bytes32
    preVerificationGas: uint256
    gasFees: bytes32
    paymasterAndData: Bytes[MAX_PAYMASTER]
    signature: Bytes[MAX_SIGNATURE]


struct Call:
    target: address
    amount: uint256
    data: Bytes[MAX_DATA]


event OwnerChanged:
    previous: indexed(address)
    owner: indexed(address)


ENTRY_POINT: public(immutable(address))
owner: public(address)  # in each proxy's own storage


@deploy
def __init__(entry_point: address):
    ENTRY_POINT = entry_point


@external
@payable
def __default__() -> bytes4:
    """
    @notice Receives the native currency; and answers the legacy EIP-1271
            `isValidSignature(bytes _data, bytes _signature)` (0x20c13b0b), which a
            Safe (1.4.1) asks of an owner that is a contract: valid if the device
            signed `keccak256(_data)` (the Safe transaction's hash). Vyper has no
            overloading, so that call is read here, from the calldata: a Safe's
            `_data` is the 66-byte EIP-712 preimage, a device's signature 64 bytes.
    """
    if len(msg.data) < 4 or convert(slice(msg.data, 0, 4), bytes4) != LEGACY_MAGIC:
        return empty(bytes4)
    at_data: uint256 = 4 + convert(slice(msg.data, 4, 32), uint256)
    at_signature: uint256 = 4 + convert(slice(msg.data, 36, 32), uint256)
    if convert(slice(msg.data, at_data, 32), uint256) != SAFE_PREIMAGE:
        return 0xffffffff
    if convert(slice(msg.data, at_signature, 32), uint256) != 64:
        return 0xffffffff
    digest: bytes32 = keccak256(slice(msg.data, at_data + 32, SAFE_PREIMAGE))
    if self._signed(digest, slice(msg.data, at_signature + 32, 64)):
        return LEGACY_MAGIC
    return 0xffffffff


@external
def validateUserOp(op: PackedUserOperation, op_hash: bytes32, missing: uint256) -> uint256:
    """
    @notice ERC-4337: 0 if the device's key signed `op_hash`, 1 if not (a bad
            signature is an answer, not a revert); pays the EntryPoint what the
            operation's prefund lacks.
    """
    assert msg.sender == ENTRY_POINT, "account: only the entry point"
    result: uint256 = 0
    if not self._signed(op_hash, op.signature):
        result = SIG_VALIDATION_FAILED
    if missing > 0:
        # A failed payment is the EntryPoint's to judge (AA21), not ours.
        paid: bool = raw_call(msg.sender, b"", value=missing, revert_on_failure=False)
    return result


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[MAX_SIGNATURE]) -> bytes4:
    """
    @notice EIP-1271 over the raw hash: the device's ES256 signature of `digest`.
    """
    if self._signed(digest, signature):
        return EIP1271_MAGIC
    return 0xffffffff


@external
@view
def key() -> Bytes[64]:
    """
    @notice The device's P-256 public key, x || y.
    """
    return self._key()


@external
@payable
def execute(target: address, amount: uint256, data: Bytes[MAX_DATA]):
    self._check_caller()
    raw_call(target, data, value=amount)


@external
@payable
def execute_batch(calls: DynArray[Call, MAX_BATCH]):
    self._check_caller()
    for c: Call in calls:
        raw_call(c.target, c.data, value=c.amount)


@external
def set_owner(owner: address):
    """
    @notice Name (or clear, with the zero address) the owner who can recover.
    """
    assert msg.sender == self or msg.sender == self.owner, "account: only the account or its owner"
    log OwnerChanged(previous=self.owner, owner=owner)
    self.owner = owner


@internal
@view
def _check_caller():
    assert msg.sender == ENTRY_POINT or msg.sender == self.owner or msg.sender == self, (
        "account: only the entry point, the account or its owner"
    )


@internal
@view
def _key() -> Bytes[64]:
    # `self` is the proxy here (a delegatecall): its code ends with the key.
    proxy: address = self
    return slice(proxy.code, PROXY_CODE, 64)


@internal
@view
def _signed(digest: bytes32, signature: Bytes[MAX_SIGNATURE]) -> bool:
    if len(signature) != 64:
        return False
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        P256VERIFY,
        concat(sha256(digest), slice(signature, 0, 64), self._key()),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    # An empty answer (a failed check, or a chain without the precompile) is "no".
    return success and len(response) == 32 and convert(response, uint256) == 1
