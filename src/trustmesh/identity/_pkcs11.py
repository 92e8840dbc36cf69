"""A signer whose key lives in a PKCS#11 token and never leaves it.

Tokens are named by RFC 7512 PKCS#11 URIs::

    pkcs11:token=fleet;object=sensor-17?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234

- ``token`` (the token label) and ``object`` (the key label) are required;
- ``module-path`` defaults to ``$TRUSTMESH_PKCS11_MODULE``, then to SoftHSM2's
  module;
- the user PIN comes from ``pin-value``, ``pin-source`` (a file holding it), or
  ``$TRUSTMESH_PKCS11_PIN``.

Private keys are generated inside the token as sensitive, non-extractable
token objects. ES256 signs with ``CKM_ECDSA`` over a SHA-256 digest computed
here (the token returns raw ``r ‖ s``, the COSE form); EdDSA signs with
``CKM_EDDSA`` over the whole message.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import pkcs11
from asn1crypto.core import OctetString
from pkcs11.util.ec import encode_named_curve_parameters

from trustmesh.errors import SignerError
from trustmesh.identity._keys import Alg, PublicKey

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MODULE_ENV = "TRUSTMESH_PKCS11_MODULE"
PIN_ENV = "TRUSTMESH_PKCS11_PIN"
MAX_PIN_FILE = 4096

_CURVE_OID = {Alg.ES256: "1.2.840.10045.3.1.7", Alg.EDDSA: "1.3.101.112"}  # P-256, Ed25519
_KEY_TYPE = {Alg.ES256: pkcs11.KeyType.EC, Alg.EDDSA: pkcs11.KeyType.EC_EDWARDS}
_KEYGEN = {Alg.ES256: pkcs11.Mechanism.EC_KEY_PAIR_GEN, Alg.EDDSA: None}


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 URI that trustmesh uses."""

    token: str
    object: str
    module_path: str
    pin: str | None

    @classmethod
    def parse(cls, uri: str) -> Pkcs11Uri:
        """Parse ``uri``; :class:`SignerError` with the reason if it is unusable."""
        scheme, _, rest = uri.partition(":")
        if scheme.lower() != "pkcs11" or not rest:
            raise SignerError(f"not a PKCS#11 URI (expected 'pkcs11:token=…;object=…'): {uri!r}")
        path, _, query = rest.partition("?")
        attrs = _attributes(path, ";", uri)
        queries = _attributes(query, "&", uri)
        for required in ("token", "object"):
            if not attrs.get(required):
                raise SignerError(f"PKCS#11 URI needs a '{required}=' attribute: {uri!r}")
        pin = queries.get("pin-value") or os.environ.get(PIN_ENV)
        if "pin-source" in queries:
            pin = _read_pin_file(queries["pin-source"])
        module = queries.get("module-path") or os.environ.get(MODULE_ENV) or DEFAULT_MODULE
        return cls(token=attrs["token"], object=attrs["object"], module_path=module, pin=pin)


class Pkcs11Signer:
    """A :class:`~trustmesh.identity.Signer` backed by a key in a PKCS#11 token.

    Use as a context manager (or call :meth:`close`) to end the token session.
    """

    def __init__(self, session: Any, private_key: Any, public_key: PublicKey) -> None:
        self._session = session
        self._private_key = private_key
        self._public_key = public_key

    @classmethod
    def open(cls, uri: str | Pkcs11Uri) -> Pkcs11Signer:
        """Open the existing key that ``uri`` names."""
        parsed = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
        session = _open_session(parsed, rw=False)
        try:
            private_key = _find(session, parsed.object, pkcs11.ObjectClass.PRIVATE_KEY)
            public_obj = _find(session, parsed.object, pkcs11.ObjectClass.PUBLIC_KEY)
            public_key = _public_key_of(public_obj)
        except BaseException:
            session.close()
            raise
        return cls(session, private_key, public_key)

    @classmethod
    def generate(cls, uri: str | Pkcs11Uri, alg: Alg = Alg.ES256) -> Pkcs11Signer:
        """Generate a new key pair inside the token, labelled with the URI's ``object``.

        Refuses if the token already holds a key with that label.
        """
        parsed = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
        session = _open_session(parsed, rw=True)
        try:
            existing = list(
                session.get_objects(
                    {
                        pkcs11.Attribute.LABEL: parsed.object,
                        pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
                    }
                )
            )
            if existing:
                raise SignerError(
                    f"token {parsed.token!r} already holds a key labelled {parsed.object!r}"
                )
            params = session.create_domain_parameters(
                _KEY_TYPE[alg],
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OID[alg])},
                local=True,
            )
            public_obj, private_key = params.generate_keypair(
                store=True,
                label=parsed.object,
                mechanism=_KEYGEN[alg],
                private_template={
                    pkcs11.Attribute.SENSITIVE: True,
                    pkcs11.Attribute.EXTRACTABLE: False,
                },
            )
            public_key = _public_key_of(public_obj)
        except pkcs11.PKCS11Error as exc:
            session.close()
            raise SignerError(f"token {parsed.token!r}: key generation failed ({exc!r})") from None
        except BaseException:
            session.close()
            raise
        return cls(session, private_key, public_key)

    @property
    def alg(self) -> Alg:
        return self._public_key.alg

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        try:
            if self.alg is Alg.ES256:
                signature = self._private_key.sign(
                    hashlib.sha256(message).digest(), mechanism=pkcs11.Mechanism.ECDSA
                )
            else:
                signature = self._private_key.sign(message, mechanism=pkcs11.Mechanism.EDDSA)
        except pkcs11.PKCS11Error as exc:
            raise SignerError(f"PKCS#11 signing failed ({exc!r})") from None
        return bytes(signature)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _attributes(text: str, separator: str, uri: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for part in filter(None, text.split(separator)):
        name, eq, value = part.partition("=")
        if not eq:
            raise SignerError(f"malformed PKCS#11 URI attribute {part!r} in {uri!r}")
        attrs[name.lower()] = unquote(value)
    return attrs


def _read_pin_file(source: str) -> str:
    path = Path(source.removeprefix("file:"))
    try:
        with path.open("rb") as f:
            return f.read(MAX_PIN_FILE).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SignerError(f"cannot read the PIN from {path}: {exc}") from None


def _open_session(uri: Pkcs11Uri, *, rw: bool) -> Any:
    if not Path(uri.module_path).is_file():
        raise SignerError(
            f"PKCS#11 module {uri.module_path} not found (set module-path= in the URI "
            f"or ${MODULE_ENV})"
        )
    if uri.pin is None:
        raise SignerError(f"no PIN for token {uri.token!r}: give pin-value= or set ${PIN_ENV}")
    try:
        library = pkcs11.lib(uri.module_path)
        token = library.get_token(token_label=uri.token)
        return token.open(rw=rw, user_pin=uri.pin)
    except pkcs11.NoSuchToken:
        raise SignerError(f"no PKCS#11 token labelled {uri.token!r}") from None
    except pkcs11.PinIncorrect:
        raise SignerError(f"wrong PIN for token {uri.token!r}") from None
    except (pkcs11.PKCS11Error, RuntimeError) as exc:
        raise SignerError(f"cannot open token {uri.token!r}: {exc!r}") from None


def _find(session: Any, label: str, object_class: pkcs11.ObjectClass) -> Any:
    try:
        return session.get_key(object_class=object_class, label=label)
    except pkcs11.NoSuchKey:
        kind = "private" if object_class is pkcs11.ObjectClass.PRIVATE_KEY else "public"
        raise SignerError(f"no {kind} key labelled {label!r} in the token") from None
    except pkcs11.MultipleObjectsReturned:
        raise SignerError(f"several keys labelled {label!r} in the token") from None


def _public_key_of(public_obj: Any) -> PublicKey:
    key_type = public_obj[pkcs11.Attribute.KEY_TYPE]
    # CKA_EC_POINT holds the point wrapped in a DER OCTET STRING (PKCS#11 v3.0 §2.3.3).
    point = bytes(OctetString.load(bytes(public_obj[pkcs11.Attribute.EC_POINT])).native)
    if key_type == pkcs11.KeyType.EC:
        return PublicKey.from_uncompressed_p256(point)
    if key_type == pkcs11.KeyType.EC_EDWARDS:
        return PublicKey(Alg.EDDSA, point)
    raise SignerError(f"unsupported key type {key_type!r} in the token")
