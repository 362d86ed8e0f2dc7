"""DKIM signatures (RFC 6376, RFC 8463) with dkimpy: rsa-sha256 or ed25519-sha256.

The private key comes from a file drip.yaml names or from an environment
variable holding it, never from drip.yaml itself. An RSA key is PEM; an
Ed25519 key is the base64 of its 32-byte seed (what ``dknewkey --ktype
ed25519`` writes), or a PKCS#8 PEM holding one. The signature covers the
headers mailbox providers' bulk-sender rules look at, so none of them can be
changed or added on the way without breaking it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from os import environ as os_environ
from pathlib import Path

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from drip.config import DkimSection, Site
from drip.errors import ConfigError, PermanentTransportError, Problem

# Signed once each; From and Subject twice ("over-signed") so that a second one added later breaks it.
SIGNED_HEADERS: tuple[str, ...] = (
    "From",
    "From",
    "To",
    "Subject",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-ID",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
)
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s+(.+?)\s+-----END \1-----", re.DOTALL)
# PKCS#8 wrapping of an Ed25519 seed (RFC 8410): a fixed 16-byte prefix, then the 32 bytes.
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
_RSA_OID = bytes.fromhex("06092a864886f70d010101") + b"\x05\x00"


@dataclass(frozen=True)
class DkimKey:
    """A parsed private key, ready for dkimpy, and the DNS record that publishes its public half."""

    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    private: bytes  # PEM (RSA) or base64 seed (Ed25519), as dkimpy takes them

    @property
    def key_type(self) -> str:
        return "ed25519" if self.algorithm == "ed25519-sha256" else "rsa"

    def public_base64(self) -> str:
        """The ``p=`` value of the selector's TXT record."""
        if self.key_type == "ed25519":
            import nacl.signing

            seed = base64.b64decode(self.private)
            return base64.b64encode(bytes(nacl.signing.SigningKey(seed).verify_key)).decode("ascii")
        parsed = parse_pem_private_key(self.private)
        return base64.b64encode(rsa_public_der(parsed["modulus"], parsed["publicExponent"])).decode("ascii")

    def record(self) -> str:
        """The whole TXT record to publish at ``selector._domainkey.domain``."""
        return f"v=DKIM1; k={self.key_type}; p={self.public_base64()}"


@dataclass(frozen=True)
class DkimSigner:
    """Sign RFC 5322 bytes as ``domain`` with ``selector``."""

    domain: str
    selector: str
    key: DkimKey

    def sign(self, data: bytes) -> bytes:
        """The message with its DKIM-Signature header first; a key dkimpy refuses fails the message."""
        try:
            header: bytes = dkim.sign(
                data,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.key.private,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=self.key.algorithm.encode("ascii"),
                include_headers=[h.encode("ascii") for h in SIGNED_HEADERS],
            )
        except (dkim.DKIMException, ValueError) as exc:
            raise PermanentTransportError(f"cannot DKIM-sign the message: {exc}") from None
        return header + data


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def rsa_public_der(modulus: int, exponent: int) -> bytes:
    """The X.509 SubjectPublicKeyInfo of an RSA key, the form DKIM's ``p=`` holds."""
    rsa_key = _der(0x30, _der_int(modulus) + _der_int(exponent))
    return _der(0x30, _der(0x30, _RSA_OID) + _der(0x03, b"\x00" + rsa_key))


def parse_key(text: bytes, algorithm: str, *, where: str) -> DkimKey:
    """A key as read from a file or the environment, checked now rather than at the first send."""
    text = text.strip()
    if algorithm == "ed25519-sha256":
        return DkimKey(algorithm, _ed25519_seed(text, where))
    match = _PEM.search(text)
    if match is None or "PRIVATE KEY" not in match.group(1).decode("ascii"):
        raise ValueError(f"{where} holds no PEM private key (-----BEGIN RSA PRIVATE KEY-----)")
    try:
        parse_pem_private_key(text)
    except (UnparsableKeyError, binascii.Error, ValueError, IndexError) as exc:
        raise ValueError(f"{where} holds an RSA key dkimpy cannot read: {exc}") from None
    return DkimKey(algorithm, text + b"\n")


def _ed25519_seed(text: bytes, where: str) -> bytes:
    """The base64 seed dkimpy takes, from a bare base64 seed or a PKCS#8 PEM."""
    match = _PEM.search(text)
    try:
        raw = base64.b64decode(match.group(2) if match else text, validate=match is None)
    except (binascii.Error, ValueError):
        raw = b""
    if match is not None and raw.startswith(_ED25519_PKCS8):
        raw = raw[len(_ED25519_PKCS8) :]
    if len(raw) != 32:
        raise ValueError(f"{where} holds no Ed25519 private key (the base64 of 32 bytes, or a PKCS#8 PEM)")
    return base64.b64encode(raw)


def load_key(site: Site, settings: DkimSection, environ: Mapping[str, str]) -> DkimKey:
    """The key from ``key_file`` (relative to the site) or else the variable ``key_env`` names."""
    if settings.key_file is not None:
        path = site.root / Path(settings.key_file)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                Problem(f"cannot read the DKIM key file {path}: {exc.strerror}", key="dkim.key_file")
            ) from None
        where, key = str(path), "dkim.key_file"
    else:
        value = environ.get(settings.key_env, "")
        if not value.strip():
            raise ConfigError(
                Problem(
                    f"environment variable {settings.key_env} is not set: it must hold the DKIM private key",
                    key="dkim.key_env",
                    hint="or name a file with dkim.key_file",
                )
            )
        text, where, key = value.encode("utf-8"), f"environment variable {settings.key_env}", "dkim.key_env"
    try:
        return parse_key(text, settings.algorithm, where=where)
    except ValueError as exc:
        raise ConfigError(Problem(str(exc), key=key)) from None


def signing_domain(site: Site) -> str:
    """``dkim.domain``, else the sender's domain (aligned with From, as DMARC wants)."""
    settings = site.config.dkim
    if settings is not None and settings.domain:
        return settings.domain.lower()
    return site.config.sender.email.rpartition("@")[2].lower()


def signer_for(site: Site, environ: Mapping[str, str] | None = None) -> DkimSigner | None:
    """The site's signer, or None when drip.yaml has no ``dkim:`` section."""
    settings = site.config.dkim
    if settings is None:
        return None
    key = load_key(site, settings, os_environ if environ is None else environ)
    return DkimSigner(domain=signing_domain(site), selector=settings.selector, key=key)
