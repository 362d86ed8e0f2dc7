"""The SendGrid transport's own quirks: the official client against a loopback server validating SendGrid's schema.

Batching (1000 personalizations, one request per step and sender), substitutions,
narrowing a refused request down, rate limits, custom_args. What every transport
promises is in test_transport_contract.py.
"""

from __future__ import annotations

import json
import re
import socket
import zlib
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fuzz_support import FUZZ
from hypothesis import given
from hypothesis import strategies as st
from outgoing import NOW, closed_port, outgoing, rendered
from sendgrid_server import API_KEY, Reply, SendgridServer, deliver, sendgrid_server

from drip.config import SendgridSection
from drip.errors import ConfigError, PermanentTransportError, TransientTransportError
from drip.render.slots import Slot
from drip.transports.base import OutgoingMessage
from drip.transports.message import check_address
from drip.transports.sendgrid import SendgridTransport, personalization, substitution_plan, substitutions

ENV = {"SENDGRID_API_KEY": API_KEY}


@pytest.fixture
def server() -> Iterator[SendgridServer]:
    with sendgrid_server() as s:
        yield s


def transport_for(
    server: SendgridServer, *, sandbox: bool = False, env: dict[str, str] = ENV
) -> SendgridTransport:
    return SendgridTransport(SendgridSection(host=server.url, sandbox=sandbox), environ=env, timeout=5)


def test_one_request_per_1000_recipients_of_a_step(server: SendgridServer) -> None:
    messages = [outgoing(i) for i in range(1, 2501)]
    with transport_for(server, sandbox=True) as transport:
        results = transport.send_batch(messages, now=NOW)
    assert server.schema_errors == []
    assert [len(r.body["personalizations"]) for r in server.requests] == [1000, 1000, 500]
    assert transport.requests_sent == 3
    assert [r.delivery_id for r in results] == list(range(1, 2501))
    assert all(r.ok for r in results)
    assert len({r.provider_id for r in results}) == 3  # X-Message-Id of each request

    body = server.requests[0].body
    assert body["from"] == {"email": "lettre@cto.example.org", "name": "Le métier de CTO"}
    assert body["reply_to"] == {"email": "bonjour@cto.example.org"}
    assert body["categories"] == ["le-role-du-cto", "welcome"]
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert server.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert body["personalizations"][41]["custom_args"] == {"delivery_id": "42"}
    # RFC 8058's second header, List-ID and Feedback-ID are the same for everyone: once, at the request level.
    assert body["headers"] == {
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-ID": "<le-role-du-cto.cto.example.org>",
        "Feedback-ID": "welcome:le-role-du-cto:drip:cto.example.org",
    }


def test_each_recipient_gets_exactly_the_personalised_email(server: SendgridServer) -> None:
    """The same slot is escaped in HTML, raw in text and single-line in the subject."""
    tricky = 'Zoé <b>"&" %drip_t_name%\r\nBcc: x@evil'
    messages = [outgoing(1, to_name=tricky), outgoing(2, to_name="Sam"), outgoing(3, values={})]
    results = transport_for(server).send_batch(messages, now=NOW)
    assert all(r.ok for r in results)
    assert server.schema_errors == []
    (request,) = server.requests
    for msg, p in zip(messages, request.body["personalizations"], strict=True):
        subject, html, text = msg.rendered.personalise(msg.values)
        assert deliver(request.body, p) == (subject, text, html)
    subject, text, html = deliver(request.body, request.body["personalizations"][0])
    assert subject == 'Bienvenue Zoé <b>"&" %drip_t_name% Bcc: x@evil : le rôle du CTO'
    assert 'Bonjour Zoé <b>"&" %drip_t_name% Bcc: x@evil,' in text
    assert "Bonjour Zoé &lt;b&gt;&quot;&amp;&quot; %drip_t_name% Bcc: x@evil,</p>" in html
    assert request.body["personalizations"][0]["to"][0]["name"] == 'Zoé <b>"&" %drip_t_name% Bcc: x@evil'
    # Empty values fall back to the slot's default in every part.
    subject, text, html = deliver(request.body, request.body["personalizations"][2])
    assert (
        subject == "Bienvenue à vous : le rôle du CTO"
        and "Bonjour à vous," in text
        and "Bonjour à vous," in html
    )


def test_every_character_reaches_each_part_as_the_email_writes_it(server: SendgridServer) -> None:
    """Values of plain characters go as they are, any other is escaped for JSON and HTML: each
    printable ASCII character, the controls and a few beyond ASCII, one recipient each."""
    chars = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\x00", "\x7f", "\x85", "\u2028", "é", "日", "😀"]
    messages = [outgoing(i, to_name=f"a{c}b") for i, c in enumerate(chars, start=1)]
    results = transport_for(server).send_batch(messages, now=NOW)
    assert all(r.ok for r in results) and server.schema_errors == []
    (request,) = server.requests
    for msg, p in zip(messages, request.body["personalizations"], strict=True):
        subject, html, text = msg.rendered.personalise(msg.values)
        assert deliver(request.body, p) == (subject, text, html), repr(msg.to_name)


def test_steps_and_senders_split_requests_and_results_keep_their_order(server: SendgridServer) -> None:
    other = rendered(step_key="/le-role-du-cto/recruter/")
    messages = [
        outgoing(1),
        outgoing(2, step=other),
        outgoing(3),
        outgoing(4, step=other),
        outgoing(5, reply_to=None),
    ]
    results = transport_for(server).send_batch(messages, now=NOW)
    sent = [[p["custom_args"]["delivery_id"] for p in r.body["personalizations"]] for r in server.requests]
    assert sorted(sent) == [["1", "3"], ["2", "4"], ["5"]]
    assert results[0].provider_id == results[2].provider_id != results[1].provider_id
    assert server.schema_errors == []


def test_a_refused_address_fails_only_its_recipient(server: SendgridServer) -> None:
    server.refuse = {"lecteur4@example.org"}
    results = transport_for(server).send_batch([outgoing(i) for i in range(1, 11)], now=NOW)
    assert "personalizations.3.to.0.email: Does not contain a valid address." in str(results[3].error)
    assert [r.status for r in server.requests] == [400, 202]
    assert len(server.requests[1].body["personalizations"]) == 9


def test_an_unexplained_400_is_narrowed_down_by_halves(server: SendgridServer) -> None:
    ok = Reply(202, headers={"X-Message-Id": "msg-ok"})
    # all four → 400; [1, 2] → 400; [1] → 202; [2] → 400; [3, 4] → 202
    server.replies.extend([Reply(400), Reply(400), ok, Reply(400), ok])
    results = transport_for(server).send_batch([outgoing(i) for i in range(1, 5)], now=NOW)
    assert [r.ok for r in results] == [True, False, True, True]
    assert isinstance(results[1].error, PermanentTransportError)
    assert [len(r.body["personalizations"]) for r in server.requests] == [4, 2, 1, 1, 2]


def test_a_400_about_shared_content_fails_the_request_at_once(server: SendgridServer) -> None:
    server.replies.append(
        Reply(
            400,
            body={"errors": [{"field": "content.0.value", "message": "The content value must be a string"}]},
        )
    )
    results = transport_for(server).send_batch([outgoing(i) for i in range(1, 4)], now=NOW)
    assert all(isinstance(r.error, PermanentTransportError) for r in results)
    assert "content.0.value: The content value must be a string" in str(results[0].error)
    assert len(server.requests) == 1


def test_429_is_transient_with_retry_after(server: SendgridServer) -> None:
    reset = int(NOW.timestamp()) + 45
    server.replies.extend(
        [Reply(429, headers={"Retry-After": "30"}), Reply(429, headers={"X-RateLimit-Reset": str(reset)})]
    )
    transport = transport_for(server)
    first = transport.send_batch([outgoing(1), outgoing(2)], now=NOW)
    second = transport.send_batch([outgoing(3)], now=NOW)
    for result, wait in ((first[0], 30.0), (first[1], 30.0), (second[0], 45.0)):
        assert isinstance(result.error, TransientTransportError)
        assert result.error.retry_after == wait
    assert len(server.requests) == 2  # a rate limit is not narrowed down


def test_500_is_transient_and_401_permanent(server: SendgridServer) -> None:
    server.replies.append(Reply(500, body={"errors": [{"message": "internal error"}]}))
    (result,) = transport_for(server).send_batch([outgoing(1)], now=NOW)
    assert isinstance(result.error, TransientTransportError) and "500: internal error" in str(result.error)

    results = transport_for(server, env={"SENDGRID_API_KEY": "SG.wrong"}).send_batch(
        [outgoing(2), outgoing(3)], now=NOW
    )
    assert all(isinstance(r.error, PermanentTransportError) for r in results)
    assert "401" in str(results[0].error)


def test_unreachable_is_transient() -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    transport = SendgridTransport(SendgridSection(host=host), environ=ENV, timeout=2)
    results = transport.send_batch([outgoing(1), outgoing(2)], now=NOW)
    assert all(isinstance(r.error, TransientTransportError) for r in results)
    assert "cannot reach SendGrid" in str(results[0].error)


def test_too_many_substitution_bytes_fail_alone_and_never_reach_sendgrid(server: SendgridServer) -> None:
    huge = {"name": "x" * 11_000, "unsubscribe_url": "https://cto.example.org/u", "email": "a@b.org"}
    results = transport_for(server).send_batch([outgoing(2), outgoing(3, values=huge)], now=NOW)
    assert isinstance(results[1].error, PermanentTransportError) and "10000" in str(results[1].error)
    assert results[0].ok
    (request,) = server.requests
    assert [p["to"][0]["email"] for p in request.body["personalizations"]] == ["lecteur2@example.org"]


def test_missing_api_key_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="environment variable MY_SG_KEY is not set"):
        SendgridTransport(SendgridSection(api_key_env="MY_SG_KEY"), environ={})


def test_a_413_is_split_in_halves(server: SendgridServer) -> None:
    server.replies.append(Reply(413, body={"errors": [{"message": "payload too large"}]}))
    results = transport_for(server).send_batch([outgoing(i) for i in (1, 2, 3)], now=NOW)
    assert all(r.ok for r in results)
    assert [len(r.body["personalizations"]) for r in server.requests] == [3, 1, 2]
    assert server.schema_errors == []


def test_a_silent_server_times_out_transiently() -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        host = f"http://127.0.0.1:{listener.getsockname()[1]}"
        transport = SendgridTransport(SendgridSection(host=host), environ=ENV, timeout=0.3)
        results = transport.send_batch([outgoing(1), outgoing(2)], now=NOW)
    assert all(isinstance(r.error, TransientTransportError) for r in results)
    assert "timed out" in str(results[0].error)


def test_a_plain_value_goes_once_for_text_and_html_and_each_part_reads_as_the_email(
    server: SendgridServer,
) -> None:
    """Links drip signs are URL-safe (:attr:`OutgoingMessage.plain`): one tag stands for them in
    the text and the HTML. Messages that say nothing of plainness go in a request of their own,
    every value checked."""
    linked = frozenset({"unsubscribe_url"})
    messages = [
        outgoing(1, plain=linked),
        outgoing(2, plain=linked, to_name="O'Brien & fils"),
        outgoing(3),
        outgoing(4, plain=linked, values={"name": "Sam", "email": "lecteur4@example.org"}),  # the default
    ]
    results = transport_for(server).send_batch(messages, now=NOW)
    assert all(r.ok for r in results) and server.schema_errors == []
    shared, checked = server.requests
    assert [p["custom_args"]["delivery_id"] for p in shared.body["personalizations"]] == ["1", "2", "4"]
    tags = set(shared.body["personalizations"][0]["substitutions"])
    assert "%drip_t_unsubscribe_url%" in tags and "%drip_h_unsubscribe_url%" not in tags
    assert any(t.startswith("%drip_h_name_") for t in tags)  # a name is escaped in HTML: a tag per part
    assert '<a href="%drip_t_unsubscribe_url%">' in shared.body["content"][1]["value"]
    assert "%drip_h_unsubscribe_url%" in checked.body["personalizations"][0]["substitutions"]
    _each_reads_as_its_email(server, messages)


def test_a_plain_slot_whose_default_is_not_keeps_a_tag_per_part(server: SendgridServer) -> None:
    """A recipient without the value gets the default, which HTML must escape: no shared tag then."""
    step = rendered(
        slots=(Slot("name", "à vous"), Slot("unsubscribe_url", "https://x.example/a&b"), Slot("email"))
    )
    linked = frozenset({"unsubscribe_url"})
    messages = [
        outgoing(1, step=step, plain=linked),
        outgoing(2, step=step, plain=linked, values={"name": "Sam", "email": "lecteur2@example.org"}),
    ]
    results = transport_for(server).send_batch(messages, now=NOW)
    assert all(r.ok for r in results) and server.schema_errors == []
    (request,) = server.requests
    assert any(
        t.startswith("%drip_h_unsubscribe_url_") for t in request.body["personalizations"][1]["substitutions"]
    )
    _each_reads_as_its_email(server, messages)
    assert 'href="https://x.example/a&amp;b"' in messages[1].rendered.personalise(messages[1].values)[1]


def test_a_step_whose_slots_are_all_plain_fills_one_template_and_reads_the_same(
    server: SendgridServer,
) -> None:
    """Every slot plain (a step whose only slots are signed links): the pairs come from one
    template, the same text the slot-by-slot path writes; a recipient missing a value takes that path."""
    everything = frozenset({"name", "unsubscribe_url", "email"})
    step = rendered(slots=(Slot("name", "vous"), Slot("unsubscribe_url"), Slot("email")))
    messages = [
        outgoing(1, step=step, plain=everything, to_name="Sam"),
        outgoing(
            2,
            step=step,
            plain=everything,
            values={"name": "", "unsubscribe_url": "https://cto.example.org/u/2", "email": "b@example.org"},
        ),
    ]
    plan = substitution_plan(messages[0].rendered, everything)
    assert plan.plain_names == ("name", "unsubscribe_url", "email")
    for msg in messages:
        assert substitutions(msg, plan) == substitutions(
            msg, replace(plan, plain_names=(), plain_template="")
        )
    assert json.loads("{" + substitutions(messages[0], plan) + "}") == {
        "%drip_t_name_" + format(zlib.crc32(b"vous"), "08x") + "%": "Sam",
        "%drip_t_unsubscribe_url%": "https://cto.example.org/unsubscribe/tok1.sig",
        "%drip_t_email%": "lecteur1@example.org",
    }
    results = transport_for(server).send_batch(messages, now=NOW)
    assert all(r.ok for r in results) and server.schema_errors == []
    _each_reads_as_its_email(server, messages)
    # One slot not plain: no template, each slot as before.
    assert substitution_plan(messages[0].rendered, frozenset({"unsubscribe_url"})).plain_names == ()


def _each_reads_as_its_email(server: SendgridServer, messages: list[OutgoingMessage]) -> None:
    """What SendGrid makes of each recipient's personalization is the email drip would write."""
    found = {
        int(p["custom_args"]["delivery_id"]): (request, p)
        for request in server.requests
        for p in request.body["personalizations"]
    }
    assert sorted(found) == sorted(m.delivery_id for m in messages)
    for msg in messages:
        request, p = found[msg.delivery_id]
        subject, html, text = msg.rendered.personalise(msg.values)
        assert deliver(request.body, p) == (subject, text, html), msg.delivery_id


def test_body_is_json_text_sent_as_utf8_json(server: SendgridServer) -> None:
    """The body is written as text: it must reach SendGrid as JSON with every value intact."""
    odd = 'Zoé "\\" \u2028 🙂 </script> \x00'
    messages = [outgoing(1, to_name=odd), outgoing(2, headers={"X-Campagne": 'été \\ "2026"'})]
    results = transport_for(server).send_batch(messages, now=NOW)
    assert all(r.ok for r in results)
    (request,) = server.requests
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert server.schema_errors == []
    first, second = request.body["personalizations"]
    # The name cleaned as for SMTP (control characters and runs of spaces become one space)
    assert first["to"] == [{"email": "lecteur1@example.org", "name": 'Zoé "\\" 🙂 </script>'}]
    for msg, p in zip(messages, request.body["personalizations"], strict=True):
        subject, html, text = msg.rendered.personalise(msg.values)
        assert deliver(request.body, p) == (subject, text, html)
    assert second["headers"]["X-Campagne"] == 'été \\ "2026"'
    assert second["custom_args"] == {"delivery_id": "2"}


def test_substitution_limit_counts_utf8_bytes_exactly(server: SendgridServer) -> None:
    """10,000 bytes of tags and values pass, one more byte fails: bytes, not characters or JSON escapes."""
    base = {"unsubscribe_url": "https://cto.example.org/u", "email": "a@b.org"}
    probe = transport_for(server).send_batch([outgoing(1, values={**base, "name": "x"})], now=NOW)
    assert probe[0].ok
    subs = server.requests[0].body["personalizations"][0]["substitutions"]
    fixed = sum(len(k.encode()) + len(v.encode()) for k, v in subs.items()) - 2  # without the two "x"
    room = (10_000 - fixed) // 2  # the name is written twice, in the text and the HTML tags
    assert fixed + 2 * room == 10_000 and room % 2 == 0, "é (2 bytes) must fill the room exactly"
    fits = "é" * (room // 2)
    over = fits + "x"  # one byte more in each tag
    results = transport_for(server).send_batch(
        [outgoing(2, values={**base, "name": fits}), outgoing(3, values={**base, "name": over})], now=NOW
    )
    assert results[0].ok
    assert isinstance(results[1].error, PermanentTransportError)
    assert "10002 bytes" in str(results[1].error)
    assert server.schema_errors == []
    sent = server.requests[-1].body["personalizations"]
    assert [p["custom_args"]["delivery_id"] for p in sent] == ["2"]
    assert sum(len(k.encode()) + len(v.encode()) for k, v in sent[0]["substitutions"].items()) == 10_000


def test_the_clients_debug_log_names_the_payload_size_not_its_content(
    server: SendgridServer, caplog: pytest.LogCaptureFixture
) -> None:
    """python_http_client formats every body into a debug line; ours formats as its size."""
    with caplog.at_level("DEBUG", logger="python_http_client"):
        results = transport_for(server).send_batch([outgoing(i) for i in range(1, 4)], now=NOW)
    assert all(r.ok for r in results)
    assert server.schema_errors == []
    payload_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("PAYLOAD")]
    (line,) = payload_lines
    assert re.fullmatch(r"PAYLOAD: <[\d,]+ bytes of JSON>", line), line
    assert "lecteur1@example.org" not in caplog.text  # no personal data in debug logs either


# Mostly what addresses and links are made of, so that many pass the checks; then what could break JSON.
_ADDRESSY = st.text(
    alphabet=st.sampled_from(list("abcXYZ019-._~%/?=&:+!#$*'") * 3 + list('"\\<>\r\n\t\x00 é\u2028{}')),
    max_size=30,
)


@FUZZ
@given(local=_ADDRESSY, url=_ADDRESSY, mailto=_ADDRESSY)
def test_a_personalization_is_json_that_reads_back_as_the_address_and_links_or_the_message_fails(
    local: str, url: str, mailto: str
) -> None:
    """The recipient and List-Unsubscribe go into the JSON as checked, without an encoder:
    whatever a reader's address or a link holds, the text parses back to exactly them, or the
    message fails alone before any request."""
    msg = outgoing(3, to_email=f"{local}@example.org", to_name="")
    msg.unsubscribe_url = f"https://cto.example.org/u/{url}"
    msg.unsubscribe_mailto = f"mailto:d@cto.example.org?subject={mailto}"
    try:
        text = personalization(msg, substitution_plan(msg.rendered))
    except PermanentTransportError:
        return
    read = json.loads(text)
    assert read["to"] == [{"email": check_address(msg.to_email, role="recipient")}]
    assert read["headers"]["List-Unsubscribe"] == f"<{msg.unsubscribe_url}>, <{msg.unsubscribe_mailto}>"
    assert read["custom_args"] == {"delivery_id": "3"}
