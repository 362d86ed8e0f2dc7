"""VERP return paths: the recipient written into the envelope sender, so a bounce names whom it is for.

``bounces@example.org`` and recipient ``alice@example.net`` give
``bounces+alice=example.net@example.org``. A bounce comes back to that address
whatever its body says (a forwarded mailbox, a report naming another address),
and the recipient is read back from it.
"""

from __future__ import annotations

import re

_VERP = re.compile(
    r"(?P<base>[^+@\s]+)\+(?P<local>[^=@\s]+(?:=[^=@\s]+)*)=(?P<domain>[^=@\s]+)@(?P<host>[^@\s]+)"
)


def verp_address(return_path: str, recipient: str) -> str:
    """The envelope sender for one recipient: ``base+local=domain@host``."""
    base, _, host = return_path.rpartition("@")
    local, _, domain = recipient.rpartition("@")
    return f"{base}+{local}={domain}@{host}"


def verp_recipient(address: str, return_path: str) -> str | None:
    """The recipient a VERP address names, when it is one built on ``return_path``; else None."""
    match = _VERP.fullmatch(address.strip().strip("<>"))
    if match is None:
        return None
    base, _, host = return_path.lower().rpartition("@")
    if match["base"].lower() != base or match["host"].lower() != host:
        return None
    return f"{match['local']}@{match['domain']}".lower()
