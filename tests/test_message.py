"""Every built message re-parses with the stdlib's strict policy, with the right headers and parts."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, MIMEPart

import pytest
from outgoing import NOW, outgoing, rendered

from drip.errors import PermanentTransportError
from drip.render.slots import Slot, marker, split
from drip.transports.base import OutgoingMessage, unsubscribe_mailto
from drip.transports.message import Built, build_message, clean, unsubscribe_targets


def parse(built: Built) -> EmailMessage:
    msg = email.message_from_bytes(built.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects
    return msg


def content(part: MIMEPart) -> str:
    """A decoded part with the wire's CRLF shown as newlines."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def assert_crlf_only(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    assert re.search(rb"(?<!\r)\n", data) is None, "bare LF"
    assert re.search(rb"\r(?!\n)", data) is None, "bare CR"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


def test_headers_parts_and_line_endings() -> None:
    built = build_message(outgoing(42), now=NOW)
    assert_crlf_only(built.data)
    msg = parse(built)

    assert msg["From"].addresses[0].display_name == "Le métier de CTO"
    assert msg["From"].addresses[0].addr_spec == "lettre@cto.example.org"
    assert msg["To"].addresses[0].display_name == "Zoé Martin"
    assert msg["To"].addresses[0].addr_spec == "lecteur42@example.org"
    assert msg["Reply-To"] == "bonjour@cto.example.org"
    assert msg["Subject"] == "Bienvenue Zoé Martin : le rôle du CTO"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == built.message_id
    assert re.fullmatch(r"<42\.[0-9a-f]{16}@cto\.example\.org>", built.message_id)
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Unsubscribe"] == (
        "<https://cto.example.org/unsubscribe/tok42.sig>, "
        "<mailto:desinscription@cto.example.org?subject=unsubscribe-42>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-ID"] == "<le-role-du-cto.cto.example.org>"
    assert (msg["X-Drip-Course"], msg["X-Drip-Step"], msg["X-Drip-Delivery"]) == (
        "le-role-du-cto",
        "welcome",
        "42",
    )
    # Subject with non-ASCII text is RFC 2047-encoded on the wire, never raw UTF-8.
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"Subject: =?utf-8?" in head

    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    text, html = (content(p) for p in parts)
    assert text.startswith("Bonjour Zoé Martin,\n\nVoici la première lettre")
    assert "Se désinscrire : https://cto.example.org/unsubscribe/tok42.sig" in text
    assert "12 rue des Lilas, 69003 Lyon" in text and "12 rue des Lilas, 69003 Lyon" in html
    assert '<a href="https://cto.example.org/unsubscribe/tok42.sig">Se désinscrire</a>' in html


def test_message_ids_are_unique_even_for_the_same_delivery() -> None:
    ids = {build_message(outgoing(7), now=NOW).message_id for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("<7.") for i in ids)


def test_ascii_values_stay_readable_and_reply_to_is_optional() -> None:
    msg = outgoing(3, to_name="Sam Lee", reply_to=None, from_name="CTO letters")
    built = build_message(msg, now=NOW)
    head = built.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "\r\nTo: Sam Lee <lecteur3@example.org>\r\n" in head
    assert "From: CTO letters <lettre@cto.example.org>\r\n" in head
    assert "Reply-To" not in head
    assert parse(built)["Subject"] == "Bienvenue Sam Lee : le rôle du CTO"


def test_slot_default_and_html_escaping() -> None:
    values = {"name": "", "unsubscribe_url": "https://cto.example.org/u/1", "email": "a&b@example.org"}
    msg = parse(build_message(outgoing(5, values=values, to_name=""), now=NOW))
    assert msg["Subject"] == "Bienvenue à vous : le rôle du CTO"
    assert msg["To"] == "lecteur5@example.org"
    text, html = (content(p) for p in msg.iter_parts())
    assert "envoyé à a&amp;b@example.org" in html
    assert "Envoyé à a&b@example.org" in text


@pytest.mark.parametrize(
    "attack",
    [
        "Eve\r\nBcc: x@evil",
        "Eve\nBcc: x@evil",
        "Eve\rBcc: x@evil",
        "Eve\u2028Bcc: x@evil",
        "Eve\x00\x0bBcc: x@evil",
        "Évelyne\r\nBcc: x@evil",
        "=?utf-8?q?Eve=0D=0ABcc=3A_x=40evil?=",
    ],
)
def test_header_injection_is_impossible(attack: str) -> None:
    values = {"name": attack, "unsubscribe_url": "https://cto.example.org/u/1", "email": "e@example.org"}
    built = build_message(
        outgoing(9, to_name=attack, values=values, from_name=attack, headers={"X-Campaign": attack}),
        now=NOW,
    )
    assert_crlf_only(built.data)
    msg = parse(built)
    assert msg["Bcc"] is None
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head
    assert not re.search(rb"\r\n(?![ \t])[^:\r\n]*(?i:bcc)", head)
    to = msg["To"].addresses
    assert len(to) == 1 and to[0].addr_spec == "lecteur9@example.org"
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    # What a person typed is kept literally (an encoded word stays text), only line breaks are gone.
    assert msg["Subject"] == "Bienvenue " + clean(attack) + " : le rôle du CTO"
    assert "Bcc: x@evil" in clean(attack) or "Bcc=3A" in clean(attack)
    assert to[0].display_name == clean(attack)
    assert msg["X-Campaign"] == clean(attack)


def test_extra_headers_cannot_replace_core_ones() -> None:
    for name in ("Bcc", "to", "Content-Type", "Bad Name", "X-A:B"):
        with pytest.raises(PermanentTransportError, match="refusing extra header"):
            build_message(outgoing(1, headers={name: "x"}), now=NOW)


UNSAFE: dict[str, Callable[[OutgoingMessage, str], OutgoingMessage]] = {
    "to_email": lambda m, v: replace(m, to_email=v),
    "from_email": lambda m, v: replace(m, from_email=v),
    "reply_to": lambda m, v: replace(m, reply_to=v),
    "unsubscribe_url": lambda m, v: replace(m, unsubscribe_url=v),
    "unsubscribe_mailto": lambda m, v: replace(m, unsubscribe_mailto=v),
    "message_id_domain": lambda m, v: replace(m, message_id_domain=v),
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to_email", "a@b.org\r\nBcc: x@evil"),
        ("to_email", "a b@example.org"),
        ("to_email", "<a@example.org>"),
        ("to_email", "no-at-sign"),
        ("to_email", "zoé@example.org"),
        ("from_email", "x@y.org, z@evil.org"),
        ("reply_to", "r@y.org\nBcc: x@evil"),
        ("unsubscribe_url", "https://cto.example.org/u/1>\r\nBcc: x@evil"),
        ("unsubscribe_url", "javascript:alert(1)"),
        ("unsubscribe_mailto", "u@x.org>, <https://evil"),
        ("message_id_domain", "evil>\r\nBcc: x"),
    ],
)
def test_unsafe_addresses_and_urls_fail_the_message_permanently(field: str, value: str) -> None:
    msg = UNSAFE[field](outgoing(2), value)
    with pytest.raises(PermanentTransportError, match="invalid"):
        build_message(msg, now=NOW)


def test_long_subject_and_names_are_folded_and_round_trip() -> None:
    long_name = "Marie-Éloïse de La Fontaine-Villeneuve " * 8
    step = rendered()
    step = type(step)(
        course="Le rôle du CTO : comprendre, décider, recruter",
        step_key="/le-role-du-cto/pourquoi-un-cto/",
        locale="fr",
        subject=split(
            "Lettre 3 sur 8 — " + marker(0) + ", pourquoi une équipe a besoin d'un CTO avant sa série A",
            [Slot("name")],
        ),
        preheader="",
        html=step.html,
        text=step.text,
    )
    built = build_message(outgoing(11, to_name=long_name, step=step), now=NOW)
    assert_crlf_only(built.data)
    for line in built.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        assert len(line) <= 78 or line.startswith((b"List-Unsubscribe:", b" <mailto:", b"To:")), line
    msg = parse(built)
    assert msg["To"].addresses[0].display_name == long_name[:100].strip()
    assert msg["Subject"].startswith("Lettre 3 sur 8 — Marie-Éloïse de La Fontaine-Villeneuve Marie")
    assert msg["Subject"].endswith("pourquoi une équipe a besoin d'un CTO avant sa série A")
    assert msg["X-Drip-Course"] == "Le rôle du CTO : comprendre, décider, recruter"
    assert msg["X-Drip-Step"] == "/le-role-du-cto/pourquoi-un-cto/"
    assert msg["List-ID"] == "<le-r-le-du-cto-comprendre-d-cider-recruter.cto.example.org>"


def test_bodies_with_dots_long_lines_and_any_line_ending() -> None:
    body = "Ligne 1\r\n.\r\n.point\rfin\n" + "é" * 300 + "\n\ttab  \n"
    step = rendered()
    step = type(step)(
        course=step.course,
        step_key=step.step_key,
        locale="fr",
        subject=step.subject,
        preheader="",
        html=split("<p>" + body + "</p>", []),
        text=split(body, []),
    )
    built = build_message(outgoing(12, step=step), now=NOW)
    assert_crlf_only(built.data)
    text, html = (content(p) for p in parse(built).iter_parts())
    expected = "Ligne 1\n.\n.point\nfin\n" + "é" * 300 + "\n\ttab  \n"
    assert text == expected
    assert html == "<p>" + expected + "</p>\n"


def test_date_must_be_aware_utc() -> None:
    with pytest.raises(ValueError, match="UTC"):
        build_message(outgoing(1), now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="UTC"):
        build_message(outgoing(1), now=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    later = NOW + timedelta(days=3, seconds=5)
    assert parse(build_message(outgoing(1), now=later))["Date"].datetime == later.astimezone(UTC)


@pytest.mark.parametrize(
    "value",
    [
        "Zoé",
        "",
        "trailing space ",
        " leading",
        "a=b=c",
        "tab\there\t",
        "x" * 200,
        "é" * 90,
        "<script>alert('x')</script> & \"quotes\"",
        "line\r\nbreak\x00nul",
        "=?utf-8?q?encoded?=",
    ],
)
def test_bodies_encoded_per_part_decode_to_exactly_the_personalised_text(value: str) -> None:
    """Literal parts are quoted-printable encoded once per step; each reader's values are encoded
    alone and joined with soft line breaks. Decoded, that must be exactly what personalise() gives."""
    step = rendered()
    name = marker(0)
    long_line = "mot " * 40  # a literal line longer than 76 characters, then a slot in the middle of it
    step = type(step)(
        course=step.course,
        step_key=step.step_key,
        locale="fr",
        subject=step.subject,
        preheader="",
        html=split(f"<p>{long_line}{name} {long_line}</p>\n<p>{name}</p>", [Slot("name", "à toi")]),
        text=split(f"{long_line}{name}\n{name} \n\n{name}", [Slot("name", "à toi")]),
    )
    msg = outgoing(5, step=step, values={"name": value})
    built = build_message(msg, now=NOW)
    assert_crlf_only(built.data)
    assert all(len(line) <= 78 for line in built.data.split(b"\r\n"))
    _, html_expected, text_expected = step.personalise(msg.values)
    text, html = (content(p) for p in parse(built).iter_parts())
    assert text == text_expected + "\n"
    assert html == html_expected + "\n"


@pytest.mark.parametrize(
    ("title", "raw", "parsed"),
    [
        (
            "La lettre du CTO",
            b'List-ID: "La lettre du CTO" <le-role-du-cto.cto.example.org>',
            '"La lettre du CTO" <le-role-du-cto.cto.example.org>',
        ),
        (
            'Un "titre"\r\nBcc: x@evil.example',
            b'List-ID: "Un \\"titre\\" Bcc: x@evil.example" <le-role-du-cto.cto.example.org>',
            '"Un \\"titre\\" Bcc: x@evil.example" <le-role-du-cto.cto.example.org>',
        ),
        ("", b"List-ID: <le-role-du-cto.cto.example.org>", "<le-role-du-cto.cto.example.org>"),
    ],
)
def test_list_id_names_the_list_with_a_quoted_one_line_title(title: str, raw: bytes, parsed: str) -> None:
    built = build_message(replace(outgoing(5), list_title=title), now=NOW)
    assert_crlf_only(built.data)
    head = built.data.split(b"\r\n\r\n", 1)[0]
    assert raw in head
    assert b"\r\nBcc:" not in head
    assert str(parse(built)["List-ID"]) == parsed


def test_a_list_id_title_in_french_is_one_encoded_word_and_a_long_one_folds() -> None:
    built = build_message(replace(outgoing(5), list_title="Le métier de CTO"), now=NOW)
    head = built.data.split(b"\r\n\r\n", 1)[0]
    line = next(x for x in head.split(b"\r\n") if x.startswith(b"List-ID:"))
    assert re.fullmatch(rb"List-ID: =\?utf-8\?[bq]\?[^ ?]+\?= <le-role-du-cto\.cto\.example\.org>", line)
    assert str(parse(built)["List-ID"]) == "Le métier de CTO <le-role-du-cto.cto.example.org>"
    long = build_message(replace(outgoing(5), list_title="La lettre " * 20), now=NOW)
    assert_crlf_only(long.data)
    assert b"\r\n <le-role-du-cto.cto.example.org>\r\n" in long.data
    assert str(parse(long)["List-ID"]).endswith('" <le-role-du-cto.cto.example.org>')


@pytest.mark.parametrize("plain", [frozenset(), frozenset({"unsubscribe_url"})])
def test_an_unsubscribe_url_that_is_not_the_signed_link_is_checked_even_when_links_are_plain(
    plain: frozenset[str],
) -> None:
    """Only the very link drip signed (the values' own, said plain) goes unread into List-Unsubscribe."""
    signed = outgoing(1, plain=plain)
    assert build_message(signed, now=NOW).data.count(b"https://cto.example.org/unsubscribe/tok1.sig") >= 1
    for bad in ("https://cto.example.org/u/1>\r\nBcc: x@evil", "https://cto.example.org/" + "u" * 900):
        with pytest.raises(PermanentTransportError, match="invalid unsubscribe URL"):
            build_message(replace(signed, unsubscribe_url=bad), now=NOW)
    too_long = "https://cto.example.org/" + "u" * 900  # even the values' own link has a length limit
    long_values = {**signed.values, "unsubscribe_url": too_long}
    with pytest.raises(PermanentTransportError, match="invalid unsubscribe URL"):
        build_message(replace(signed, values=long_values, unsubscribe_url=too_long), now=NOW)


def test_the_signed_mailto_goes_unread_only_as_the_checked_sender_head_and_a_piece_of_the_signed_link() -> (
    None
):
    """With the signed link plain, a mailto built by unsubscribe_mailto() from it is taken as built;
    a bad sender, or a tail that is not a piece of that link, is read and refused as before."""
    signed = outgoing(1, plain=frozenset({"unsubscribe_url"}))
    token = signed.unsubscribe_url.rpartition("/")[2]
    good = replace(signed, unsubscribe_mailto=unsubscribe_mailto(signed.from_email, token))
    assert unsubscribe_targets(good) == (
        good.unsubscribe_url,
        f"mailto:{good.from_email}?subject=unsubscribe%20{token}",
    )
    head = unsubscribe_mailto(signed.from_email, "")
    cases = {
        "a tail that is not the link's": head + "tok1>\r\nBcc: x@evil.example",
        "a tail with a space": head + "tok 1.sig",
        "too long": head + "u" * 900,
    }
    for mailto in cases.values():
        with pytest.raises(PermanentTransportError, match="invalid unsubscribe mailto URL"):
            unsubscribe_targets(replace(good, unsubscribe_mailto=mailto))
    bad_sender = replace(good, from_email="lettre <x>@cto.example.org")
    bad_sender = replace(bad_sender, unsubscribe_mailto=unsubscribe_mailto(bad_sender.from_email, token))
    with pytest.raises(PermanentTransportError, match="invalid unsubscribe mailto URL"):
        unsubscribe_targets(bad_sender)
    # A piece of a long signed link still makes a mailto over the length limit.
    link = "https://cto.example.org/unsubscribe/" + "t" * 850
    long_link = replace(good, unsubscribe_url=link, values={**good.values, "unsubscribe_url": link})
    with pytest.raises(PermanentTransportError, match="invalid unsubscribe mailto URL"):
        unsubscribe_targets(replace(long_link, unsubscribe_mailto=head + link[-(901 - len(head)) :]))
    # Not plain: the same mailto is read in full, and passes.
    assert unsubscribe_targets(replace(good, plain=frozenset()))[1] == good.unsubscribe_mailto
