"""``trustmesh sim attack``: one misbehaviour, a watcher, the proof; one JSON object."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from trustmesh.cli._common import UsageError, err, print_json

app = typer.Typer(no_args_is_help=True, help="A misbehaviour harness for tests and demos.")

DEV_MNEMONIC = "test test test test test test test test test test test junk"


@app.command()
def attack(
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="invalid-entry, equivocation, split-view, broken-receipt, stall, "
            "or none (an honest run: no alert may be raised).",
        ),
    ],
    epoch: Annotated[float, typer.Option("--epoch", help="Seconds per epoch.")] = 2.0,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the readings and the lie.")] = 1,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Length of the honest phase (default: one epoch).")
    ] = 0.0,
    rpc: Annotated[
        str | None,
        typer.Option(
            "--rpc",
            help="A development JSON-RPC chain (anvil) instead of the embedded one; "
            "its first four accounts of the standard test mnemonic are used.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Start an honest setup, make one party lie, and measure the watcher: detected,
    latency_ms, proof_accepted, stake_before, stake_after, reporter_reward."""
    from trustmesh.sim.attack import KINDS, ChainSetup, embedded_setup, run_attack

    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}")
    if epoch < 0.5 or seconds < 0:
        raise UsageError("--epoch must be at least 0.5 s and --seconds non-negative")
    with err.status(f"simulating {kind}…"):
        if rpc is None:
            with (
                tempfile.TemporaryDirectory(prefix="trustmesh-sim-") as directory,
                embedded_setup(Path(directory)) as chain,
            ):
                result = run_attack(kind, chain, epoch=epoch, seed=seed, honest_seconds=seconds)
        else:
            from eth_account import Account

            from trustmesh.chain.client import rpc_web3

            Account.enable_unaudited_hdwallet_features()
            accounts = [
                Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
                for i in range(4)
            ]
            setup = ChainSetup("rpc", rpc_web3(rpc), accounts)
            result = run_attack(kind, setup, epoch=epoch, seed=seed, honest_seconds=seconds)
    if json_output:
        print_json(result)
        return
    for key, value in result.items():
        err.print(f"{key:>16}: {value}")


@app.command()
def reputation(
    devices: Annotated[int, typer.Option("--devices", help="Devices on the grid.")] = 10_000,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes among them.")] = 500,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs simulated.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the population and its attacks.")] = 1,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", help="Run only this scenario (repeatable; default: all)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a simulated population under each attack, against plain EigenTrust and
    plain beta reputation on the same data: AUC, honest false positives, the
    malicious reward share, epochs to detect."""
    from trustmesh.sim.reputation import SCENARIOS, run_simulation

    names = {s.name: s for s in SCENARIOS}
    unknown = [name for name in scenario or [] if name not in names]
    if unknown:
        raise UsageError(f"unknown scenario {unknown[0]!r}; one of: {', '.join(names)}")
    if devices < 4 or nodes < 1 or epochs < 1:
        raise UsageError("--devices must be at least 4, --nodes and --epochs at least 1")
    chosen = [names[name] for name in scenario] if scenario else list(SCENARIOS)
    with err.status("simulating…") as status:
        result = run_simulation(
            devices=devices,
            nodes=nodes,
            epochs=epochs,
            seed=seed,
            scenarios=chosen,
            progress=lambda name: status.update(f"simulating {name}…"),
        )
    if json_output:
        print_json(result)
        return
    for row in result["scenarios"]:
        err.print(
            f"{row['name']:>28}: auc {row['auc']:.4f}, false positives "
            f"{row['honest_false_positive_rate']:.2%}, malicious reward share "
            f"{row['malicious_reward_share']:.2%} (stake {row['malicious_stake_fraction']:.2%})"
        )
