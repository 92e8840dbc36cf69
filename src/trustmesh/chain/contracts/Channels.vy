# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title trustmesh Channels
@notice Unidirectional payment channels, in the chain's native currency or an
        ERC-20. A payer deposits for a payee until an expiry; with each request it
        sends the payee an EIP-712 voucher for the cumulative amount owed
        (`Voucher(uint256 channel,uint256 amount)`), which the payee checks off-chain.
        The payee settles (takes what the latest voucher adds to what it was paid,
        the channel staying open) or closes (settles, and the rest of the deposit
        returns to the payer) whenever it likes: no payment costs a transaction. After
        the expiry the payer takes back what is left of a channel not closed.
        A voucher is signed by the payer's key (an EOA: ECDSA over the EIP-712 digest,
        good even if the EOA has delegated code) or, for a contract payer (a Safe, a
        device account), accepted by the payer's EIP-1271 `isValidSignature` (a
        revert counts as a refusal).
        A channel opened for a device (`open_for`) sells its readings: what it
        pays is split between the serving node (the payee) and the device's owner
        in the Registry, by the node's share the owner set there (kept as it was
        when the channel opened); the owner's part accrues here until it
        withdraws it, so no owner can block a settlement.
"""

from ethereum.ercs import IERC20


interface IRegistry:
    def terms(device_id: bytes32) -> (address, uint256, uint256, address): view
    def owner_of(device_id: bytes32) -> address: view

from snekmate.utils import eip712_domain_separator as eip712

initializes: eip712


struct Channel:
    payer: address
    payee: address
    token: address  # empty(address): the native currency
    deposit: uint256
    paid: uint256  # to the payee so far
    expiry: uint256  # a timestamp
    closed: bool
    device: bytes32  # the device whose readings it buys, or empty: all to the payee
    node_bps: uint256  # the payee's share then (the rest to the device's owner); 0 if no device


event Opened:
    channel: indexed(uint256)
    payer: indexed(address)
    payee: indexed(address)
    token: address
    deposit: uint256
    expiry: uint256


event Credited:
    owner: indexed(address)
    token: indexed(address)
    amount: uint256


event ToppedUp:
    channel: indexed(uint256)
    deposit: uint256
    expiry: uint256


event Settled:
    channel: indexed(uint256)
    amount: uint256  # the voucher's cumulative amount
    paid: uint256  # what this settlement paid


event Closed:
    channel: indexed(uint256)
    paid: uint256  # to the payee, in all
    refunded: uint256  # to the payer


VOUCHER_TYPEHASH: constant(bytes32) = keccak256("Voucher(uint256 channel,uint256 amount)")
EIP1271_MAGIC: constant(bytes4) = 0x1626ba7e
BPS: constant(uint256) = 10_000
MAX_SIGNATURE: constant(uint256) = 1024  # (a Safe's: 65 bytes an owner)

REGISTRY: public(immutable(address))  # empty: no channels for devices
channels: public(HashMap[uint256, Channel])
count: public(uint256)  # channels opened; ids are 1..count, never reused
owed: public(HashMap[address, HashMap[address, uint256]])  # token -> owner -> amount


@deploy
def __init__(registry: address):
    eip712.__init__("trustmesh Channels", "1")
    REGISTRY = registry


@external
@payable
def open(payee: address, token: address, deposit: uint256, expiry: uint256) -> uint256:
    """
    @notice Open a channel to `payee` with `deposit` (sent along for the native
            currency; approved beforehand for an ERC-20), until `expiry`.
    @return The channel's id.
    """
    return self._open(payee, token, deposit, expiry, empty(bytes32), 0, msg.value)


@external
@payable
def open_for(
    device: bytes32, payee: address, token: address, deposit: uint256, expiry: uint256
) -> uint256:
    """
    @notice Open a channel to the node `payee` to buy `device`'s readings: each
            settlement pays the node its share as the device's owner set it in the
            Registry now, and credits the rest to the owner.
    @return The channel's id.
    """
    assert REGISTRY != empty(address), "Channels: no registry"
    owner: address = empty(address)
    price: uint256 = 0
    node_bps: uint256 = 0
    currency: address = empty(address)
    owner, price, node_bps, currency = staticcall IRegistry(REGISTRY).terms(device)
    assert owner != empty(address), "Channels: unknown device"
    assert token == currency, "Channels: not the device's currency"
    return self._open(payee, token, deposit, expiry, device, node_bps, msg.value)


@external
def withdraw(token: address):
    """
    @notice Take what the sales of your devices' readings have credited you.
    """
    amount: uint256 = self.owed[token][msg.sender]
    assert amount > 0, "Channels: nothing owed"
    self.owed[token][msg.sender] = 0
    self._give(token, msg.sender, amount)


@external
@payable
def top_up(channel: uint256, amount: uint256, expiry: uint256):
    """
    @notice Add `amount` to a channel's deposit and move its expiry to `expiry`
            (never earlier). Its payer only.
    """
    c: Channel = self._open_channel(channel)
    assert msg.sender == c.payer, "Channels: not the payer"
    assert expiry >= c.expiry, "Channels: expiry moved earlier"
    self.channels[channel].deposit = c.deposit + amount
    self.channels[channel].expiry = expiry
    self._take(c.token, amount, msg.value)
    log ToppedUp(channel=channel, deposit=c.deposit + amount, expiry=expiry)


@external
def settle(channel: uint256, amount: uint256, signature: Bytes[MAX_SIGNATURE]):
    """
    @notice Pay the payee what the payer's voucher for `amount` (cumulative) adds to
            what it was paid; the channel stays open. Its payee only.
    """
    c: Channel = self._open_channel(channel)
    assert msg.sender == c.payee, "Channels: not the payee"
    assert amount > c.paid, "Channels: voucher not above what was paid"
    self._check_voucher(c, channel, amount, signature)
    self.channels[channel].paid = amount
    self._pay(c, amount - c.paid)
    log Settled(channel=channel, amount=amount, paid=amount - c.paid)


@external
def close(channel: uint256, amount: uint256, signature: Bytes[MAX_SIGNATURE]):
    """
    @notice Settle the payer's voucher for `amount` (cumulative; what was paid
            already, with an empty signature) and return the rest of the deposit
            to the payer. Its payee only.
    """
    c: Channel = self._open_channel(channel)
    assert msg.sender == c.payee, "Channels: not the payee"
    assert amount >= c.paid, "Channels: voucher below what was paid"
    if amount > c.paid:
        self._check_voucher(c, channel, amount, signature)
    self.channels[channel].paid = amount
    self.channels[channel].closed = True
    self._pay(c, amount - c.paid)
    self._give(c.token, c.payer, c.deposit - amount)
    log Closed(channel=channel, paid=amount, refunded=c.deposit - amount)


@external
def refund(channel: uint256):
    """
    @notice After the expiry, return what is left of the deposit to the payer and
            close the channel. Its payer only.
    """
    c: Channel = self._open_channel(channel)
    assert msg.sender == c.payer, "Channels: not the payer"
    assert block.timestamp >= c.expiry, "Channels: not expired"
    self.channels[channel].closed = True
    self._give(c.token, c.payer, c.deposit - c.paid)
    log Closed(channel=channel, paid=c.paid, refunded=c.deposit - c.paid)


@external
@view
def voucher_digest(channel: uint256, amount: uint256) -> bytes32:
    """
    @notice The EIP-712 digest a payer signs for a voucher.
    """
    return eip712._hash_typed_data_v4(keccak256(abi_encode(VOUCHER_TYPEHASH, channel, amount)))


@internal
def _open(
    payee: address, token: address, deposit: uint256, expiry: uint256, device: bytes32,
    node_bps: uint256, sent: uint256,
) -> uint256:
    assert payee != empty(address) and payee != msg.sender, "Channels: bad payee"
    assert deposit > 0, "Channels: zero deposit"
    assert expiry > block.timestamp, "Channels: expiry in the past"
    channel: uint256 = self.count + 1
    self.count = channel
    self.channels[channel] = Channel(
        payer=msg.sender, payee=payee, token=token, deposit=deposit, paid=0, expiry=expiry,
        closed=False, device=device, node_bps=node_bps,
    )
    self._take(token, deposit, sent)
    log Opened(channel=channel, payer=msg.sender, payee=payee, token=token, deposit=deposit, expiry=expiry)
    return channel


@internal
def _pay(c: Channel, amount: uint256):
    """The payee's share of `amount` paid now; the device owner's credited."""
    if c.device == empty(bytes32):
        self._give(c.token, c.payee, amount)
        return
    node_part: uint256 = amount * c.node_bps // BPS
    if node_part < amount:
        owner: address = staticcall IRegistry(REGISTRY).owner_of(c.device)
        self.owed[c.token][owner] += amount - node_part
        log Credited(owner=owner, token=c.token, amount=amount - node_part)
    self._give(c.token, c.payee, node_part)


@internal
@view
def _open_channel(channel: uint256) -> Channel:
    c: Channel = self.channels[channel]
    assert c.payer != empty(address), "Channels: unknown channel"
    assert not c.closed, "Channels: channel closed"
    return c


@internal
def _check_voucher(c: Channel, channel: uint256, amount: uint256, signature: Bytes[MAX_SIGNATURE]):
    assert amount <= c.deposit, "Channels: voucher over the deposit"
    digest: bytes32 = eip712._hash_typed_data_v4(
        keccak256(abi_encode(VOUCHER_TYPEHASH, channel, amount))
    )
    # An ECDSA signature by the payer's own key is good even where the payer has code
    # (an EIP-7702-delegated EOA): only then is a contract asked, through EIP-1271.
    if len(signature) == 65 and self._signer(digest, convert(signature, Bytes[65])) == c.payer:
        return
    assert c.payer.is_contract, "Channels: bad voucher signature"
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        c.payer,
        abi_encode(digest, signature, method_id=method_id("isValidSignature(bytes32,bytes)")),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    assert success and len(response) == 32, "Channels: bad voucher signature"
    assert convert(slice(response, 0, 4), bytes4) == EIP1271_MAGIC, "Channels: bad voucher signature"


@internal
@pure
def _signer(digest: bytes32, signature: Bytes[65]) -> address:
    """Whose ECDSA signature (r, s, v) of `digest` this is; empty if none."""
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v < 27:
        v += 27
    return ecrecover(
        digest, v, extract32(signature, 0, output_type=uint256),
        extract32(signature, 32, output_type=uint256),
    )


@internal
def _take(token: address, amount: uint256, sent: uint256):
    """Receive `amount` from the caller (`sent`: the native currency it sent)."""
    if token == empty(address):
        assert sent == amount, "Channels: value differs from the amount"
    else:
        assert sent == 0, "Channels: native value sent for a token channel"
        if amount > 0:
            assert extcall IERC20(token).transferFrom(
                msg.sender, self, amount, default_return_value=True
            ), "Channels: token transfer failed"


@internal
def _give(token: address, to: address, amount: uint256):
    if amount == 0:
        return
    if token == empty(address):
        raw_call(to, b"", value=amount)  # (not `send`: a contract payee may need the gas)
    else:
        assert extcall IERC20(token).transfer(to, amount, default_return_value=True), "Channels: token transfer failed"
