# pragma version ~=0.4.3
"""
@title trustmesh Rewards
@notice Reward pools shared by Merkle claims. A funder puts up a pool for a
        reputation epoch with the root of its distribution; each pool is its own
        small contract (`RewardPool`, a minimal proxy with its terms in its code)
        holding its own funds, where the shares are claimed with their proofs and
        what is left returns to the funder after the expiry.
        trustmesh computes a distribution from an epoch's reputation table
        (`trustmesh.market.rewards`), so anyone can recompute a pool's root and
        see whether its funder shared it as it says.
"""

from ethereum.ercs import IERC20

# 3d 60 cd 80 60 0a 3d 39 81 f3: copy the 205-byte runtime that follows, return it;
# then the EIP-1167 runtime around the implementation's address; then the terms.
CREATION: constant(Bytes[20]) = x"3d60cd80600a3d3981f3363d3d373d3d3d363d73"
FORWARD: constant(Bytes[15]) = x"5af43d82803e903d91602b57fd5bf3"


event Funded:
    pool: indexed(address)
    funder: indexed(address)
    epoch: indexed(uint256)
    token: address
    root: bytes32
    total: uint256
    expiry: uint256


IMPLEMENTATION: public(immutable(address))
pools: public(HashMap[uint256, address])
count: public(uint256)


@deploy
def __init__(implementation: address):
    IMPLEMENTATION = implementation


@external
@payable
def fund(epoch: uint256, root: bytes32, total: uint256, token: address, expiry: uint256) -> address:
    """
    @notice Put up a pool of `total` (sent along, or approved for an ERC-20)
            shared as `root` says, claimable until `expiry`.
    @return The pool's address.
    """
    assert total > 0, "Rewards: empty pool"
    assert expiry > block.timestamp, "Rewards: expiry in the past"
    terms: Bytes[160] = abi_encode(root, epoch, expiry, msg.sender, token)
    pool: address = raw_create(
        concat(CREATION, convert(IMPLEMENTATION, bytes20), FORWARD, terms)
    )
    self.count += 1
    self.pools[self.count] = pool
    if token == empty(address):
        assert msg.value == total, "Rewards: value differs from the total"
        raw_call(pool, b"", value=total)  # (not `send`: the proxy's delegatecall needs gas)
    else:
        assert msg.value == 0, "Rewards: native value sent for a token pool"
        assert extcall IERC20(token).transferFrom(
            msg.sender, pool, total, default_return_value=True
        ), "Rewards: token transfer failed"
    log Funded(pool=pool, funder=msg.sender, epoch=epoch, token=token, root=root, total=total, expiry=expiry)
    return pool
