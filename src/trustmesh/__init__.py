"""trustmesh: a decentralized trust layer for IoT fleets.

Devices sign every reading at the source (COSE_Sign1, did:key identities);
anyone can verify a reading offline, with nothing but the bytes::

    from trustmesh.identity import SoftwareSigner
    from trustmesh.reading import sign_reading, verify_reading

    signer = SoftwareSigner.generate()
    entry = sign_reading(signer, seq=1, ts=1_700_000_000_000, sensor="temp", value=21.5)
    reading = verify_reading(entry)     # raises trustmesh.InvalidReading if not valid
    assert reading.value == 21.5
"""

from trustmesh.errors import Error, InvalidReading

__all__ = ["Error", "InvalidReading", "__version__"]
__version__ = "0.1.0"
