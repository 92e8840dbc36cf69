# pragma version ~=0.4.3
"""
@title trustmesh PaymentToken
@notice An ERC-20 with EIP-3009 `transferWithAuthorization` (snekmate's ERC-20,
        its EIP-712 domain the token's name and `version`): what x402's `exact`
        scheme settles each payment with, as USDC does. For development chains
        and the market benchmark's per-payment baseline; its owner mints.
"""
from snekmate.auth import ownable
from snekmate.tokens import erc20
from snekmate.utils import ecdsa
from snekmate.utils import eip712_domain_separator

initializes: ownable
initializes: erc20[ownable := ownable]
uses: eip712_domain_separator

exports: (
    erc20.name, erc20.symbol, erc20.decimals, erc20.balanceOf, erc20.allowance,
    erc20.totalSupply, erc20.transfer, erc20.approve, erc20.transferFrom,
    erc20.mint, erc20.nonces, erc20.permit, erc20.DOMAIN_SEPARATOR, erc20.eip712Domain,
)

_TWA_TYPEHASH: constant(bytes32) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)


event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)


authorizationState: public(HashMap[address, HashMap[bytes32, bool]])
_version: String[20]


@deploy
def __init__(name_: String[25], symbol_: String[5], decimals_: uint8, version_: String[20]):
    ownable.__init__()
    # EIP-712 domain name == ERC-20 name, version == version_ (x402 `extra.name` / `extra.version`)
    erc20.__init__(name_, symbol_, decimals_, name_, version_)
    self._version = version_


@external
@view
def version() -> String[20]:
    return self._version


@external
def transferWithAuthorization(
    _from: address, to: address, amount: uint256, validAfter: uint256, validBefore: uint256,
    nonce: bytes32, v: uint8, r: bytes32, s: bytes32,
):
    assert block.timestamp > validAfter, "authorization is not yet valid"
    assert block.timestamp < validBefore, "authorization is expired"
    assert not self.authorizationState[_from][nonce], "authorization is used or canceled"
    struct_hash: bytes32 = keccak256(abi_encode(_TWA_TYPEHASH, _from, to, amount, validAfter, validBefore, nonce))
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(struct_hash)
    signer: address = ecdsa._recover_vrs(digest, convert(v, uint256), convert(r, uint256), convert(s, uint256))
    assert signer == _from and signer != empty(address), "invalid signature"
    self.authorizationState[_from][nonce] = True
    log AuthorizationUsed(authorizer=_from, nonce=nonce)
    erc20._transfer(_from, to, amount)
