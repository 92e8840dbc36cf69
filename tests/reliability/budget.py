"""How long the contract state machines run: a short budget in the README's
test command, the full one with ``TRUSTMESH_INVARIANT_EXAMPLES`` (e.g. 100)."""

import os
from typing import Any

from hypothesis import HealthCheck, settings


def invariant_settings(examples: int, steps: int, **overrides: Any) -> settings:
    """``examples`` runs (unless TRUSTMESH_INVARIANT_EXAMPLES says) of ``steps``
    steps each; no deadline (every step waits on a chain). ``overrides``: any
    other hypothesis setting (a planted failure's phases, say)."""
    chosen: dict[str, Any] = {
        "max_examples": int(os.environ.get("TRUSTMESH_INVARIANT_EXAMPLES", str(examples))),
        "stateful_step_count": steps,
        "deadline": None,
        "suppress_health_check": list(HealthCheck),
    }
    return settings(**{**chosen, **overrides})
