"""Deliveries for transport tests and benchmarks, built the way dispatch builds them.

The RenderedStep comes from ``drip.render.slots.split`` over small French HTML
and text holding slot markers, like the renderer's compiled output. :func:`parse`
reads a message back as a recipient's mail program would.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

from drip.render.rendered import RenderedStep
from drip.render.slots import Slot, marker, split
from drip.transports.base import OutgoingMessage

NOW = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
SLOTS = (Slot("name", "à vous"), Slot("unsubscribe_url"), Slot("email"))


def rendered(
    course: str = "le-role-du-cto",
    step_key: str = "welcome",
    locale: str = "fr",
    slots: tuple[Slot, Slot, Slot] = SLOTS,
) -> RenderedStep:
    """``slots``: the name, the unsubscribe link and the address, in that order."""
    name, unsub, email = marker(0), marker(1), marker(2)
    html = (
        '<!doctype html><html lang="fr"><body><p>Bonjour ' + name + ",</p>"
        "<p>Voici la première lettre du cours « Le rôle du CTO ».</p>"
        '<p><a href="' + unsub + '">Se désinscrire</a> · envoyé à ' + email + "</p>"
        "<p>Le métier de CTO, 12 rue des Lilas, 69003 Lyon, France</p></body></html>"
    )
    text = (
        "Bonjour " + name + ",\n\nVoici la première lettre du cours « Le rôle du CTO ».\n\n"
        "Se désinscrire : " + unsub + "\nEnvoyé à " + email + "\n\n"
        "Le métier de CTO, 12 rue des Lilas, 69003 Lyon, France\n"
    )
    return RenderedStep(
        course=course,
        step_key=step_key,
        locale=locale,
        subject=split("Bienvenue " + name + " : le rôle du CTO", slots),
        preheader="Première lettre",
        html=split(html, slots),
        text=split(text, slots),
    )


STEP = rendered()


def outgoing(
    delivery_id: int = 1,
    *,
    to_email: str | None = None,
    to_name: str = "Zoé Martin",
    step: RenderedStep = STEP,
    values: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    reply_to: str | None = "bonjour@cto.example.org",
    from_name: str = "Le métier de CTO",
    plain: frozenset[str] = frozenset(),
) -> OutgoingMessage:
    to_email = to_email or f"lecteur{delivery_id}@example.org"
    unsubscribe_url = f"https://cto.example.org/unsubscribe/tok{delivery_id}.sig"
    if values is None:
        values = {"name": to_name, "unsubscribe_url": unsubscribe_url, "email": to_email}
    return OutgoingMessage(
        delivery_id=delivery_id,
        to_email=to_email,
        to_name=to_name,
        from_email="lettre@cto.example.org",
        from_name=from_name,
        reply_to=reply_to,
        rendered=step,
        values=values,
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=f"mailto:desinscription@cto.example.org?subject=unsubscribe-{delivery_id}",
        postal_address="Le métier de CTO, 12 rue des Lilas, 69003 Lyon, France",
        message_id_domain="cto.example.org",
        headers=dict(headers or {}),
        plain=plain,
    )


def parse(data: bytes) -> EmailMessage:
    """An RFC 5322 message as received: CRLF line endings only, and no defect the stdlib finds."""
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", data) is None, "bare LF or CR"
    msg = BytesParser(policy=default_policy).parsebytes(data)
    assert not msg.defects
    return msg


def closed_port() -> int:
    """A port on 127.0.0.1 with nobody listening: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
