"""A reputation table with one subject's row changed: the lie that the Reputation
contract's tests (tests/chain/test_reputation_contract.py) and its state machine
(tests/reliability/test_reputation_invariants.py) post and prove."""

from __future__ import annotations

import dataclasses

from trustmesh.reputation import ReputationTable, assemble_table


def tampered(table: ReputationTable, subject: bytes, **changes: object) -> ReputationTable:
    """``table`` with ``subject``'s row changed (``changes``: its fields), reassembled."""
    rows = [
        dataclasses.replace(row, **changes) if row.subject == subject else row  # type: ignore[arg-type]
        for row in table.rows.values()
    ]
    return assemble_table(table.epoch, table.params, rows)
