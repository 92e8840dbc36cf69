# pragma version ~=0.4.3
"""
@title trustmesh DeviceAccountFactory
@notice Deploys a device's `DeviceAccount` at a CREATE2 address that depends on
        its P-256 key alone (so on its did:key): an EIP-1167 minimal proxy to the
        implementation with x || y appended to its code, salt zero. Anyone may
        deploy any device's account (it can only ever be that key's account), and
        deploying one that exists returns it, as an ERC-4337 `initCode` expects.
"""

# 3d 60 6d 80 60 0a 3d 39 81 f3: copy the 109-byte runtime that follows, return it;
# then the EIP-1167 runtime with the implementation's address in the middle.
CREATION: constant(Bytes[20]) = x"3d606d80600a3d3981f3363d3d373d3d3d363d73"
FORWARD: constant(Bytes[15]) = x"5af43d82803e903d91602b57fd5bf3"
SALT: constant(bytes32) = empty(bytes32)


event AccountCreated:
    account: indexed(address)
    x: bytes32
    y: bytes32


IMPLEMENTATION: public(immutable(address))


@deploy
def __init__(implementation: address):
    IMPLEMENTATION = implementation


@external
@view
def account_address(x: bytes32, y: bytes32) -> address:
    """
    @notice Where the account of the key (x, y) is, or will be.
    """
    return self._address(x, y)


@external
def create_account(x: bytes32, y: bytes32) -> address:
    """
    @notice Deploy the account of the key (x, y), unless it exists; returns it.
    """
    account: address = self._address(x, y)
    if account.codesize > 0:
        return account
    created: address = raw_create(self._init_code(x, y), salt=SALT)
    log AccountCreated(account=created, x=x, y=y)
    return created


@internal
@view
def _init_code(x: bytes32, y: bytes32) -> Bytes[119]:
    return concat(CREATION, convert(IMPLEMENTATION, bytes20), FORWARD, x, y)


@internal
@view
def _address(x: bytes32, y: bytes32) -> address:
    digest: bytes32 = keccak256(
        concat(x"ff", convert(self, bytes20), SALT, keccak256(self._init_code(x, y)))
    )
    return convert(convert(slice(digest, 12, 20), bytes20), address)
