"""``trustmesh bench …``: the benchmarks, from the installed package."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from trustmesh.bench import verify as verify_bench
from trustmesh.cli._common import UsageError, err, print_json

app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON object.")


@app.command()
def verify(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    readings: Annotated[int, typer.Option("--readings", help="Readings per algorithm.")] = 2000,
    rounds: Annotated[int, typer.Option("--rounds", help="Passes over the readings.")] = 5,
) -> None:
    """Readings verified per second, against the bare signature check, ES256 and EdDSA."""
    if readings < 1 or rounds < 1:
        raise UsageError("--readings and --rounds must be at least 1")
    with err.status("verifying readings…"):
        result = verify_bench.run(readings=readings, rounds=rounds)
    if json_output:
        print_json(result)
        return
    table = Table(title="reading verification (per second)")
    for column in ("alg", "trustmesh", "baseline", "baseline library", "ratio"):
        table.add_column(column)
    for alg in ("es256", "eddsa"):
        row = result[alg]
        baseline = row[f"{row['baseline']}_per_s"]
        table.add_row(
            alg, f"{row['trustmesh_per_s']:,}", f"{baseline:,}", row["baseline"], str(row["ratio"])
        )
    err.print(table)
