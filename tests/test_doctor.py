"""`drip doctor` against a real DNS server: dnslib's, on 127.0.0.1 at a free port, asked by dnspython."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RR, TXT
from dnslib.server import BaseResolver, DNSServer

import drip.cli.doctor  # noqa: F401  (registers the command on the group)
from drip.cli import cli
from drip.config import load_site
from drip.inputs.dns import DnsError, resolver, txt_records
from drip.preview.doctor import run_checks
from drip.transports.dkim import parse_key

DOMAIN = "cto.example.org"


class Zone(BaseResolver):  # type: ignore[misc]
    """TXT records by name; anything else is an empty answer."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if request.q.qtype == QTYPE.TXT:
            for value in self.txt.get(name, []):
                chunks = [value[i : i + 255].encode() for i in range(0, len(value), 255)]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


class Quiet:
    """dnslib's logger prints every query; these tests read the command's own output."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    records = Zone()
    server = DNSServer(records, address="127.0.0.1", port=0, logger=Quiet())
    server.start_thread()
    try:
        yield records, f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture(scope="module")
def pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def site(root: Path, extra: str = "") -> Path:
    (root / "drip.yaml").write_text(
        f"site:\n  name: T\n  base_url: https://{DOMAIN}\nsender:\n  name: T\n  email: lettre@{DOMAIN}\n"
        "postal_address: Somewhere\ntransport:\n  backend: smtp\n  smtp:\n    host: smtp.relay.example\n"
        + extra,
        encoding="utf-8",
    )
    return root


def run(root: Path, nameserver: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(
        cli,
        ["--site", str(root), "doctor", "--nameserver", nameserver],
        env=env or {},
        catch_exceptions=False,
    )


def test_a_bare_domain_gets_every_record_to_publish(zone: tuple[Zone, str], tmp_path: Path) -> None:
    _, nameserver = zone
    result = run(site(tmp_path), nameserver)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("error   SPF    cto.example.org publishes no SPF record")
    assert f'publish: {DOMAIN}. TXT "v=spf1 a:smtp.relay.example ~all"' in result.output
    assert "error   DKIM   drip.yaml has no dkim: section" in result.output
    assert (
        f'publish: _dmarc.{DOMAIN}. TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@{DOMAIN}"' in result.output
    )


def test_a_well_set_domain_is_all_ok(zone: tuple[Zone, str], tmp_path: Path, pem: bytes) -> None:
    records, nameserver = zone
    (tmp_path / "dkim.pem").write_bytes(pem)
    key = parse_key(pem, "rsa-sha256", where="test")
    records.txt = {
        DOMAIN: ["google-site-verification=abc", "v=spf1 a:smtp.relay.example -all"],
        f"drip._domainkey.{DOMAIN}": [key.record()],  # over 255 characters: two strings
        f"_dmarc.{DOMAIN}": ["v=DMARC1; p=reject; rua=mailto:dmarc@cto.example.org"],
    }
    result = run(site(tmp_path, "dkim:\n  selector: drip\n  key_file: dkim.pem\n"), nameserver)
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.output.splitlines()] == [
        ["ok", "SPF"],
        ["ok", "DKIM"],
        ["ok", "DMARC"],
    ]


def test_what_is_wrong_is_said_with_the_fix(zone: tuple[Zone, str], tmp_path: Path, pem: bytes) -> None:
    records, nameserver = zone
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    records.txt = {
        DOMAIN: ["v=spf1 +all"],
        f"drip._domainkey.{DOMAIN}": [parse_key(other_pem, "rsa-sha256", where="t").record()],
        "example.org": [],
        "_dmarc.example.org": ["v=DMARC1; p=none"],  # the organisational domain's
    }
    root = site(tmp_path, "dkim:\n  selector: drip\n")
    checks = run_checks(
        load_site(root),
        lambda n: txt_records(resolver(nameserver), n),
        {"DRIP_DKIM_PRIVATE_KEY": pem.decode()},
    )
    spf, dkim, dmarc = checks
    assert (spf.level, dkim.level, dmarc.level) == ("error", "error", "warning")
    assert "+all" in spf.message
    assert "not the public half" in dkim.message
    assert dkim.publish is not None and dkim.publish.startswith(
        f'drip._domainkey.{DOMAIN}. TXT "v=DKIM1; k=rsa; p='
    )
    assert "p=none" in dmarc.message and "_dmarc.example.org" in dmarc.message


def test_spf_duplicates_and_a_missing_dkim_key(zone: tuple[Zone, str], tmp_path: Path) -> None:
    records, nameserver = zone
    records.txt = {
        DOMAIN: ["v=spf1 mx ~all", "v=spf1 a ~all"],
        f"_dmarc.{DOMAIN}": ["v=DMARC1; p=quarantine"],
    }
    result = run(site(tmp_path, "dkim:\n  selector: drip\n"), nameserver, env={"DRIP_DKIM_PRIVATE_KEY": None})
    assert result.exit_code == 1
    assert "publishes 2 SPF records" in result.output
    assert "DRIP_DKIM_PRIVATE_KEY is not set" in result.output
    assert "ok      DMARC" in result.output


def test_a_silent_dns_server_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:  # bound, never answering
        quiet.bind(("127.0.0.1", 0))
        port = quiet.getsockname()[1]
        ask = resolver(f"127.0.0.1:{port}", timeout=0.5)
        with pytest.raises(DnsError, match="timed out"):
            txt_records(ask, DOMAIN)
        result = CliRunner().invoke(
            cli, ["--site", str(site(tmp_path)), "doctor", "--nameserver", "127.0.0.1:x"]
        )
    assert result.exit_code == 1 and "expected IP or IP:PORT" in result.output


def _spf_zone(records: Zone, own: str) -> None:
    records.txt = {
        DOMAIN: [own],
        "_spf.one.example": ["v=spf1 include:_spf.three.example mx a ptr -all"],  # 4, and its include's 3
        "_spf.three.example": ["v=spf1 a mx/24 exists:%{i}.x.example ip4:192.0.2.1 -all"],  # 3
        "_spf.two.example": ["v=spf1 redirect=_spf.one.example"],  # 1, and the redirect's 7
        "_spf.loop.example": [f"v=spf1 include:{DOMAIN} ~all"],  # back to the start: counted, not followed
        f"_dmarc.{DOMAIN}": ["v=DMARC1; p=reject"],
    }


def test_spf_over_ten_dns_lookups_through_includes_is_a_warning(
    zone: tuple[Zone, str], tmp_path: Path
) -> None:
    records, nameserver = zone
    _spf_zone(records, "v=spf1 a:smtp.relay.example include:_spf.one.example include:_spf.two.example -all")
    result = run(site(tmp_path), nameserver)
    spf = next(line for line in result.output.splitlines() if "SPF" in line)
    # 1 (a:) + 1 + 7 (include one, with three's) + 1 + 1 + 7 (include two, its redirect to one)
    assert spf.startswith("warning SPF") and "takes 18 DNS lookups" in spf and "RFC 7208" in spf


def test_spf_at_ten_lookups_and_an_include_loop_are_counted_once(
    zone: tuple[Zone, str], tmp_path: Path
) -> None:
    records, nameserver = zone
    _spf_zone(records, "v=spf1 include:_spf.one.example include:_spf.loop.example -all")
    checks = run_checks(load_site(site(tmp_path)), lambda n: txt_records(resolver(nameserver), n), {})
    # 1 + 7 (include one) + 1 + 1 (include loop, whose include of the domain itself is not followed)
    assert checks[0].level == "ok", checks[0].message
    records.txt[DOMAIN] = [records.txt[DOMAIN][0].replace(" -all", " mx -all")]
    checks = run_checks(load_site(site(tmp_path)), lambda n: txt_records(resolver(nameserver), n), {})
    assert checks[0].level == "warning" and "takes 11 DNS lookups" in checks[0].message
