# pragma version ~=0.4.3
"""
@title Example consumer of trustmesh aggregates: parametric insurance
@notice Pays the beneficiary once, when a final aggregate claim of the insured
        query (say, the mean temperature at these farms over a day) reaches the
        threshold: no oracle committee, and no on-chain work per reading. A
        test fixture, not part of trustmesh.
"""

interface Aggregates:
    def result_of(claim_id: bytes32) -> (bytes32, int256): view


event Paid:
    claim_id: bytes32
    result: int256
    amount: uint256


aggregates: public(immutable(address))
query_hash: public(immutable(bytes32))
threshold: public(immutable(int256))
beneficiary: public(immutable(address))
paid: public(bool)


@deploy
@payable
def __init__(aggregates_address: address, insured_query: bytes32, threshold_value: int256, paid_to: address):
    aggregates = aggregates_address
    query_hash = insured_query
    threshold = threshold_value
    beneficiary = paid_to


@external
def payout(claim_id: bytes32):
    """
    @notice Pay out on a final claim of the insured query at or above the threshold.
    """
    assert not self.paid, "insurance: already paid"
    query: bytes32 = empty(bytes32)
    result: int256 = 0
    query, result = staticcall Aggregates(aggregates).result_of(claim_id)
    assert query == query_hash, "insurance: not the insured query"
    assert result >= threshold, "insurance: below the threshold"
    self.paid = True
    amount: uint256 = self.balance
    log Paid(claim_id=claim_id, result=result, amount=amount)
    send(beneficiary, amount)
