"""``trustmesh demo``: a device signs readings, anyone verifies them, tampering is caught."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from trustmesh.cli._common import err
from trustmesh.device import Device
from trustmesh.errors import InvalidReading
from trustmesh.identity import KdfParams, SoftwareSigner, create_keystore, open_keystore
from trustmesh.reading import verify_reading

SAMPLES = (("temperature", 21.5, "C"), ("humidity", 48, "%"), ("power", 3.25, "kW"))


def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Keep the device files here (default: temp).")
    ] = None,
) -> None:
    """Create a device, sign three readings, verify them, and show a forgery refused."""
    workdir = directory or Path(tempfile.mkdtemp(prefix="trustmesh-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    keystore = workdir / "device.keystore"
    password = secrets.token_urlsafe(16)
    info = create_keystore(keystore, SoftwareSigner.generate(), password, KdfParams())
    err.print(f"[bold]1. device created[/]  {info.did}")
    err.print(f"   key encrypted (Argon2id + AES-256-GCM) in {escape(str(keystore))}")
    device = Device(open_keystore(keystore, password), keystore.with_name("device.keystore.seq"))

    table = Table(title="2. signed at the source, verified by anyone (did:key is the key)")
    for column in ("seq", "sensor", "value", "bytes", "verified"):
        table.add_column(column)
    entries: list[bytes] = []
    for sensor, value, unit in SAMPLES:
        entry = device.sign(sensor, value, unit=unit)
        (workdir / f"reading-{len(entries) + 1}.cose").write_bytes(entry)
        reading = verify_reading(entry)
        entries.append(entry)
        table.add_row(
            str(reading.seq), sensor, f"{value} {unit}", str(len(entry)), "[green]valid[/]"
        )
    err.print(table)

    forged = bytearray(entries[0])
    forged[forged.index(b"temperature") - 20] ^= 0x01  # flip one bit inside the payload
    try:
        verify_reading(bytes(forged))
        err.print("[red]3. a tampered reading verified: this is a bug[/]")
        raise typer.Exit(1)
    except InvalidReading as exc:
        err.print(f"[bold]3. one flipped bit is caught[/]  [red]{escape(str(exc))}[/]")
    err.print(
        f"\nfiles in {escape(str(workdir))}; try: trustmesh verify "
        f"{escape(str(workdir / 'reading-1.cose'))}"
    )
