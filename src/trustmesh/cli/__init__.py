"""The ``trustmesh`` command line. Thin: each command calls the public API.

Exit codes: 0 success, 1 a failure the command reports (an invalid reading,
a wrong password, ...), 2 a usage error. No input produces a traceback; set
``TRUSTMESH_DEBUG=1`` to see one for an internal error.
"""

from __future__ import annotations

import os
import signal
import sys

import typer
from rich.markup import escape

from trustmesh import __version__
from trustmesh.cli import aggregate, bench, chain, device, market, node, proof, reputation, sim
from trustmesh.cli._common import UsageError, err
from trustmesh.cli.demo import demo
from trustmesh.cli.up import up
from trustmesh.cli.verify import verify
from trustmesh.cli.watch import watch
from trustmesh.errors import Error

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="trustmesh: signed IoT readings, transparency logs and on-chain anchors.",
)
app.add_typer(device.app, name="device")
app.add_typer(chain.app, name="chain")
app.add_typer(node.app, name="node")
app.add_typer(bench.app, name="bench")
app.add_typer(sim.app, name="sim")
app.add_typer(proof.app, name="proof")
app.add_typer(reputation.app, name="reputation")
app.add_typer(market.app, name="market")
app.add_typer(aggregate.app, name="aggregate")
app.command()(verify)
app.command()(watch)
app.command()(demo)
app.command()(up)


def _version(value: bool) -> None:
    if value:
        print(f"trustmesh {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """trustmesh: signed IoT readings, transparency logs and on-chain anchors."""


def main() -> None:
    """Console entry point: run the app, turning every error into a clear message."""
    # SIGINT stops every command cleanly (KeyboardInterrupt), even when we were
    # started with it ignored, as a non-interactive shell starts background jobs:
    # nodes, watchers and `trustmesh up` are stopped with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        app()
    except UsageError as exc:
        err.print(f"[red]usage error:[/] {escape(str(exc))}")
        sys.exit(EXIT_USAGE)
    except Error as exc:
        err.print(f"[red]error:[/] {escape(exc.diagnostics())}")
        sys.exit(EXIT_FAILURE)
    except Exception as exc:
        if os.environ.get("TRUSTMESH_DEBUG"):
            raise
        err.print(
            f"[red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(set TRUSTMESH_DEBUG=1 for a traceback, and please report it)"
        )
        sys.exit(EXIT_INTERNAL)
