"""Reading verification throughput against the bare signature check.

For each algorithm, the same signed readings are verified two ways, in
alternating rounds: through :func:`trustmesh.reading.verify_reading` (parse,
deterministic-encoding checks, DID decoding, signature) and by the raw
signature library alone on pre-built inputs (key objects loaded, signed
message and DER signature prepared). The ratio is the share of the bare
signature rate that the full verification keeps. For Ed25519 both
``cryptography`` and PyNaCl are measured and the faster is the baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import nacl.signing
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from trustmesh.identity import Alg, SoftwareSigner
from trustmesh.reading import Reading, sign_reading, verify_reading

ES256_GOAL = 0.85
CHUNK = 50
_ECDSA = ec.ECDSA(hashes.SHA256())


def run(readings: int = 2000, devices: int = 50, rounds: int = 7) -> dict[str, Any]:
    """Measure; returns the JSON object that ``trustmesh bench verify --json`` prints."""
    es256 = _measure_alg(Alg.ES256, readings, devices, rounds)
    eddsa = _measure_alg(Alg.EDDSA, readings, devices, rounds)
    return {
        "benchmark": "verify",
        "readings": readings,
        "devices": devices,
        "rounds": rounds,
        "es256": es256,
        "eddsa": eddsa,
        "es256_goal_ratio": ES256_GOAL,
        "es256_goal_met": es256["ratio"] >= ES256_GOAL,
    }


def _measure_alg(alg: Alg, n: int, devices: int, rounds: int) -> dict[str, Any]:
    signers = [SoftwareSigner.generate(alg) for _ in range(devices)]
    entries = [
        sign_reading(
            signers[i % devices],
            seq=i + 1,
            ts=1_700_000_000_000 + i,
            sensor="temperature",
            value=20.0 + (i % 100) / 10,
            unit="C",
        )
        for i in range(n)
    ]
    parsed = [verify_reading(entry) for entry in entries]  # also warms the DID caches
    chunks = [range(start, min(start + CHUNK, n)) for start in range(0, n, CHUNK)]
    candidates: dict[str, Callable[[range], None]] = {
        "trustmesh": lambda chunk: _verify_all(entries, chunk)
    }
    if alg is Alg.ES256:
        candidates["cryptography"] = _raw_p256(signers, parsed)
    else:
        candidates["cryptography"] = _raw_ed25519_cryptography(signers, parsed)
        candidates["pynacl"] = _raw_ed25519_pynacl(signers, parsed)
    elapsed = dict.fromkeys(candidates, 0.0)
    for _ in range(rounds):
        for chunk in chunks:
            # Interleave in small chunks, so the machine's noise hits every
            # candidate alike and the ratio stays meaningful.
            for name, verify in candidates.items():
                start = time.perf_counter()
                verify(chunk)
                elapsed[name] += time.perf_counter() - start
    rates = {name: n * rounds / seconds for name, seconds in elapsed.items()}
    baselines = {name: rate for name, rate in rates.items() if name != "trustmesh"}
    baseline = max(baselines, key=lambda name: baselines[name])
    result: dict[str, Any] = {"trustmesh_per_s": round(rates["trustmesh"])}
    result.update({f"{name}_per_s": round(rate) for name, rate in baselines.items()})
    result["baseline"] = baseline
    result["ratio"] = round(rates["trustmesh"] / rates[baseline], 3)
    return result


def _verify_all(entries: Sequence[bytes], chunk: range) -> None:
    for i in chunk:
        verify_reading(entries[i])


def _raw_p256(
    signers: Sequence[SoftwareSigner], parsed: Sequence[Reading]
) -> Callable[[range], None]:
    keys = [
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), s.public_key.raw)
        for s in signers
    ]
    inputs = [
        (
            keys[i % len(keys)],
            encode_dss_signature(
                int.from_bytes(r.signature[:32], "big"), int.from_bytes(r.signature[32:], "big")
            ),
            r.signed_message,
        )
        for i, r in enumerate(parsed)
    ]

    def verify(chunk: range) -> None:
        for i in chunk:
            key, der, message = inputs[i]
            key.verify(der, message, _ECDSA)

    return verify


def _raw_ed25519_cryptography(
    signers: Sequence[SoftwareSigner], parsed: Sequence[Reading]
) -> Callable[[range], None]:
    keys = [ed25519.Ed25519PublicKey.from_public_bytes(s.public_key.raw) for s in signers]
    inputs = [(keys[i % len(keys)], r.signature, r.signed_message) for i, r in enumerate(parsed)]

    def verify(chunk: range) -> None:
        for i in chunk:
            key, signature, message = inputs[i]
            key.verify(signature, message)

    return verify


def _raw_ed25519_pynacl(
    signers: Sequence[SoftwareSigner], parsed: Sequence[Reading]
) -> Callable[[range], None]:
    keys = [nacl.signing.VerifyKey(s.public_key.raw) for s in signers]
    inputs = [(keys[i % len(keys)], r.signature, r.signed_message) for i, r in enumerate(parsed)]

    def verify(chunk: range) -> None:
        for i in chunk:
            key, signature, message = inputs[i]
            key.verify(message, signature)

    return verify
