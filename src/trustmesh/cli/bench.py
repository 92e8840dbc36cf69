"""``trustmesh bench …``: the benchmarks, from the installed package."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from trustmesh.bench import log as log_bench
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


@app.command()
def log(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    entries: Annotated[
        int, typer.Option("--entries", help="Entries of 200 bytes, appended in batches of 1,000.")
    ] = 1_000_000,
) -> None:
    """Log store append rate, proof latency and bytes per entry, against pymerkle."""
    if entries < 2 * log_bench.BATCH:
        raise UsageError(f"--entries must be at least {2 * log_bench.BATCH}")
    with err.status("benchmarking the log…") as status:
        result = log_bench.run(entries=entries, progress=status.update)
    if json_output:
        print_json(result)
        return
    table = Table(title=f"log store, {entries:,} entries of {log_bench.ENTRY_BYTES} bytes")
    for column in ("measure", "trustmesh", "pymerkle"):
        table.add_column(column)
    for label, key in (
        ("append / s", "append_per_s"),
        ("append / s, first 10^4", "append_per_s_first_1e4"),
        ("append / s, last 10^4", "append_per_s_last_1e4"),
        ("proof p50 ms", "proof_p50_ms"),
        ("proof p99 ms", "proof_p99_ms"),
        ("bytes / entry", "bytes_per_entry"),
    ):
        table.add_row(label, str(result[key]), str(result[f"pymerkle_{key}"]))
    err.print(table)


@app.command()
def chain(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Gas of register, rotate, revoke and anchor (2^10, 2^20, 2^32), and embedded tx/s."""
    from trustmesh.bench import chain as chain_bench  # web3 and py-evm: imported when run

    with err.status("measuring gas and throughput on a fresh embedded chain…"):
        result = chain_bench.run()
    if json_output:
        print_json(result)
        return
    table = Table(title="contracts and the embedded chain")
    table.add_column("measure")
    table.add_column("value")
    for name, value in result["gas"].items():
        if isinstance(value, dict):
            for size, gas in value.items():
                table.add_row(f"gas: {name} at {size}", f"{gas:,}")
        else:
            table.add_row(f"gas: {name}", f"{value:,}")
    table.add_row("gas per reading (anchor / 10,000)", str(result["gas_per_reading"]))
    table.add_row(
        "embedded tx/s (in-memory eth-tester)",
        f"{result['embedded_tx_per_s']} ({result['in_memory_eth_tester_tx_per_s']})",
    )
    err.print(table)


@app.command()
def ingest(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    readings: Annotated[
        int, typer.Option("--readings", help="Readings in the HTTP run (MQTT: 20,000 at most).")
    ] = 60_000,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Keep sending for this many seconds.")
    ] = None,
    devices: Annotated[int, typer.Option("--devices", help="Simulated devices.")] = 100,
) -> None:
    """End-to-end readings/s over HTTP and MQTT against a local node, vs raw ES256 verification."""
    from trustmesh.bench import ingest as ingest_bench

    if readings < 100 or devices < 8:
        raise UsageError("--readings must be at least 100 and --devices at least 8")
    with err.status("starting a node and driving it…"):
        result = ingest_bench.run(readings=readings, duration=duration, devices=devices)
    if json_output:
        print_json(result)
        return
    table = Table(title="ingest, end to end (receipt received)")
    table.add_column("measure")
    table.add_column("value")
    for key, value in result.items():
        if key not in ("benchmark", "goals"):
            table.add_row(key, str(value))
    err.print(table)


@app.command()
def reputation(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    subjects: Annotated[
        int, typer.Option("--subjects", help="Subjects in the epoch (the goal's million).")
    ] = 1_000_000,
    edges: Annotated[
        int, typer.Option("--edges-per-subject", help="Witness attestations per subject.")
    ] = 16,
) -> None:
    """Scoring and committing an epoch (against the bare power iteration), and the
    Reputation contract's gas: post, read through a contract, a one-step fraud proof."""
    from trustmesh.bench import reputation as reputation_bench

    if subjects < 2 or edges < 2:
        raise UsageError("--subjects and --edges-per-subject must be at least 2")
    with err.status("scoring and committing…"):
        result = reputation_bench.run(subjects=subjects, edges_per_subject=edges)
    if json_output:
        print_json(result)
        return
    for key, value in result.items():
        if key != "goals":
            err.print(f"{key:>28}: {value}")


@app.command()
def market(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    vouchers: Annotated[int, typer.Option("--vouchers", help="Vouchers checked per key.")] = 3000,
    readings: Annotated[
        int, typer.Option("--readings-per-settlement", help="Paid readings one settlement pays.")
    ] = 5000,
) -> None:
    """Voucher checks per second (an EOA's and a device's P-256 key, against the bare
    signature checks) and a channel's gas per paid reading (against a payment settled
    on-chain each time)."""
    from trustmesh.bench import market as market_bench

    if vouchers < 100 or readings < 1:
        raise UsageError("--vouchers must be at least 100 and --readings-per-settlement 1")
    with err.status("checking vouchers and settling…"):
        result = market_bench.run(vouchers_count=vouchers, readings_per_settlement=readings)
    if json_output:
        print_json(result)
        return
    for key, value in result.items():
        if key != "goals":
            err.print(f"{key:>32}: {value}")


@app.command()
def aggregate(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    readings: Annotated[
        int, typer.Option("--readings", help="Readings the timed tree is built over.")
    ] = 1_000_000,
) -> None:
    """A claim's tree built per second (against a plain Merkle tree), and the gas of
    posting a claim and of proving each kind of lie at 10^3, 10^6 and 10^9 readings
    (against checking every reading on-chain)."""
    from trustmesh.bench import aggregate as aggregate_bench

    if readings < 1000:
        raise UsageError("--readings must be at least 1000")
    with err.status("benchmarking aggregates…") as status:
        result = aggregate_bench.run(readings, progress=status.update)
    if json_output:
        print_json(result)
        return
    for key, value in result.items():
        if key != "goals":
            err.print(f"{key:>40}: {value}")


@app.command()
def mesh(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    batches: Annotated[int, typer.Option("--batches", help="Batches sent each way.")] = 40,
    readings: Annotated[int, typer.Option("--readings-per-batch", help="A batch's size.")] = 100,
    watchers: Annotated[int, typer.Option("--watchers", help="Peers hearing checkpoints.")] = 20,
    checkpoints: Annotated[
        int, typer.Option("--checkpoints", help="Checkpoints timed to every watcher.")
    ] = 20,
    partition_seconds: Annotated[
        float, typer.Option("--partition-seconds", help="How long 30% of a fleet is cut off.")
    ] = 60.0,
) -> None:
    """Readings relayed over the mesh (one and two relays) per second, and each batch's
    time to its receipts, against the same batches sent to the node over HTTP; then
    how long a new checkpoint takes to reach every one of N watchers on the mesh, and
    what a fleet partitioned (30% of it) and healed loses."""
    from trustmesh.bench import mesh as mesh_bench

    if batches < 1 or not 1 <= readings <= 2_000:
        raise UsageError("--batches must be at least 1 and --readings-per-batch 1..2000")
    if not 1 <= watchers <= 100 or checkpoints < 1 or not 0 < partition_seconds <= 3600:
        raise UsageError("--watchers must be 1..100, --checkpoints at least 1 and "
                         "--partition-seconds in (0, 3600]")  # fmt: skip
    with err.status("relaying readings…") as status:
        result = mesh_bench.run(batches, readings, status.update, watchers, checkpoints,
                                partition_seconds)  # fmt: skip
    if json_output:
        print_json(result)
        return
    for key, value in result.items():
        if key != "goals":
            err.print(f"{key:>24}: {value}")


@app.command()
def soak(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    minutes: Annotated[float, typer.Option("--minutes", help="How long the load lasts.")] = 10.0,
    load: Annotated[
        float, typer.Option("--load", help="Share of the rate measured first (0..1].")
    ] = 0.8,
) -> None:
    """A node at a share of its own HTTP ingest rate for minutes, a watcher following
    it: per minute readings/s, p99, RSS and open files of both, the watcher's lag."""
    from trustmesh.bench import soak as soak_bench

    if not 0 < minutes <= 24 * 60 or not 0 < load <= 1:
        raise UsageError("--minutes must be in (0, 1440] and --load in (0, 1]")
    with err.status(f"soaking a node for {minutes:g} minutes…"):
        result = soak_bench.run(minutes=minutes, load=load)
    if json_output:
        print_json(result)
        return
    table = Table(title=f"soak: {result['readings_per_s']} readings/s for {minutes:g} min")
    for key in result["series"][0]:
        table.add_column(key)
    for part in result["series"]:
        table.add_row(*(str(v) for v in part.values()))
    err.print(table)
    for key, value in result.items():
        if key != "series":
            err.print(f"{key:>28}: {value}")
