"""The device side: what a device (or a process beside it) needs.

- :class:`Device`: sign readings with a durable, never-reused seq;
- :class:`Outbox`: the durable queue of readings not yet receipted;
- :class:`Uplink`: send them over HTTP (or MQTT: :class:`MqttRoute`, or the
  libp2p mesh: :class:`MeshRoute`) to the first node that takes them
  (failover, backoff), verify each receipt with the node's log key, forward
  receipts to watchers;
- :class:`MeshWitness`: challenge neighbours and answer their challenges over
  the mesh (peer witnessing); :func:`bind_peer`: bind a mesh peer's key to the
  device's did:key (logged like a reading).

It depends on the identity, reading and log-note modules, SQLite and httpx (no
web3, no ASGI), so it runs on a Raspberry-class device.

>>> import pathlib, tempfile
>>> from trustmesh.identity import SoftwareSigner
>>> from trustmesh.reading import verify_reading
>>> device = Device(SoftwareSigner.generate(), pathlib.Path(tempfile.mkdtemp()) / "device.seq")
>>> verify_reading(device.sign("temperature", 21.5, unit="C")).seq
1
"""

from trustmesh.device._binding import bind_peer
from trustmesh.device._counter import SeqCounter
from trustmesh.device._device import Device, wall_clock_ms
from trustmesh.device._mesh import MeshLink, MeshRoute
from trustmesh.device._outbox import Outbox, Refusal
from trustmesh.device._uplink import MqttRoute, Uplink
from trustmesh.device._witness import MeshWitness

__all__ = ["Device", "MeshLink", "MeshRoute", "MeshWitness", "MqttRoute", "Outbox", "Refusal",
           "SeqCounter", "Uplink", "bind_peer", "wall_clock_ms"]  # fmt: skip
