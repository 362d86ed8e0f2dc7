"""`drip doctor`: the sending domain's SPF, DKIM and DMARC records, checked against drip.yaml.

Gmail and Yahoo (since 2024) and Outlook (since 2025) want bulk mail authenticated:
SPF for the envelope domain, a DKIM signature, and a DMARC policy on the From
domain. Each check says ok, warning or error, and when something is to fix, the
exact record to publish.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from drip.config import Site
from drip.errors import ConfigError
from drip.transports.dkim import DkimKey, load_key, signing_domain

Level = Literal["ok", "warning", "error"]
Lookup = Callable[[str], list[str]]  # name -> its TXT records


@dataclass(frozen=True)
class Check:
    name: str  # SPF, DKIM, DMARC
    level: Level
    message: str
    publish: str | None = None  # the record to publish, as a zone file line


def txt_line(name: str, value: str) -> str:
    """A zone file line; a value over 255 characters (a 2048-bit key) as several strings, as TXT needs."""
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{name}. TXT {strings}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def spf_mechanism(site: Site) -> str:
    """What lets drip's sending server pass SPF: the SMTP relay's address, SendGrid's include, or MX."""
    transport = site.config.transport
    if transport.backend == "sendgrid":
        return "include:sendgrid.net"
    if transport.backend == "smtp":
        host = transport.smtp.host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return f"a:{host}"
        if ip.is_loopback:
            return "mx"  # a local relay: the mail leaves through the domain's own servers
        return f"ip{ip.version}:{host}"
    return "mx"


# RFC 7208 §4.6.4: evaluating a record may take at most 10 DNS-querying terms, its includes' and
# redirect's counted in; past that, receivers answer "permerror" and the mail fails SPF.
SPF_LOOKUP_LIMIT = 10
_QUERYING = ("include:", "a", "mx", "ptr", "exists:", "redirect=")


def _spf_records(records: list[str]) -> list[str]:
    return [r for r in records if r.lower().split(" ")[0] == "v=spf1"]


def _queries(term: str) -> bool:
    """Whether an SPF term makes the receiver ask the DNS: include, a, mx, ptr, exists, redirect."""
    bare = term.lstrip("+-~?")
    for name in _QUERYING:
        if name.endswith((":", "=")):
            if bare.startswith(name):
                return True
        elif bare == name or bare.startswith((f"{name}:", f"{name}/")):
            return True
    return False


def spf_lookups(record: str, lookup: Lookup, *, seen: frozenset[str] = frozenset()) -> int:
    """How many DNS-querying terms evaluating ``record`` takes, through its includes and redirect.

    A name included twice on one path (a loop) is counted once and not followed again; an
    included name with no SPF record counts its own query only.
    """
    count = 0
    for term in record.lower().split()[1:]:
        if not _queries(term):
            continue
        count += 1
        bare = term.lstrip("+-~?")
        target = bare.partition(":")[2] if bare.startswith("include:") else None
        if bare.startswith("redirect="):
            target = bare.partition("=")[2]
        if target and "%" not in target and target not in seen:  # a macro is expanded per message
            for nested in _spf_records(lookup(target))[:1]:
                count += spf_lookups(nested, lookup, seen=seen | {target})
    return count


def check_spf(domain: str, records: list[str], mechanism: str, lookup: Lookup | None = None) -> Check:
    """The envelope domain's SPF record; with ``lookup``, its includes are followed to count the
    DNS lookups it takes against the limit of 10."""
    wanted = txt_line(domain, f"v=spf1 {mechanism} ~all")
    spf = _spf_records(records)
    if not spf:
        return Check("SPF", "error", f"{domain} publishes no SPF record", wanted)
    if len(spf) > 1:
        return Check(
            "SPF",
            "error",
            f"{domain} publishes {len(spf)} SPF records; receivers reject all of them: keep one",
            wanted,
        )
    terms = spf[0].lower().split()
    ending = next((t for t in terms if t.endswith("all") and t.lstrip("+-~?") == "all"), None)
    if ending in ("all", "+all"):
        return Check(
            "SPF", "error", f"{domain}'s SPF record ends in {ending}: anyone may send as you", wanted
        )
    if ending is None or ending == "?all":
        return Check(
            "SPF", "warning", f"{domain}'s SPF record ends without ~all or -all: it asserts nothing", None
        )
    lookups = spf_lookups(spf[0], lookup, seen=frozenset({domain})) if lookup is not None else 0
    if lookups > SPF_LOOKUP_LIMIT:
        return Check(
            "SPF",
            "warning",
            f"{domain}'s SPF record takes {lookups} DNS lookups with its includes, over the limit of "
            f"{SPF_LOOKUP_LIMIT} (RFC 7208 §4.6.4): receivers treat it as an error and the mail fails SPF; "
            "drop includes you no longer send through, or replace them with ip4:/ip6: ranges",
            None,
        )
    if mechanism.lower() not in terms and not any(t.startswith(("include:", "redirect=")) for t in terms):
        return Check(
            "SPF",
            "warning",
            f"{domain}'s SPF record does not name {mechanism}: is drip's server allowed?",
            None,
        )
    return Check("SPF", "ok", f"{domain}: {spf[0]}")


def tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` tags (DKIM and DMARC records), names lower-cased, spaces dropped."""
    found: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found.setdefault(name.strip().lower(), "".join(value.split()))
    return found


def check_dkim(name: str, records: list[str], key: DkimKey) -> Check:
    wanted = txt_line(name, key.record())
    keys = [tags(r) for r in records if "p" in tags(r)]
    if not keys:
        return Check("DKIM", "error", f"no DKIM key published at {name}", wanted)
    published = keys[0]
    if not published["p"]:
        return Check("DKIM", "error", f"the DKIM key at {name} is revoked (empty p=)", wanted)
    if published.get("k", "rsa") != key.key_type:
        return Check(
            "DKIM",
            "error",
            f"{name} publishes a {published.get('k', 'rsa')} key, drip signs with {key.key_type}",
            wanted,
        )
    if published["p"] != key.public_base64():
        return Check(
            "DKIM", "error", f"the key at {name} is not the public half of drip's private key", wanted
        )
    return Check("DKIM", "ok", f"{name} publishes the public half of drip's {key.key_type} key")


def dkim_key(site: Site, environ: Mapping[str, str]) -> DkimKey | Check:
    """The site's signing key, or the check that says why there is none."""
    settings = site.config.dkim
    if settings is None:
        level: Level = "warning" if site.config.transport.backend == "sendgrid" else "error"
        return Check(
            "DKIM",
            level,
            "drip.yaml has no dkim: section, so drip signs nothing"
            + (" (SendGrid signs once its domain authentication is set up)" if level == "warning" else ""),
            "dkim:\n  selector: drip\n  key_file: dkim.pem   # or the PEM in DRIP_DKIM_PRIVATE_KEY",
        )
    try:
        return load_key(site, settings, environ)
    except ConfigError as exc:
        return Check("DKIM", "error", "; ".join(p.message for p in exc.problems))


def check_dmarc(domain: str, lookup: Lookup, dkim_domain: str | None) -> Check:
    """DMARC at the From domain, or at its parent (the organisational domain) when it has none."""
    wanted = txt_line(f"_dmarc.{domain}", f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}")
    found, where = [], domain
    for candidate in (domain, domain.partition(".")[2]):
        if candidate.count(".") < 1:
            break
        found, where = (
            [r for r in lookup(f"_dmarc.{candidate}") if r.strip().lower().startswith("v=dmarc1")],
            candidate,
        )
        if found:
            break
    if not found:
        return Check("DMARC", "error", f"no DMARC record at _dmarc.{domain}", wanted)
    if len(found) > 1:
        return Check("DMARC", "error", f"_dmarc.{where} has {len(found)} DMARC records: keep one", wanted)
    policy = tags(found[0]).get("p", "")
    if policy not in ("none", "quarantine", "reject"):
        return Check("DMARC", "error", f"_dmarc.{where} has no valid p= policy", wanted)
    if dkim_domain and not aligned(dkim_domain, domain):
        return Check(
            "DMARC",
            "warning",
            f"DKIM signs as {dkim_domain}, not aligned with the From domain {domain}",
            None,
        )
    if policy == "none":
        return Check(
            "DMARC",
            "warning",
            f"_dmarc.{where} has p=none: enough for the bulk-sender rules, but it protects nothing",
            wanted,
        )
    return Check("DMARC", "ok", f"_dmarc.{where}: {found[0]}")


def aligned(a: str, b: str) -> bool:
    """Relaxed alignment, near enough: one domain is the other or under it."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def run_checks(site: Site, lookup: Lookup, environ: Mapping[str, str]) -> list[Check]:
    """SPF for the envelope domain, DKIM for the selector, DMARC for the From domain."""
    from_domain = domain_of(site.config.sender.email)
    envelope = domain_of(site.config.bounces.return_path or site.config.sender.email)
    checks = [check_spf(envelope, lookup(envelope), spf_mechanism(site), lookup)]
    key = dkim_key(site, environ)
    dkim_domain = signing_domain(site) if site.config.dkim is not None else None
    if isinstance(key, Check):
        checks.append(key)
    else:
        assert site.config.dkim is not None
        name = f"{site.config.dkim.selector}._domainkey.{dkim_domain}"
        checks.append(check_dkim(name, lookup(name), key))
    checks.append(check_dmarc(from_domain, lookup, dkim_domain))
    return checks
