"""One rule for email addresses, wherever they come in (web form, CLI, import) and go out (every transport).

Stored form: email-validator's normal form, lower-cased, with an internationalised domain kept in Unicode
(``user@bücher.de`` and ``user@xn--bcher-kva.de`` are one subscriber). Sent form: the same address with its
domain in IDNA (punycode), which every SMTP server and provider accepts. A non-ASCII local part
(``josé@…``) would need SMTPUTF8 end to end, which SendGrid and most relays do not offer: it is refused
before anything is stored, with the reason, rather than accepted and failed at every send.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # RFC 5321 path limit, less the angle brackets


class AddressError(ValueError):
    """An address drip will not store, with the reason a person can act on."""


def normalise_address(raw: str) -> str:
    """The stored form of ``raw``; :class:`AddressError` saying why when it cannot be mailed."""
    text = raw.strip()
    if not text.isprintable() or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise AddressError("an address cannot contain control or invalid characters")
    if len(text) > MAX_LENGTH:
        raise AddressError(f"an address is at most {MAX_LENGTH} characters, this one has {len(text)}")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(_reason(str(exc))) from None
    return result.normalized.lower()


def _reason(message: str) -> str:
    if "before the @-sign are not supported" in message:
        return (
            "letters with accents or other non-ASCII characters before the @ cannot be delivered "
            f"by most mail servers ({message.rstrip('.')})"
        )
    return message


def sending_form(stored: str) -> str:
    """The address as transports write it: the domain in IDNA (punycode), the local part unchanged."""
    if stored.isascii():
        return stored
    local, sep, domain = stored.rpartition("@")
    if not sep:
        return stored
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return stored  # not a valid IDNA domain: the transport's own check refuses it, permanently


def hashing_form(address: str) -> str:
    """The form an address is hashed in for suppression: the stored form when valid, else trimmed and
    lower-cased, so a provider's punycode address and the subscriber's Unicode one match."""
    try:
        return normalise_address(address)
    except AddressError:
        return address.strip().lower()
