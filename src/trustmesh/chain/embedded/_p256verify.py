"""The P256VERIFY precompile (EIP-7951, as RIP-7212 before it), at 0x100.

Input is exactly 160 bytes: ``h ‖ r ‖ s ‖ qx ‖ qy`` (32 bytes each), where
``h`` is the message hash. On a valid signature the output is the 32-byte
word 1; on anything else it is empty (the call itself succeeds). It always
costs 6,900 gas. Before the signature is checked, ``r`` and ``s`` must be in
``1 … n-1``, and ``(qx, qy)`` must be a point on the curve (not ``(0, 0)``,
coordinates below ``p``); high-``s`` signatures are accepted, as the EIP says.
The verification itself is OpenSSL's, through ``cryptography``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from eth.abc import ComputationAPI

ADDRESS = (0x100).to_bytes(20, "big")
GAS = 6_900
INPUT_SIZE = 160
SUCCESS = (1).to_bytes(32, "big")
# P-256 (SEC 2 §2.4.2): field prime p and group order n.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


def p256_verify(data: bytes) -> bool:
    """The precompile's answer for ``data``, as a pure function."""
    if len(data) != INPUT_SIZE:
        return False
    h = data[:32]
    r, s, qx, qy = (int.from_bytes(data[i : i + 32], "big") for i in range(32, 160, 32))
    if not (0 < r < N and 0 < s < N):
        return False
    if not (qx < P and qy < P) or (qx, qy) == (0, 0):
        return False
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + data[96:160])
        key.verify(encode_dss_signature(r, s), h, _PREHASHED)
    except (ValueError, InvalidSignature):  # off the curve, or a wrong signature
        return False
    return True


def p256verify(computation: ComputationAPI) -> ComputationAPI:
    """py-evm precompile entry point."""
    computation.consume_gas(GAS, reason="P256VERIFY precompile")
    computation.output = SUCCESS if p256_verify(bytes(computation.msg.data)) else b""
    return computation
