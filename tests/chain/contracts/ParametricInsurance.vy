# pragma version ~=0.4.3
"""
@title Example consumer of trustmesh readings: parametric insurance
@notice Pays the beneficiary once, when the insured device has signed a
        temperature at or above the threshold, proven through the Disputes
        contract's `verify_reading` (inclusion in an anchored log, device key,
        signature): no oracle committee. A test fixture, not part of trustmesh.
"""

struct VerifiedReading:
    device_id: bytes32
    seq: uint256
    ts: uint256
    sensor: String[64]
    value: int256


interface Verifier:
    def verify_reading(origin: String[128], size: uint256, index: uint256, entry: Bytes[8192], proof: DynArray[bytes32, 64]) -> VerifiedReading: view


event Claimed:
    seq: uint256
    value: int256
    amount: uint256


verifier: public(immutable(address))
device: public(immutable(bytes32))
threshold: public(immutable(int256))
beneficiary: public(immutable(address))
paid: public(bool)


@deploy
@payable
def __init__(verifier_address: address, insured: bytes32, threshold_value: int256, paid_to: address):
    verifier = verifier_address
    device = insured
    threshold = threshold_value
    beneficiary = paid_to


@external
def claim(origin: String[128], size: uint256, index: uint256, entry: Bytes[8192], proof: DynArray[bytes32, 64]):
    """
    @notice Claim the payout with a reading of the insured device.
    """
    assert not self.paid, "insurance: already paid"
    reading: VerifiedReading = staticcall Verifier(verifier).verify_reading(origin, size, index, entry, proof)
    assert reading.device_id == device, "insurance: not the insured device"
    assert reading.sensor == "temperature", "insurance: not a temperature"
    assert reading.value >= threshold, "insurance: below the threshold"
    self.paid = True
    amount: uint256 = self.balance
    log Claimed(seq=reading.seq, value=reading.value, amount=amount)
    send(beneficiary, amount)
