"""The device side: what a device (or a process beside it) needs to sign readings.

It depends only on the identity and reading modules (no web3, no ASGI), so it
runs on a Raspberry-class device.

>>> import pathlib, tempfile
>>> from trustmesh.identity import SoftwareSigner
>>> from trustmesh.reading import verify_reading
>>> device = Device(SoftwareSigner.generate(), pathlib.Path(tempfile.mkdtemp()) / "device.seq")
>>> verify_reading(device.sign("temperature", 21.5, unit="C")).seq
1
"""

from trustmesh.device._counter import SeqCounter
from trustmesh.device._device import Device

__all__ = ["Device", "SeqCounter"]
