"""The machine economy's figures: how fast a payee checks vouchers, and what
paying per reading, a device account and a reward claim cost on-chain.

Vouchers: ``vouchers`` checks of an EOA's (secp256k1) and of a device's own
P-256 key, each timed alone on one core (mean rate and p99), against the bare
signature check of the same key in the same run (the ratio: what the voucher's
EIP-712 digest and the ledger's rules cost over the curve). Gas, on the embedded
chain: a channel buying one device's readings (open, settle: the first and a
later one, close); a device account's operations (its deployment,
``validateUserOp``, a transfer); a reward claim from a pool shared by 10,000.
One settlement pays every reading since the last, so the gas a paid reading
costs is a settlement's over ``readings_per_settlement``; the baselines,
measured in the same run, settle each payment on-chain: a bare native transfer
(the least any such payment costs) and x402's ``exact`` scheme (an EIP-3009
``transferWithAuthorization``). Dollars assume the gas price and ETH price
given (stated in the output).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import coincurve
from eth_account import Account
from web3.types import Wei

from trustmesh.bench._embedded import embedded_clients
from trustmesh.chain.accounts import deploy_account_contracts, key_coordinates
from trustmesh.chain.bundler import LocalBundler
from trustmesh.chain.channels import ChannelsContract, deploy_channels
from trustmesh.chain.compile import load_contract
from trustmesh.chain.rewards import RewardsContract, deploy_rewards
from trustmesh.chain.suite import Registry, deploy_suite, device_id
from trustmesh.chain.userop import UserOperation
from trustmesh.device.wallet import Wallet
from trustmesh.identity import SoftwareSigner, did_from_key
from trustmesh.market.ledger import Ledger, Terms
from trustmesh.market.rewards import distribute
from trustmesh.market.vouchers import Domain, Voucher, sign, sign_device

GOALS = {
    "voucher_verify_per_s_min": 5_000,
    "voucher_p99_ms_max": 0.2,
    "gas_per_paid_reading_max": 20,
    "usd_per_paid_reading_max": 0.000001,
    "gas_validate_user_op_max": 15_000,
    "gas_user_op_transfer_max": 88_000,
    "gas_account_deploy_max": 200_000,
    "gas_claim_max": 60_000,
}
GAS_PRICE_GWEI = 0.01  # an L2's (stated, not measured)
ETH_USD = 3_000
PRICE = 1_000  # wei a reading, in the ledger's checks


def _timed(check: Callable[[int], object], count: int) -> dict[str, float]:
    times = []
    for k in range(count):
        started = time.perf_counter()
        check(k)
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "per_s": round(1 / statistics.fmean(times)),
        "p99_ms": round(times[int(len(times) * 0.99)] * 1e3, 4),
    }


def vouchers(count: int) -> dict[str, Any]:
    """Voucher checks through a payee's ledger, and the bare curve checks alone."""
    domain = Domain(31337, "0x" + "11" * 20)
    payer, device = Account.create(), SoftwareSigner.generate()
    ledger = Ledger(domain, margin=0)
    ledger.track(1, Terms(payer.address, deposit=10**30, expiry=1 << 40))
    ledger.track(2, Terms(device.public_key, deposit=10**30, expiry=1 << 40))
    eoa = [sign(Voucher(domain, 1, (k + 1) * PRICE), payer) for k in range(count)]
    p256 = [sign_device(Voucher(domain, 2, (k + 1) * PRICE), device) for k in range(count)]
    digest, device_digest = Voucher(domain, 1, PRICE).digest(), Voucher(domain, 2, PRICE).digest()
    recoverable = eoa[0][:64] + bytes([eoa[0][64] - 27])
    bare_p256 = p256[0]
    return {
        "secp256k1": _timed(
            lambda k: ledger.accept(1, (k + 1) * PRICE, eoa[k], price=PRICE, now=0), count
        ),
        "p256": _timed(
            lambda k: ledger.accept(2, (k + 1) * PRICE, p256[k], price=PRICE, now=0), count
        ),
        "bare_secp256k1_recover": _timed(
            lambda k: coincurve.PublicKey.from_signature_and_message(
                recoverable, digest, hasher=None
            ),
            count,
        ),
        "bare_p256_verify": _timed(
            lambda k: device.public_key.verify(device_digest, bare_p256),
            count,
        ),
    }


def gas() -> dict[str, int]:
    """A channel buying one device's readings on the embedded chain (its owner
    and the serving node share each payment), and a bare native transfer."""
    with embedded_clients(3) as (chain, (payer_client, payee_client, owner_client)):
        deployment = deploy_suite(owner_client)
        did = did_from_key(SoftwareSigner.generate().public_key)
        registry = Registry(owner_client, deployment)
        registry.register_device(did, registry.min_stake())
        registry.set_price(did, PRICE, node_bps=2_000)
        address = deploy_channels(payer_client, deployment.contracts["Registry"])
        payer = ChannelsContract(payer_client, address)
        payee = ChannelsContract(payee_client, address)
        now = int(chain.w3.eth.get_block("latest")["timestamp"])
        fn = payer.contract.functions.open_for(
            device_id(did), payee_client.address, "0x" + "00" * 20, 10**18, now + 3600
        )
        opened = payer_client.transact(fn, 10**18)["gasUsed"]
        domain = payer.domain()

        def settle(amount: int) -> int:
            signature = sign(Voucher(domain, 1, amount), payer_client.account)
            return int(payee.settle(1, amount, signature)["gasUsed"])

        first, later = settle(10**15), settle(2 * 10**15)
        closing = sign(Voucher(domain, 1, 3 * 10**15), payer_client.account)
        closed = payee.close(1, 3 * 10**15, closing)["gasUsed"]
        transfer = chain.w3.eth.send_transaction(
            {"from": payer_client.address, "to": payee_client.address, "value": Wei(1)}
        )
        bare = chain.w3.eth.wait_for_transaction_receipt(transfer)["gasUsed"]
    return {
        "gas_open": int(opened),
        "gas_settle_first": first,
        "gas_settle": later,
        "gas_close": int(closed),
        "gas_per_payment_baseline": int(bare),
    }


def account_gas() -> dict[str, int | None]:
    """A device account on the embedded chain, bundled by the node's bundler: the
    bundle transaction of its first operation (deploying it on the way) and of a
    steady-state native transfer; the factory's deployment alone; and
    ``validateUserOp`` alone, called as the EntryPoint calls it (a second account
    whose entry point is the benchmark's own account, so the call can be a
    transaction: its gas less the transaction's 21,000 and its calldata)."""
    with embedded_clients(3) as (chain, (funder, node, entry)):
        factory = deploy_account_contracts(funder)
        device = SoftwareSigner.generate()
        wallet = Wallet(device, chain.w3, LocalBundler(node))
        funder.send_raw(wallet.address, b"", "funding the wallet", value=10**18)
        first = wallet.pay(funder.address, 1).bundle_gas_used
        transfer = wallet.pay(funder.address, 1).bundle_gas_used
        x, y = key_coordinates(SoftwareSigner.generate().public_key)
        create = funder.contract(load_contract("DeviceAccountFactory"), factory)
        deployed = int(funder.transact(create.functions.create_account(x, y))["gasUsed"])
        # validateUserOp alone: an account whose entry point is `entry`
        implementation = entry.deploy("DeviceAccount", entry.address)
        own_factory = entry.contract(
            load_contract("DeviceAccountFactory"),
            entry.deploy("DeviceAccountFactory", implementation),
        )
        x, y = key_coordinates(device.public_key)
        account = entry.call(own_factory.functions.account_address(x, y))
        entry.transact(own_factory.functions.create_account(x, y))
        op = UserOperation(
            sender=account, nonce=0, call_data=b"\x00" * 100, call_gas_limit=100_000,
            verification_gas_limit=100_000, pre_verification_gas=50_000,
            max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9,
        )  # fmt: skip
        op_hash = op.hash(entry.address, entry.chain_id)
        op = op.signed(device.sign(op_hash))
        validate = entry.contract(load_contract("DeviceAccount"), account).functions.validateUserOp(
            op.packed(), op_hash, 0
        )
        data = bytes.fromhex(validate._encode_transaction_data()[2:])
        used = int(entry.transact(validate)["gasUsed"])
        tokens = data.count(0) + 4 * (len(data) - data.count(0))
        validation = used - 21_000 - 4 * tokens
        floored = used <= 21_000 + 10 * tokens  # EIP-7623's floor would hide the execution
    return {
        "gas_user_op_first": first,
        "gas_user_op_transfer": transfer,
        "gas_account_deploy": deployed,
        "gas_validate_user_op": None if floored else validation,
    }


def exact_gas() -> int:
    """x402's ``exact`` scheme settles every payment on-chain: an EIP-3009
    ``transferWithAuthorization`` the payer signed, sent by the facilitator (here
    on trustmesh's PaymentToken, a snekmate ERC-20 with EIP-3009, both balances
    already non-zero, as for a payer and a seller that traded before)."""
    with embedded_clients(3) as (chain, (owner, payer, facilitator)):
        token = owner.contract(
            load_contract("PaymentToken"),
            owner.deploy("PaymentToken", "trustmesh USD", "TUSD", 6, "1"),
        )
        seller = owner.address
        owner.transact(token.functions.mint(payer.address, 10**12))
        owner.transact(token.functions.mint(seller, 1))
        now = int(chain.w3.eth.get_block("latest")["timestamp"])
        domain = {"name": "trustmesh USD", "version": "1", "chainId": payer.chain_id,
                  "verifyingContract": token.address}  # fmt: skip
        message = {"from": payer.address, "to": seller, "value": 1_000, "validAfter": 0,
                   "validBefore": now + 3_600, "nonce": b"\x07" * 32}  # fmt: skip
        signed = Account.sign_typed_data(payer.account.key, domain, _EIP3009, message)
        settle = token.functions.transferWithAuthorization(
            payer.address, seller, 1_000, 0, now + 3_600, b"\x07" * 32, signed.v,
            signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"),
        )  # fmt: skip
        return int(facilitator.transact(settle)["gasUsed"])


_EIP3009 = {
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"}, {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"}, {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"}, {"name": "nonce", "type": "bytes32"},
    ]
}  # fmt: skip


def claim_gas(recipients: int = 10_000) -> dict[str, int]:
    """A reward claim on the embedded chain, from a pool shared among ``recipients``
    (a proof of ~log2 of that many hashes): the first claim of a 256-claim word
    (its bit set from zero), a later one, and one paying an account that held
    nothing before (which costs the chain a new account)."""
    with embedded_clients(3) as (chain, (funder, claimer, holder)):
        subjects = [i.to_bytes(32, "big") for i in range(1, recipients + 1)]
        accounts = {s: "0x" + s[-20:].hex() for s in subjects}
        accounts[subjects[0]] = accounts[subjects[1]] = holder.address  # existing accounts
        shares = distribute(1, 10**18, dict.fromkeys(subjects, 1), accounts)
        rewards = RewardsContract(funder, deploy_rewards(funder))
        now = int(chain.w3.eth.get_block("latest")["timestamp"])
        pool = rewards.fund(1, shares.root, shares.pool, now + 3_600)
        anyone = RewardsContract(claimer, rewards.address)

        def claim(index: int) -> int:
            share = shares.shares[index]
            receipt = anyone.claim(pool, index, share.account, share.amount, shares.proof(index))
            return int(receipt["gasUsed"])

        first, later, fresh = claim(0), claim(1), claim(2)
    return {
        "gas_claim": later,
        "gas_claim_first_in_word": first,
        "gas_claim_new_account": fresh,
        "claim_proof_hashes": len(shares.proof(1)),
    }


def run(vouchers_count: int = 3_000, readings_per_settlement: int = 5_000) -> dict[str, Any]:
    """Measure; returns the JSON object ``trustmesh bench market --json`` prints."""
    checks = vouchers(vouchers_count)
    spent = gas()
    account = account_gas()
    claims = claim_gas()
    exact = exact_gas()
    per_reading = spent["gas_settle"] / readings_per_settlement
    usd_per_gas = GAS_PRICE_GWEI * 1e-9 * ETH_USD
    return {
        "benchmark": "market",
        "vouchers": vouchers_count,
        "voucher_verify_per_s": {
            "secp256k1": checks["secp256k1"]["per_s"],
            "p256": checks["p256"]["per_s"],
        },
        "voucher_p99_ms": {
            "secp256k1": checks["secp256k1"]["p99_ms"],
            "p256": checks["p256"]["p99_ms"],
        },
        "bare_signature_checks_per_s": {
            "secp256k1": checks["bare_secp256k1_recover"]["per_s"],
            "p256": checks["bare_p256_verify"]["per_s"],
        },
        **spent,
        "readings_per_settlement": readings_per_settlement,
        "gas_per_paid_reading": round(per_reading, 2),
        "ratio_vs_per_payment_settlement": round(spent["gas_per_payment_baseline"] / per_reading),
        "gas_per_payment_x402_exact": exact,
        "ratio_vs_x402_exact": round(exact / per_reading),
        "usd_per_paid_reading": per_reading * usd_per_gas,
        "assumed": {"gas_price_gwei": GAS_PRICE_GWEI, "eth_usd": ETH_USD},
        **account,
        "ratio_user_op_transfer_vs_eoa_transfer": round(
            (account["gas_user_op_transfer"] or 0) / spent["gas_per_payment_baseline"], 3
        ),
        "reference_user_op_transfer": {
            "simple_account_ecrecover": 83_300,
            "coinbase_smart_wallet": 157_000,
            "safe": 176_000,
        },  # (not measured here: the figures, for comparison)
        **claims,
        "goals": GOALS,
    }
