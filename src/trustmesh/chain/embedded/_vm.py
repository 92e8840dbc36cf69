"""py-evm's Prague VM with P256VERIFY added at 0x100.

The state reads its precompiles from the computation class, so adding the
precompile there also makes 0x100 a warm address (EIP-2929), as on chains
that have it.
"""

from __future__ import annotations

from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.computation import PragueComputation
from eth.vm.forks.prague.state import PragueState

from trustmesh.chain.embedded._p256verify import ADDRESS, p256verify


class TrustmeshComputation(PragueComputation):
    _precompiles = {**PragueComputation._precompiles, ADDRESS: p256verify}  # noqa: RUF012


class TrustmeshState(PragueState):
    computation_class = TrustmeshComputation


class TrustmeshVM(PragueVM):
    """Prague plus P256VERIFY."""

    fork = "trustmesh-prague-p256"
    _state_class = TrustmeshState
