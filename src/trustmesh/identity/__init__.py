"""Device identities: key pairs, did:key, encrypted keystores and PKCS#11 tokens.

>>> from trustmesh.identity import SoftwareSigner, did_from_key, key_from_did
>>> signer = SoftwareSigner.generate()            # ES256 (P-256) by default
>>> did = did_from_key(signer.public_key)         # "did:key:zDn…"
>>> key_from_did(did).verify(b"hello", signer.sign(b"hello"))   # raises if wrong

Whatever holds the key (memory, keystore, secure element), the rest of
trustmesh sees a :class:`Signer`.
"""

from trustmesh.identity._did import Did, did_from_key, key_from_did
from trustmesh.identity._keys import Alg, PublicKey, Signer, SoftwareSigner
from trustmesh.identity._keystore import (
    KdfParams,
    KeystoreInfo,
    create_keystore,
    open_keystore,
    read_keystore_info,
)
from trustmesh.identity._pkcs11 import Pkcs11Signer, Pkcs11Uri

__all__ = [
    "Alg",
    "Did",
    "KdfParams",
    "KeystoreInfo",
    "Pkcs11Signer",
    "Pkcs11Uri",
    "PublicKey",
    "Signer",
    "SoftwareSigner",
    "create_keystore",
    "did_from_key",
    "key_from_did",
    "open_keystore",
    "read_keystore_info",
]
