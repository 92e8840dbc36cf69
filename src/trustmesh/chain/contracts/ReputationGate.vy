# pragma version ~=0.4.3
"""
@title trustmesh ReputationGate (example consumer)
@notice Admits a device or node whose score in a final reputation table is at
        least `threshold`: the way any contract relies on a score, with the
        Merkle proof checked by the Reputation contract.
"""

interface Reputation:
    def score_of(
        subject: bytes32, epoch: uint256, score: uint256, proof: DynArray[bytes32, 64]
    ) -> uint256: view


event Admitted:
    subject: indexed(bytes32)
    epoch: uint256
    score: uint256


reputation: public(immutable(address))
threshold: public(immutable(uint256))
admitted: public(HashMap[bytes32, uint256])  # subject -> the epoch it was admitted on


@deploy
def __init__(reputation_: address, threshold_: uint256):
    """
    @param reputation_ The Reputation contract whose final tables count.
    @param threshold_ The least score admitted (a fraction of 10**9).
    """
    reputation = reputation_
    threshold = threshold_


@external
@view
def qualifies(
    subject: bytes32, epoch: uint256, score: uint256, proof: DynArray[bytes32, 64]
) -> bool:
    """
    @notice Whether `subject`'s proven score in epoch's final table reaches the
            threshold (reverts with the Reputation contract's reason if the score
            is not in it): what reading a score costs a contract.
    """
    return staticcall Reputation(reputation).score_of(subject, epoch, score, proof) >= threshold


@external
def admit(subject: bytes32, epoch: uint256, score: uint256, proof: DynArray[bytes32, 64]):
    """
    @notice Admit `subject` on its score in epoch's final table (reverts with the
            Reputation contract's reason if the score is not in it).
    """
    proven: uint256 = staticcall Reputation(reputation).score_of(subject, epoch, score, proof)
    assert proven >= threshold, "gate: score below the threshold"
    self.admitted[subject] = epoch
    log Admitted(subject=subject, epoch=epoch, score=proven)
