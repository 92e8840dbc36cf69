"""``trustmesh bench market --json``: one JSON object, each figure with its baseline."""

from __future__ import annotations

import json

from tests.cli.command import no_traceback, trustmesh


def test_bench_market_json_shape() -> None:
    result = trustmesh("bench", "market", "--json", "--vouchers", "120")
    no_traceback(result)
    assert result.returncode == 0, result.stderr.decode()
    document = json.loads(result.stdout)
    assert document["benchmark"] == "market" and document["vouchers"] == 120
    for curve in ("secp256k1", "p256"):
        assert document["voucher_verify_per_s"][curve] > 0
        assert document["bare_signature_checks_per_s"][curve] > 0
    assert 0 < document["gas_settle"] < document["gas_settle_first"] < document["gas_open"]
    assert document["gas_per_payment_baseline"] == 21_000  # a bare native transfer
    assert document["gas_per_paid_reading"] == round(document["gas_settle"] / 5000, 2)
    assert document["ratio_vs_per_payment_settlement"] > 1
    # x402's exact scheme: one EIP-3009 transfer settled per payment, measured alike
    assert document["gas_per_payment_x402_exact"] > document["gas_per_payment_baseline"]
    assert document["ratio_vs_x402_exact"] > document["ratio_vs_per_payment_settlement"]
    # a device account: deployed by its first operation, then a steady-state transfer
    assert 0 < document["gas_validate_user_op"] < document["gas_user_op_transfer"]
    first, deploy = document["gas_user_op_first"], document["gas_account_deploy"]
    assert first > max(deploy, document["gas_user_op_transfer"]) > 21_000
    # a reward claim: a later bit of a word is cheaper than the first, a new account dearer
    assert document["gas_claim"] < document["gas_claim_first_in_word"]
    assert document["gas_claim"] < document["gas_claim_new_account"]
    assert document["claim_proof_hashes"] == 14  # 10,000 shares


def test_bad_sizes_are_refused() -> None:
    result = trustmesh("bench", "market", "--vouchers", "5")
    no_traceback(result)
    assert result.returncode == 2 and b"usage error" in result.stderr
