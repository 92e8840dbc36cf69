"""The one exception tree of trustmesh.

Every failure a caller is expected to handle is a subclass of :class:`Error`;
third-party exceptions (cbor2, cryptography, pkcs11) are translated where they
enter, so nothing else escapes the public API::

    Error
     ├── InvalidDid            a string that is not a did:key we support
     ├── InvalidSignature      a signature that does not verify
     ├── KeystoreError         a keystore file that cannot be used
     │    └── WrongPassword    ... because the password does not open it
     ├── SignerError           a signing backend (PKCS#11 token) failed
     ├── SeqCounterError       the device's persistent seq counter cannot be used
     ├── InvalidProof          a Merkle proof that does not verify
     ├── InvalidCheckpoint     a checkpoint or signed note that does not parse or verify
     ├── InvalidReceipt        a receipt that does not parse or verify
     ├── InvalidEvidence       reputation input that is not well-formed
     ├── InvalidVoucher        a payment-channel voucher that is malformed or forged
     ├── InvalidAggregate      an aggregate's query, model or claim that is malformed
     ├── StoreError            the log store cannot do what was asked
     │    └── DuplicateEntry   ... because (did, seq) is already logged
     ├── ChainError            a chain cannot be reached, or refused a transaction
     │    ├── Reverted         ... a contract reverted; the reason is the message
     │    └── RefusedUserOperation  ... a bundler or the EntryPoint refused a user op
     └── InvalidReading        a reading that must be refused; `reason` is stable
          ├── Oversized        larger than the entry limit
          ├── BadCbor          not well-formed or not deterministic CBOR
          ├── WrongStructure   well-formed CBOR, but not a COSE_Sign1 reading
          ├── UnknownAlg       alg is not ES256 or EdDSA (or not the key's alg)
          ├── KidNotDid        kid is not a did:key we support
          ├── MissingField     the payload lacks seq, ts, sensor or value
          ├── BadField         a payload field has the wrong type or range
          └── BadSignature     the signature does not verify under the key
"""

from __future__ import annotations

__all__ = [
    "BadCbor",
    "BadField",
    "BadSignature",
    "ChainError",
    "DuplicateEntry",
    "Error",
    "InvalidAggregate",
    "InvalidCheckpoint",
    "InvalidDid",
    "InvalidEvidence",
    "InvalidProof",
    "InvalidReading",
    "InvalidReceipt",
    "InvalidSignature",
    "InvalidVoucher",
    "KeystoreError",
    "KidNotDid",
    "MissingField",
    "Oversized",
    "RefusedUserOperation",
    "Reverted",
    "SeqCounterError",
    "SignerError",
    "StoreError",
    "UnknownAlg",
    "WrongPassword",
    "WrongStructure",
]


class Error(Exception):
    """Base of every error trustmesh raises on purpose."""

    def diagnostics(self) -> str:
        """A human-readable explanation, fit for an operator's terminal."""
        return str(self)


class InvalidDid(Error):
    """A DID that is malformed, or names a key type trustmesh does not support."""


class InvalidSignature(Error):
    """A signature that does not verify under the given public key."""


class KeystoreError(Error):
    """A keystore file that is missing, malformed, or unsafe to use."""


class WrongPassword(KeystoreError):
    """The password does not decrypt the keystore (or the file was altered)."""


class SignerError(Error):
    """A signing backend failed: token not found, wrong PIN, key missing, ..."""


class SeqCounterError(Error):
    """The device's persistent sequence counter cannot be read or advanced."""


class InvalidEvidence(Error):
    """Reputation input (evidence, an attestation, a stake) that is not well-formed."""


class InvalidProof(Error):
    """A Merkle inclusion or consistency proof that does not verify."""


class InvalidAggregate(Error):
    """An aggregate's query, model or claim that is malformed or inconsistent."""


class InvalidMeshMessage(Error):
    """A mesh message (or a device's mesh binding) that is malformed, forged or too big."""


class InvalidVoucher(Error):
    """A payment-channel voucher that is malformed or not validly signed."""


class InvalidCheckpoint(Error):
    """A checkpoint or signed note that is malformed or not validly signed."""


class InvalidReceipt(Error):
    """A receipt that is malformed or not validly signed."""


class StoreError(Error):
    """The log store failed or refused an operation (bad index, unavailable, ...)."""


class ChainError(Error):
    """A chain is unreachable, on the wrong chain id, or refused a transaction."""


class Reverted(ChainError):
    """A contract call or transaction reverted; the message is the revert reason."""


class RefusedUserOperation(ChainError):
    """A user operation a bundler or the EntryPoint refused (signature, nonce, funds...);
    the message carries the EntryPoint's code (``AA24 signature error``, ...)."""


class DuplicateEntry(StoreError):
    """An append named a (did, seq) that the log already holds."""


class CommitUncertain(StoreError):
    """The connection to the log store was lost while it committed an append: the
    append may or may not be in the store (the store's size will say which)."""


class InvalidReading(Error):
    """A reading that must be refused.

    ``reason`` is a short stable code (``"bad-cbor"``, ``"signature"``, ...)
    that scripts and HTTP problem types key on; the message says precisely
    what was wrong.
    """

    reason = "invalid"

    def __str__(self) -> str:
        detail = super().__str__()
        return f"{self.reason}: {detail}" if detail else self.reason


class Oversized(InvalidReading):
    reason = "oversized"


class BadCbor(InvalidReading):
    reason = "bad-cbor"


class WrongStructure(InvalidReading):
    reason = "wrong-structure"


class UnknownAlg(InvalidReading):
    reason = "unknown-alg"


class KidNotDid(InvalidReading):
    reason = "kid-not-did"


class MissingField(InvalidReading):
    reason = "missing-field"


class BadField(InvalidReading):
    reason = "bad-field"


class BadSignature(InvalidReading):
    reason = "signature"
