# pragma version ~=0.4.3
"""
@title trustmesh RewardPool
@notice One reward pool: a minimal proxy (EIP-1167) to this implementation with
        its terms appended to its code (root, epoch, expiry, funder, token: five
        words, read for ~150 gas), deployed and funded by `Rewards`. It holds its
        own funds, so a distribution whose amounts add up to more than the pool
        can only ever take from this pool.
        Leaves are `keccak256(keccak256(abi.encode(epoch, index, account, amount)))`
        in a sorted-pair tree (snekmate's `merkle_proof_verification`). Anyone may
        claim a leaf for its account (paid to the account, never to the caller),
        once; each claim is one bit. After the expiry the funder takes back what
        is left. A claim changes its state before it pays, so it needs no lock.
"""

from ethereum.ercs import IERC20

from snekmate.utils import merkle_proof_verification as mpv

PROXY_CODE: constant(uint256) = 45  # EIP-1167 runtime; the terms follow it
MAX_PROOF: constant(uint256) = 32  # 2^32 shares


struct Terms:
    root: bytes32
    epoch: uint256
    expiry: uint256
    funder: address
    token: address  # empty(address): the native currency


event Claimed:
    index: uint256
    account: indexed(address)
    amount: uint256


event Reclaimed:
    amount: uint256


claimed_bits: HashMap[uint256, uint256]  # word -> 256 claims


@external
@payable
def __default__():
    pass  # the funding, in the native currency


@external
def claim(index: uint256, account: address, amount: uint256, proof: DynArray[bytes32, MAX_PROOF]):
    """
    @notice Pay `account` its `amount`, as leaf `index` of the pool's root says.
    """
    word: uint256 = self.claimed_bits[index >> 8]
    bit: uint256 = 1 << (index & 255)
    assert word & bit == 0, "RewardPool: already claimed"
    terms: Terms = self._terms()
    leaf: bytes32 = keccak256(keccak256(abi_encode(terms.epoch, index, account, amount)))
    assert mpv._verify(proof, terms.root, leaf), "RewardPool: not in the distribution"
    self.claimed_bits[index >> 8] = word | bit
    self._give(terms.token, account, amount)
    log Claimed(index=index, account=account, amount=amount)


@external
@view
def is_claimed(index: uint256) -> bool:
    return self.claimed_bits[index >> 8] & (1 << (index & 255)) != 0


@external
@view
def terms() -> Terms:
    return self._terms()


@external
def reclaim():
    """
    @notice After the expiry, the funder takes back what is left.
    """
    terms: Terms = self._terms()
    assert msg.sender == terms.funder, "RewardPool: not the funder"
    assert block.timestamp >= terms.expiry, "RewardPool: not expired"
    rest: uint256 = self.balance
    if terms.token != empty(address):
        rest = staticcall IERC20(terms.token).balanceOf(self)
    assert rest > 0, "RewardPool: nothing left"
    self._give(terms.token, terms.funder, rest)
    log Reclaimed(amount=rest)


@internal
@view
def _terms() -> Terms:
    # `self` is the proxy here (a delegatecall): its code ends with the terms.
    proxy: address = self
    return abi_decode(slice(proxy.code, PROXY_CODE, 160), Terms)


@internal
def _give(token: address, to: address, amount: uint256):
    if token == empty(address):
        # (not `send`: an account behind a proxy needs more than its 2,300 gas; the
        # claim's bit is set before this call, so a reentering claim finds it)
        raw_call(to, b"", value=amount)
    else:
        assert extcall IERC20(token).transfer(to, amount, default_return_value=True), "RewardPool: token transfer failed"
