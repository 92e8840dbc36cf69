"""How long the contract state machines run: a short budget in the README's
test command, the full one with ``TRUSTMESH_INVARIANT_EXAMPLES`` (e.g. 100)."""

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings


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


def planted_settings(examples: int, steps: int) -> settings:
    """A planted wrong expectation's run: the same ``examples`` every time (not the
    budget's: it must fail whatever the budget), generated only, stopping at the
    first failure."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        report_multiple_bugs=False,
    )
