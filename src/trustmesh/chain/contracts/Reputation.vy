# pragma version ~=0.4.3
"""
@title trustmesh Reputation
@notice Each epoch's reputation table, posted by a staked attester with a bond
        as one root: the score tree, which contracts read scores from
        (`score_of`), ending with a meta leaf that binds the state tree, the
        subject count and the model's parameters. During the challenge window
        anyone may prove one value of the table wrong in one step, from a few
        leaves of its state tree: a trust value from its attesters' values one
        step earlier, a score from its subject's state, a subject count from
        the chain of leaves. A proof pays the prover the bond and a share of
        the attester's stake, burns the rest, and clears the epoch for a
        correct table; a table not disproven in the window is final.
@dev    The trees are snekmate's sorted-pair keccak trees over OpenZeppelin's
        double-hashed leaves, as `trustmesh.reputation.table` builds them:
        score leaf `abi_encode(subject, epoch, score)`; meta leaf
        `abi_encode(META, epoch, state_root, subjects, staked, params_digest)`;
        state leaf `abi_encode(subject, epoch, position, next, staked_before,
        pretrust, out_weight, trust, edges, alpha, beta, evidence)` with
        `edges = keccak256(abi_encode(attesters, weights))`. One step of trust,
        for subject j: `t'[j] = ((den - num) * sum(t[i] * w[i][j] // W[i]) +
        num * pretrust[j]) // den`, t[0] = pretrust.
        Storage per epoch: the root (a new slot) and one slot of a ring that
        epochs reuse (poster, post time, epoch, final flag), so that a post
        costs one fresh slot once the ring has gone round. An attester leaves
        by unbonding for one window: no per-post bookkeeping.
"""

from snekmate.utils import merkle_proof_verification as mpv

ONE: constant(uint256) = 10**9
TRUST_MASS: constant(uint256) = 10**15
MAX_PROOF: constant(uint256) = 64
MAX_STEPS: constant(uint256) = 65  # trust values in a state leaf (steps + 1)
MAX_IN: constant(uint256) = 64  # kept attesters of one subject
RING: constant(uint256) = 64  # epochs whose post details are kept at once
MAX_EPOCH: constant(uint256) = 2**31
META: constant(bytes32) = 0xe671c0998bee2275f4e07363092d0d521549afdee077dd0c201ced525ffd2867
FINAL_BIT: constant(uint256) = 1
# Ranges no honest value leaves (trustmesh.reputation.params): a value outside is
# itself proof of a wrong table, and keeps every product here far from overflow.
MAX_WEIGHT: constant(uint256) = 9000  # attestations counted per edge (edge_cap)
MAX_EVIDENCE: constant(uint256) = 2**128  # alpha, beta


struct Meta:
    epoch: uint256
    state_root: bytes32
    subjects: uint256
    staked: uint256  # subjects with pre-trust
    params_digest: bytes32


struct StateLeaf:
    subject: bytes32
    epoch: uint256
    position: uint256
    next: bytes32
    staked_before: uint256
    pretrust: uint256
    out_weight: uint256
    trust: DynArray[uint256, MAX_STEPS]
    edges: bytes32
    alpha: uint256
    beta: uint256
    evidence: bytes32


event Joined:
    attester: indexed(address)
    stake: uint256


event Leaving:
    attester: indexed(address)
    unbond_at: uint256


event Withdrawn:
    attester: indexed(address)
    amount: uint256


event RootPosted:
    epoch: indexed(uint256)
    attester: indexed(address)
    root: bytes32
    state_root: bytes32
    subjects: uint256


event Owed:
    poster: indexed(address)
    amount: uint256


event Collected:
    poster: indexed(address)
    amount: uint256


event Finalized:
    epoch: indexed(uint256)
    attester: indexed(address)
    root: bytes32


event WrongValueProven:
    epoch: indexed(uint256)
    attester: indexed(address)
    subject: bytes32
    what: String[16]
    prover: indexed(address)
    paid: uint256


params_digest: public(immutable(bytes32))
teleport_num: public(immutable(uint256))
teleport_den: public(immutable(uint256))
prior: public(immutable(uint256))
trust_scale_num: public(immutable(uint256))
trust_scale_den: public(immutable(uint256))
steps: public(immutable(uint256))
min_stake: public(immutable(uint256))
bond: public(immutable(uint256))
window: public(immutable(uint256))  # seconds a table can be disproven after its post
reward_bps: public(immutable(uint256))  # of the attester's stake, paid to a prover

stake: public(HashMap[address, uint256])
# when a leaving attester's stake may be withdrawn: its last post's window has closed
unbond_at: public(HashMap[address, uint256])
roots: public(HashMap[uint256, bytes32])  # epoch -> posted root (empty again if disproven)
# epoch % RING -> poster (160 bits) | posted_at (64) | epoch (31) | final (1); an empty
# slot holds FINAL_BIT alone (never zero: a post then rewrites a used slot, 5k gas, not 22k)
ring: public(uint256[RING])
burned: public(uint256)
# bonds a poster refused when its table was finalized (a contract that takes no
# ether): its to collect, so that no poster can keep a table from being final
owed: public(HashMap[address, uint256])


@deploy
def __init__(
    params_digest_: bytes32,
    teleport_num_: uint256,
    teleport_den_: uint256,
    prior_: uint256,
    trust_scale_num_: uint256,
    trust_scale_den_: uint256,
    steps_: uint256,
    min_stake_: uint256,
    bond_: uint256,
    window_: uint256,
    reward_bps_: uint256,
):
    """
    @param params_digest_ `trustmesh.reputation.params_digest` of the model's parameters.
    @param teleport_num_ With `teleport_den_`, the share of trust returned to pre-trust a step.
    @param prior_ The beta prior, in thousandths of an event.
    @param trust_scale_num_ With `trust_scale_den_`, the scale of tau in a score's trust factor.
    @param steps_ Power-iteration steps (a state leaf holds steps + 1 trust values).
    @param min_stake_ The least stake (wei) that lets an account post.
    @param bond_ The bond (wei) each post carries.
    @param window_ Seconds during which a posted table can be disproven.
    @param reward_bps_ Share of a disproven attester's stake paid to the prover.
    """
    assert 0 < teleport_num_ and teleport_num_ < teleport_den_, "reputation: bad teleport"
    assert 0 < steps_ and steps_ < MAX_STEPS, "reputation: bad step count"
    assert reward_bps_ <= 10000, "reputation: reward above 100%"
    params_digest = params_digest_
    teleport_num = teleport_num_
    teleport_den = teleport_den_
    prior = prior_
    assert trust_scale_num_ > 0 and trust_scale_den_ > 0, "reputation: bad trust scale"
    trust_scale_num = trust_scale_num_
    trust_scale_den = trust_scale_den_
    steps = steps_
    min_stake = min_stake_
    bond = bond_
    window = window_
    reward_bps = reward_bps_
    for i: uint256 in range(RING):  # written once here, so that no post pays for a fresh slot
        self.ring[i] = FINAL_BIT


@external
@payable
def join():
    """
    @notice Stake `msg.value` as an attester (adds to an existing stake).
    """
    assert msg.value > 0, "reputation: no stake sent"
    self.stake[msg.sender] += msg.value
    log Joined(attester=msg.sender, stake=self.stake[msg.sender])


@external
def leave():
    """
    @notice Stop posting; the stake unbonds for one window (every post made
            before can still be disproven and slashed), then `withdraw`.
    """
    assert self.stake[msg.sender] > 0, "reputation: nothing staked"
    assert self.unbond_at[msg.sender] == 0, "reputation: already leaving"
    self.unbond_at[msg.sender] = block.timestamp + window
    log Leaving(attester=msg.sender, unbond_at=block.timestamp + window)


@external
def withdraw():
    """
    @notice Take back a left attester's stake once it has unbonded.
    """
    amount: uint256 = self.stake[msg.sender]
    unbond: uint256 = self.unbond_at[msg.sender]
    assert amount > 0, "reputation: nothing staked"
    assert unbond != 0, "reputation: not leaving"
    assert block.timestamp >= unbond, "reputation: still unbonding"
    self.stake[msg.sender] = 0
    self.unbond_at[msg.sender] = 0
    log Withdrawn(attester=msg.sender, amount=amount)
    send(msg.sender, amount)


@external
@payable
def post(epoch: uint256, root: bytes32, state_root: bytes32, subjects: uint256):
    """
    @notice Post an epoch's table: its score-tree root, with the bond as `msg.value`.
            `state_root` and `subjects` (in the root's meta leaf) are logged for
            whoever checks the table.
    """
    assert self.stake[msg.sender] >= min_stake, "reputation: attester not staked"
    assert self.unbond_at[msg.sender] == 0, "reputation: attester leaving"
    assert msg.value == bond, "reputation: the bond must be sent with the post"
    assert epoch < MAX_EPOCH, "reputation: epoch out of range"
    assert root != empty(bytes32), "reputation: empty root"
    assert self.roots[epoch] == empty(bytes32), "reputation: epoch already posted"
    slot: uint256 = self.ring[epoch % RING]
    assert slot & FINAL_BIT != 0, "reputation: an older epoch is still pending"
    self.roots[epoch] = root
    self.ring[epoch % RING] = self._pack(msg.sender, block.timestamp, epoch, False)
    log RootPosted(
        epoch=epoch, attester=msg.sender, root=root, state_root=state_root, subjects=subjects
    )


@external
def finalize(epoch: uint256):
    """
    @notice Make a table final once its window has passed; the bond goes back.
    """
    root: bytes32 = self.roots[epoch]
    assert root != empty(bytes32), "reputation: epoch not posted"
    slot: uint256 = self.ring[epoch % RING]
    assert self._slot_epoch(slot) == epoch and slot & FINAL_BIT == 0, "reputation: already final"
    poster: address = self._poster(slot)
    assert block.timestamp >= self._posted_at(slot) + window, "reputation: window still open"
    self.ring[epoch % RING] = slot | FINAL_BIT
    log Finalized(epoch=epoch, attester=poster, root=root)
    # As `send` pays (the 2,300-gas stipend), but a refusal is owed, not a revert: a
    # poster that refused its bond would otherwise hold the ring slot for good, and
    # with 64 bonds every later epoch.
    if not raw_call(poster, b"", value=bond, gas=0, revert_on_failure=False):
        self.owed[poster] += bond
        log Owed(poster=poster, amount=bond)


@external
def collect():
    """
    @notice Take the bonds this poster refused when its tables were finalized.
    """
    amount: uint256 = self.owed[msg.sender]
    assert amount > 0, "reputation: nothing owed"
    self.owed[msg.sender] = 0
    log Collected(poster=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)


@external
@view
def is_final(epoch: uint256) -> bool:
    """
    @notice Whether epoch's table is posted and past its window, undisproven.
    """
    return self._is_final(epoch)


@external
@view
def score_of(
    subject: bytes32, epoch: uint256, score: uint256, proof: DynArray[bytes32, MAX_PROOF]
) -> uint256:
    """
    @notice `score` if it is `subject`'s score in epoch's final table; reverts otherwise.
    @param proof The score leaf's siblings up to the posted root.
    """
    assert self._is_final(epoch), "reputation: no final table for the epoch"
    leaf: bytes32 = keccak256(keccak256(abi_encode(subject, epoch, score)))
    assert mpv._verify(proof, self.roots[epoch], leaf), "reputation: score not in the table"
    return score


@external
def prove_wrong_trust(
    meta: Meta,
    meta_proof: DynArray[bytes32, MAX_PROOF],
    leaf: StateLeaf,
    leaf_proof: DynArray[bytes32, MAX_PROOF],
    step: uint256,
    attesters: DynArray[bytes32, MAX_IN],
    weights: DynArray[uint256, MAX_IN],
    inputs: DynArray[StateLeaf, MAX_IN],
    input_proofs: DynArray[DynArray[bytes32, MAX_PROOF], MAX_IN],
):
    """
    @notice Prove a trust value wrong: `leaf.trust[step]` is not what one step
            gives from its attesters' values at `step - 1` (`inputs`, in the
            order of `attesters`), or, at step 0, not its pre-trust.
    """
    self._check_state(meta, meta_proof, leaf, leaf_proof)
    assert step < len(leaf.trust), "reputation: no such step"
    if leaf.trust[step] > TRUST_MASS or leaf.pretrust > TRUST_MASS:
        self._disprove(meta.epoch, leaf.subject, "range")
        return
    expected: uint256 = leaf.pretrust
    if step > 0:
        assert keccak256(abi_encode(attesters, weights)) == leaf.edges, "reputation: not its edges"
        assert len(inputs) == len(attesters) and len(input_proofs) == len(attesters), (
            "reputation: one leaf per attester"
        )
        inflow: uint256 = 0
        for i: uint256 in range(MAX_IN):
            if i == len(attesters):
                break
            source: StateLeaf = inputs[i]
            assert source.subject == attesters[i], "reputation: leaf of another subject"
            self._check_leaf(meta, source, input_proofs[i])
            weight: uint256 = weights[i]
            value: uint256 = source.trust[step - 1]
            if weight == 0 or weight > MAX_WEIGHT or source.out_weight < weight or value > TRUST_MASS:
                self._disprove(meta.epoch, leaf.subject, "range")
                return
            inflow += value * weight // source.out_weight
        expected = ((teleport_den - teleport_num) * inflow + teleport_num * leaf.pretrust) // (
            teleport_den
        )
    assert leaf.trust[step] != expected, "reputation: the value is right"
    self._disprove(meta.epoch, leaf.subject, "trust")


@external
def prove_wrong_score(
    meta: Meta,
    meta_proof: DynArray[bytes32, MAX_PROOF],
    leaf: StateLeaf,
    leaf_proof: DynArray[bytes32, MAX_PROOF],
    score: uint256,
    score_proof: DynArray[bytes32, MAX_PROOF],
):
    """
    @notice Prove a posted score wrong: not what the subject's state gives
            (beta reputation times min(1, t / (scale * TRUST_MASS // staked))).
    """
    self._check_state(meta, meta_proof, leaf, leaf_proof)
    score_leaf: bytes32 = keccak256(keccak256(abi_encode(leaf.subject, meta.epoch, score)))
    assert mpv._verify(score_proof, self.roots[meta.epoch], score_leaf), (
        "reputation: score not in the table"
    )
    trust: uint256 = leaf.trust[len(leaf.trust) - 1]
    if leaf.alpha >= MAX_EVIDENCE or leaf.beta >= MAX_EVIDENCE or trust > TRUST_MASS:
        self._disprove(meta.epoch, leaf.subject, "range")
        return
    beta_score: uint256 = (leaf.alpha + prior) * ONE // (leaf.alpha + leaf.beta + 2 * prior)
    even: uint256 = max(1, TRUST_MASS // max(1, meta.staked))
    tau: uint256 = max(1, even * trust_scale_num // trust_scale_den)
    expected: uint256 = beta_score * min(ONE, ONE * trust // tau) // ONE
    assert score != expected, "reputation: the score is right"
    self._disprove(meta.epoch, leaf.subject, "score")


@external
def prove_wrong_count(
    meta: Meta,
    meta_proof: DynArray[bytes32, MAX_PROOF],
    leaf: StateLeaf,
    leaf_proof: DynArray[bytes32, MAX_PROOF],
):
    """
    @notice Prove a subject count wrong: a leaf placed at or past the count, the
            last leaf (no next) placed anywhere but just before it or with a
            staked count that does not end at the posted one, the first leaf
            with staked subjects before it, or a leaf whose next is not above it.
    """
    self._check_state(meta, meta_proof, leaf, leaf_proof)
    staked_through: uint256 = self._staked_through(leaf)
    wrong: bool = leaf.position >= meta.subjects or staked_through > meta.staked
    wrong = wrong or (leaf.position == 0 and leaf.staked_before != 0)
    if leaf.next == empty(bytes32):
        wrong = wrong or leaf.position + 1 != meta.subjects or staked_through != meta.staked
    else:
        wrong = wrong or convert(leaf.next, uint256) <= convert(leaf.subject, uint256)
    assert wrong, "reputation: the count is right"
    self._disprove(meta.epoch, leaf.subject, "count")


@external
def prove_broken_chain(
    meta: Meta,
    meta_proof: DynArray[bytes32, MAX_PROOF],
    first: StateLeaf,
    first_proof: DynArray[bytes32, MAX_PROOF],
    second: StateLeaf,
    second_proof: DynArray[bytes32, MAX_PROOF],
):
    """
    @notice Prove the chain of state leaves broken by two of its leaves: the
            second is the first's next but not at the next position or not
            counting the staked subjects on from the first, or at the
            next position but not its next (the next was left out), or lies
            strictly between the first and its next (skipped), or the two share
            a position.
    """
    self._check_state(meta, meta_proof, first, first_proof)
    self._check_leaf(meta, second, second_proof)
    a: uint256 = convert(first.subject, uint256)
    b: uint256 = convert(second.subject, uint256)
    after: uint256 = convert(first.next, uint256)
    staked_through: uint256 = self._staked_through(first)
    wrong: bool = first.next == second.subject and second.position != first.position + 1
    wrong = wrong or (first.next == second.subject and second.staked_before != staked_through)
    wrong = wrong or (first.next != second.subject and second.position == first.position + 1)
    wrong = wrong or (a < b and (b < after or after == 0) and first.next != second.subject)
    wrong = wrong or (a != b and first.position == second.position)
    assert wrong, "reputation: the chain holds"
    self._disprove(meta.epoch, first.subject, "chain")


@internal
@pure
def _staked_through(leaf: StateLeaf) -> uint256:
    # staked subjects up to and including this leaf's, in id order
    if leaf.pretrust > 0:
        return leaf.staked_before + 1
    return leaf.staked_before


@internal
@view
def _check_state(
    meta: Meta,
    meta_proof: DynArray[bytes32, MAX_PROOF],
    leaf: StateLeaf,
    leaf_proof: DynArray[bytes32, MAX_PROOF],
):
    root: bytes32 = self.roots[meta.epoch]
    assert root != empty(bytes32), "reputation: epoch not posted"
    slot: uint256 = self.ring[meta.epoch % RING]
    assert self._slot_epoch(slot) == meta.epoch and slot & FINAL_BIT == 0, (
        "reputation: table already final"
    )
    assert block.timestamp < self._posted_at(slot) + window, "reputation: window closed"
    meta_leaf: bytes32 = keccak256(
        keccak256(
            abi_encode(
                META, meta.epoch, meta.state_root, meta.subjects, meta.staked, meta.params_digest
            )
        )
    )
    assert mpv._verify(meta_proof, root, meta_leaf), "reputation: meta not in the table"
    assert meta.params_digest == params_digest, "reputation: other parameters"
    self._check_leaf(meta, leaf, leaf_proof)


@internal
@view
def _check_leaf(meta: Meta, leaf: StateLeaf, proof: DynArray[bytes32, MAX_PROOF]):
    assert leaf.epoch == meta.epoch, "reputation: leaf of another epoch"
    assert len(leaf.trust) == steps + 1, "reputation: wrong number of steps"
    hashed: bytes32 = keccak256(
        keccak256(
            abi_encode(
                leaf.subject, leaf.epoch, leaf.position, leaf.next, leaf.staked_before,
                leaf.pretrust, leaf.out_weight, leaf.trust, leaf.edges, leaf.alpha, leaf.beta, leaf.evidence,
            )
        )
    )
    assert mpv._verify(proof, meta.state_root, hashed), "reputation: state leaf not in the table"


@internal
def _disprove(epoch: uint256, subject: bytes32, what: String[16]):
    slot: uint256 = self.ring[epoch % RING]
    poster: address = self._poster(slot)
    taken: uint256 = self.stake[poster]
    paid: uint256 = bond + taken * reward_bps // 10000
    self.stake[poster] = 0
    self.burned += taken - taken * reward_bps // 10000
    self.roots[epoch] = empty(bytes32)
    self.ring[epoch % RING] = FINAL_BIT  # empty again (not zero: the next post pays 5k)
    log WrongValueProven(
        epoch=epoch, attester=poster, subject=subject, what=what, prover=msg.sender, paid=paid
    )
    send(msg.sender, paid)


@internal
@view
def _is_final(epoch: uint256) -> bool:
    if self.roots[epoch] == empty(bytes32):
        return False
    slot: uint256 = self.ring[epoch % RING]
    if self._slot_epoch(slot) != epoch or slot & FINAL_BIT != 0:
        return True  # its ring slot was reused: it was final before that
    return block.timestamp >= self._posted_at(slot) + window


@internal
@pure
def _pack(poster: address, posted_at: uint256, epoch: uint256, final: bool) -> uint256:
    packed: uint256 = convert(poster, uint256) << 96 | (posted_at << 32) | (epoch << 1)
    if final:
        packed |= FINAL_BIT
    return packed


@internal
@pure
def _poster(slot: uint256) -> address:
    return convert(convert(slot >> 96, uint160), address)


@internal
@pure
def _posted_at(slot: uint256) -> uint256:
    return (slot >> 32) & (2**64 - 1)


@internal
@pure
def _slot_epoch(slot: uint256) -> uint256:
    return (slot >> 1) & (2**31 - 1)
