"""DNS TXT look-ups with dnspython, for `drip doctor`: the records as published, or a clear failure.

A name with no TXT record (or no such name) is an empty list: that is an answer,
and the doctor says what to publish. A server that does not answer is an error.
"""

from __future__ import annotations

import dns.exception
import dns.resolver

from drip.errors import DripError


class DnsError(DripError):
    """The DNS could not be asked (no server, timeout, refusal)."""


def resolver(nameserver: str | None = None, *, timeout: float = 5.0) -> dns.resolver.Resolver:
    """The system's resolver, or one that asks only ``nameserver`` (``IP`` or ``IP:PORT``)."""
    if nameserver is None:
        try:
            found = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise DnsError(f"no DNS resolver configured on this machine ({exc}); pass --nameserver") from None
    else:
        host, sep, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else ("", "", "")
        found = dns.resolver.Resolver(configure=False)
        found.nameservers = [host if sep else nameserver]
        if sep:
            if not port.isdigit():
                raise DnsError(f"--nameserver {nameserver!r}: expected IP or IP:PORT, e.g. 127.0.0.1:5353")
            found.port = int(port)
    found.lifetime = timeout
    return found


def txt_records(ask: dns.resolver.Resolver, name: str) -> list[str]:
    """Every TXT record at ``name``, each one's strings joined (a long DKIM key is split in several)."""
    try:
        answer = ask.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise DnsError(f"no answer from the DNS for {name} (timed out)") from None
    except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
        raise DnsError(f"the DNS could not answer for {name}: {exc}") from None
    records: list[str] = []
    for rdata in answer:
        strings: tuple[bytes, ...] = rdata.strings
        records.append(b"".join(strings).decode("utf-8", "replace"))
    return records
