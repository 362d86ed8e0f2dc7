"""DKIM signing, checked by dkimpy's own verifier against the public key drip says to publish.

Real keys (RSA made with cryptography, Ed25519 with PyNaCl), real messages from the
message builder, and a real SMTP server for the transport; dkimpy's DNS look-up is
answered with the record :meth:`DkimKey.record` gives.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.parser import BytesParser
from pathlib import Path

import dkim
import nacl.signing
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dbfixtures import course_site
from outgoing import NOW, outgoing
from smtp_server import SmtpServer, smtp_server

from drip.cli import _register, cli
from drip.config import SmtpSection, load_site
from drip.errors import ConfigError
from drip.transports import get_transport
from drip.transports.dkim import DkimKey, DkimSigner, parse_key, signer_for
from drip.transports.message import build_message
from drip.transports.outbox import OutboxTransport
from drip.transports.smtp import SmtpTransport

COVERED = (b"from", b"subject", b"date", b"to", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post")


def rsa_pem(bits: int = 2048) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def ed25519_seed() -> bytes:
    return base64.b64encode(bytes(nacl.signing.SigningKey.generate()))


def ed25519_pkcs8() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def rsa_key() -> DkimKey:
    return parse_key(rsa_pem(), "rsa-sha256", where="test")


def verify(data: bytes, key: DkimKey, selector: str = "drip", domain: str = "cto.example.org") -> bool:
    """dkimpy's verdict, its DNS answered with the record drip tells the site to publish."""
    wanted = f"{selector}._domainkey.{domain}.".encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return key.record().encode() if name == wanted else b""

    return bool(dkim.verify(data, dnsfunc=dns))


def signed_headers(data: bytes) -> list[bytes]:
    msg = BytesParser().parsebytes(data)
    tags = dict(
        part.strip().split("=", 1) for part in "".join(msg["DKIM-Signature"].split()).split(";") if part
    )
    return [h.encode().lower() for h in tags["h"].split(":")]


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_a_signed_message_verifies_and_covers_the_bulk_sender_headers(
    algorithm: str, rsa_key: DkimKey
) -> None:
    key = rsa_key if algorithm == "rsa-sha256" else parse_key(ed25519_seed(), algorithm, where="test")
    signer = DkimSigner("cto.example.org", "drip", key)
    data = signer.sign(build_message(outgoing(7), now=NOW).data)
    assert data.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
    assert verify(data, key)
    assert set(COVERED) <= set(signed_headers(data))
    assert b"feedback-id" in signed_headers(data)


def test_a_changed_subject_or_an_added_from_breaks_the_signature(rsa_key: DkimKey) -> None:
    data = DkimSigner("cto.example.org", "drip", rsa_key).sign(build_message(outgoing(7), now=NOW).data)
    head, body = data.split(b"\r\n\r\n", 1)
    assert not verify(head.replace(b"Subject: ", b"Subject: Re: ", 1) + b"\r\n\r\n" + body, rsa_key)
    assert not verify(b"From: someone@evil.example\r\n" + data, rsa_key)
    assert not verify(data.replace(b"Bonjour", b"Bonsoir"), rsa_key)
    other = parse_key(rsa_pem(1024), "rsa-sha256", where="test")
    assert not verify(data, other)


def test_an_ed25519_pkcs8_pem_is_read_too() -> None:
    key = parse_key(ed25519_pkcs8(), "ed25519-sha256", where="test")
    data = DkimSigner("cto.example.org", "drip", key).sign(build_message(outgoing(1), now=NOW).data)
    assert verify(data, key)
    assert key.record().startswith("v=DKIM1; k=ed25519; p=")


def write_site(root: Path, dkim_section: str, backend: str = "outbox") -> Path:
    (root / "drip.yaml").write_text(
        "site:\n  name: Test\n  base_url: https://cto.example.org\n"
        "sender:\n  name: Test\n  email: lettre@cto.example.org\n"
        f"postal_address: Somewhere\ntransport:\n  backend: {backend}\n" + dkim_section,
        encoding="utf-8",
    )
    return root


def test_the_key_comes_from_a_file_or_the_environment(tmp_path: Path, rsa_key: DkimKey) -> None:
    (tmp_path / "dkim.pem").write_bytes(rsa_key.private)
    site = load_site(write_site(tmp_path, "dkim:\n  selector: s1\n  key_file: dkim.pem\n"))
    signer = signer_for(site, environ={})
    assert signer is not None and (signer.domain, signer.selector) == ("cto.example.org", "s1")
    site = load_site(write_site(tmp_path, "dkim:\n  selector: s1\n  algorithm: ed25519-sha256\n"))
    seed = ed25519_seed()
    signer = signer_for(site, environ={"DRIP_DKIM_PRIVATE_KEY": seed.decode()})
    assert signer is not None and signer.key.private == seed


def test_key_mistakes_are_located_errors(tmp_path: Path) -> None:
    site = load_site(write_site(tmp_path, "dkim:\n  selector: s1\n"))
    with pytest.raises(ConfigError, match="DRIP_DKIM_PRIVATE_KEY is not set"):
        signer_for(site, environ={})
    with pytest.raises(ConfigError, match="no PEM private key"):
        signer_for(site, environ={"DRIP_DKIM_PRIVATE_KEY": "not a key"})
    site = load_site(write_site(tmp_path, "dkim:\n  selector: s1\n  key_file: missing.pem\n"))
    with pytest.raises(ConfigError, match="cannot read the DKIM key file") as caught:
        signer_for(site, environ={})
    assert caught.value.problems[0].key == "dkim.key_file"


def test_a_key_written_into_drip_yaml_is_refused(tmp_path: Path) -> None:
    write_site(tmp_path, 'dkim:\n  selector: s1\n  key_file: "-----BEGIN RSA PRIVATE KEY-----\\nMIIE"\n')
    with pytest.raises(ConfigError, match="never the key itself") as caught:
        load_site(tmp_path)
    assert caught.value.problems[0].line == 12
    write_site(tmp_path, "dkim:\n  selector: s1\n  private_key: MIIE\n")
    with pytest.raises(ConfigError, match="private_key"):
        load_site(tmp_path)


def test_a_missing_key_stops_drip_send_with_a_located_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_site(tmp_path, "dkim:\n  selector: s1\n")
    monkeypatch.delenv("DRIP_DKIM_PRIVATE_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        get_transport(load_site(tmp_path))
    problem = caught.value.problems[0]
    assert problem.file == tmp_path / "drip.yaml" and problem.line is not None


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


def test_smtp_sends_signed_messages_from_the_return_path(server: SmtpServer, rsa_key: DkimKey) -> None:
    settings = SmtpSection(host=server.host, port=server.port, security="none", timeout=5)
    signer = DkimSigner("cto.example.org", "drip", rsa_key)
    with SmtpTransport(
        settings, environ={}, signer=signer, return_path="bounces@cto.example.org", verp=True
    ) as transport:
        results = transport.send_batch([outgoing(1), outgoing(2, to_email="bob@example.net")], now=NOW)
    assert all(r.ok for r in results)
    received = server.messages
    assert all(verify(m.data, rsa_key) for m in received)
    assert received[1].mail_from == "bounces+bob=example.net@cto.example.org"


def test_the_outbox_signs_when_configured(tmp_path: Path, rsa_key: DkimKey) -> None:
    signer = DkimSigner("cto.example.org", "drip", rsa_key)
    with OutboxTransport(tmp_path, signer=signer) as transport:
        assert transport.send_batch([outgoing(3)], now=NOW)[0].ok
    assert verify((tmp_path / "000000003.eml").read_bytes(), rsa_key)


def test_drip_run_shows_a_key_mistake_at_its_line_without_a_traceback(tmp_path: Path) -> None:
    root = course_site(tmp_path)
    with (root / "drip.yaml").open("a", encoding="utf-8") as f:
        f.write("dkim:\n  selector: s1\n  key_file: nowhere.pem\n")
    _register()
    result = CliRunner().invoke(
        cli, ["--site", str(root), "run", "--once"], env={"DRIP_DATABASE_URL": None}, catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    assert "drip.yaml:" in result.output and "cannot read the DKIM key file" in result.output
    assert "Traceback" not in result.output
