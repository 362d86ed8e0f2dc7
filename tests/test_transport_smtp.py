"""The SMTP transport's own quirks against a real aiosmtpd server on 127.0.0.1.

One connection reused, reconnecting once, reply codes, credentials and TLS. What every
transport promises is in test_transport_contract.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from outgoing import NOW, closed_port, outgoing
from smtp_server import SmtpServer, self_signed, smtp_server

from drip.config import SmtpSection
from drip.errors import ConfigError, PermanentTransportError, TransientTransportError
from drip.transports.smtp import SmtpTransport


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


def plain(server: SmtpServer, **kw: object) -> SmtpSection:
    return SmtpSection(host=server.host, port=server.port, security="none", timeout=5, **kw)


def test_one_connection_for_several_batches(server: SmtpServer) -> None:
    messages = [outgoing(i) for i in range(1, 21)]
    with SmtpTransport(plain(server), environ={}) as transport:
        first = transport.send_batch(messages[:10], now=NOW)
        second = transport.send_batch(messages[10:], now=NOW)
    assert all(r.ok for r in first + second)
    assert server.handler.connections == 1
    assert {m.connection for m in server.messages} == {1}
    assert transport.connections_opened == 1
    assert {m.mail_from for m in server.messages} == {"lettre@cto.example.org"}


def test_reconnects_once_when_the_server_hung_up(server: SmtpServer) -> None:
    with SmtpTransport(plain(server), environ={}) as transport:
        assert all(r.ok for r in transport.send_batch([outgoing(1), outgoing(2)], now=NOW))
        server.hang_up_all()  # an idle timeout between two batches
        assert all(r.ok for r in transport.send_batch([outgoing(3), outgoing(4)], now=NOW))
        server.handler.hang_up_on_mail = 1  # a drop in the middle of a batch
        assert all(r.ok for r in transport.send_batch([outgoing(5), outgoing(6)], now=NOW))
    assert sorted(m.rcpt_tos[0] for m in server.messages) == sorted(
        f"lecteur{i}@example.org" for i in range(1, 7)
    )
    assert server.handler.connections == 3
    assert [m.connection for m in sorted(server.messages, key=lambda m: m.rcpt_tos)] == [1, 1, 2, 2, 3, 3]


def test_a_server_that_keeps_hanging_up_is_a_transient_failure(server: SmtpServer) -> None:
    server.handler.hang_up_on_mail = 2  # first try and the one reconnection
    with SmtpTransport(plain(server), environ={}) as transport:
        results = transport.send_batch([outgoing(1), outgoing(2)], now=NOW)
    assert isinstance(results[0].error, TransientTransportError)
    assert "hung up" in str(results[0].error)
    assert results[1].ok
    assert [m.rcpt_tos for m in server.messages] == [("lecteur2@example.org",)]


def test_a_4xx_recipient_is_transient_and_the_connection_goes_on(server: SmtpServer) -> None:
    server.handler.reject = {"lecteur2@example.org": "451 4.7.1 greylisted, try again later"}
    with SmtpTransport(plain(server), environ={}) as transport:
        results = transport.send_batch([outgoing(i) for i in range(1, 4)], now=NOW)
    assert [r.ok for r in results] == [True, False, True]
    transient = results[1].error
    assert isinstance(transient, TransientTransportError) and not transient.permanent
    assert "451" in str(transient) and "greylisted" in str(transient)
    assert server.handler.connections == 1


def test_unreachable_server_fails_the_whole_batch_transiently() -> None:
    settings = SmtpSection(host="127.0.0.1", port=closed_port(), security="none", timeout=2)
    with SmtpTransport(settings, environ={}) as transport:  # opening never raises: the batch reports it
        results = transport.send_batch([outgoing(1), outgoing(2), outgoing(3)], now=NOW)
    assert all(isinstance(r.error, TransientTransportError) for r in results)
    assert "cannot reach SMTP server" in str(results[0].error)
    assert transport.connections_opened == 0


def test_credentials_must_come_in_pairs_from_the_environment() -> None:
    settings = SmtpSection(username_env="MY_SMTP_USER", password_env="MY_SMTP_PASS")
    with pytest.raises(ConfigError, match="MY_SMTP_PASS is not set"):
        SmtpTransport(settings, environ={"MY_SMTP_USER": "lettre"})
    with pytest.raises(ConfigError, match="MY_SMTP_USER is not set"):
        SmtpTransport(settings, environ={"MY_SMTP_PASS": "secret"})


def _authenticator(
    server: object, session: object, envelope: object, mechanism: str, data: object
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"lettre", b"s3cret")
    return AuthResult(success=ok, handled=False)


def test_starttls_and_login_with_credentials_from_the_environment(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path)
    env = {"DRIP_SMTP_USERNAME": "lettre", "DRIP_SMTP_PASSWORD": "s3cret"}
    with smtp_server(
        tls_context=server_ctx, require_starttls=True, authenticator=_authenticator, auth_required=True
    ) as server:
        settings = SmtpSection(host=server.host, port=server.port, security="starttls", timeout=5)
        with SmtpTransport(settings, environ=env, ssl_context=client_ctx) as transport:
            assert all(r.ok for r in transport.send_batch([outgoing(1), outgoing(2)], now=NOW))

        wrong = {"DRIP_SMTP_USERNAME": "lettre", "DRIP_SMTP_PASSWORD": "wrong"}
        results = SmtpTransport(settings, environ=wrong, ssl_context=client_ctx).send_batch(
            [outgoing(3)], now=NOW
        )
        assert isinstance(results[0].error, PermanentTransportError)
        assert "535" in str(results[0].error)

        # The system trust store does not know this certificate: no silent downgrade, no send.
        results = SmtpTransport(settings, environ=env).send_batch([outgoing(4)], now=NOW)
        assert isinstance(results[0].error, TransientTransportError)
        assert "CERTIFICATE_VERIFY_FAILED" in str(results[0].error)
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["lecteur1@example.org", "lecteur2@example.org"]


def test_starttls_required_but_not_offered_never_sends_in_clear(server: SmtpServer) -> None:
    settings = SmtpSection(host=server.host, port=server.port, security="starttls", timeout=5)
    results = SmtpTransport(settings, environ={}).send_batch([outgoing(1)], now=NOW)
    assert isinstance(results[0].error, TransientTransportError)
    assert "STARTTLS" in str(results[0].error)
    assert server.messages == []


def test_implicit_tls(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path)
    with smtp_server(implicit_tls=server_ctx) as server:
        settings = SmtpSection(host=server.host, port=server.port, security="tls", timeout=5)
        with SmtpTransport(settings, environ={}, ssl_context=client_ctx) as transport:
            assert all(r.ok for r in transport.send_batch([outgoing(1)], now=NOW))
    assert [m.rcpt_tos for m in server.messages] == [("lecteur1@example.org",)]


def test_the_envelope_names_an_internationalised_domain_in_idna(server: SmtpServer) -> None:
    with SmtpTransport(plain(server), environ={}) as transport:
        [result] = transport.send_batch([outgoing(1, to_email="zoe@bücher.de")], now=NOW)
    assert result.ok, result.error
    assert server.messages[0].rcpt_tos == ("zoe@xn--bcher-kva.de",)
