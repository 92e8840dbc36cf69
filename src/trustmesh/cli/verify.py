"""``trustmesh verify FILE``: check a signed reading, offline."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from trustmesh.cli._common import UsageError, print_json
from trustmesh.errors import InvalidReading
from trustmesh.reading import MAX_ENTRY_SIZE, parse_reading, verify_reading

EXIT_INVALID = 1


def verify(
    file: Annotated[
        Path,
        typer.Argument(
            help="A COSE_Sign1 reading ('-' for stdin).", dir_okay=False, allow_dash=True
        ),
    ],
) -> None:
    """Verify a reading against the key its did:key names.

    Prints {"valid", "did", "seq", "ts", "sensor", "value", "unit", "reason"};
    exits 0 if valid, 1 if not, 2 on a usage error.
    """
    data = _read(file)
    result: dict[str, Any] = dict.fromkeys(("did", "seq", "ts", "sensor", "value", "unit"))
    try:
        reading = verify_reading(data)
    except InvalidReading as exc:
        with contextlib.suppress(InvalidReading):
            # If the structure parsed, say whose reading failed (marked invalid).
            result.update(parse_reading(data).summary())
        print_json({"valid": False, **result, "reason": str(exc)})
        raise typer.Exit(EXIT_INVALID) from None
    print_json({"valid": True, **reading.summary(), "reason": None})


def _read(file: Path) -> bytes:
    # Read one byte past the limit, so an oversized input is refused as such
    # without reading all of it.
    try:
        if str(file) == "-":
            return sys.stdin.buffer.read(MAX_ENTRY_SIZE + 1)
        with file.open("rb") as f:
            return f.read(MAX_ENTRY_SIZE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from None
