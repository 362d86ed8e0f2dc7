"""The confirmation email of double opt-in: localised, HTML and text, sent at once.

It is not a course step, so it is rendered here with Jinja (autoescape for the
HTML part) and handed to the site's configured transport like any delivery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from drip.errors import TransportError
from drip.render.rendered import RenderedStep
from drip.render.slots import Compiled
from drip.tokens import born_of, make_token
from drip.transports.base import OutgoingMessage
from drip.web.i18n import strings
from drip.web.pages import env, text_env
from drip.web.state import WebState

CONFIRM_STEP = "confirm"


def confirmation_message(
    state: WebState,
    *,
    subscriber_id: int,
    email: str,
    name: str,
    course: str,
    locale: str,
    now: dt.datetime,
    created_at: dt.datetime | None = None,
) -> OutgoingMessage:
    """The confirmation email for one address and course, with its signed confirm link."""
    site = state.site.config
    t = strings(locale)
    course_title = state.courses[course].title
    born = born_of(created_at) if created_at is not None else None
    secret = state.runtime.secret
    confirm_url = state.url(
        "/confirm/" + make_token(secret, "confirm", subscriber_id, course, born=born, now=now)
    )
    unsubscribe_url = state.url(
        "/unsubscribe/" + make_token(secret, "unsubscribe", subscriber_id, course, born=born, now=now)
    )
    subject = t["email_subject"].format(course=course_title)
    context = {
        "locale": locale,
        "t": t,
        "name": name,
        "course_title": course_title,
        "confirm_url": confirm_url,
        "subject": subject,
        "site_name": site.site.name,
        "postal_address": site.postal_address,
    }
    rendered = _rendered(course, locale, subject, context)
    sender = site.sender
    return OutgoingMessage(
        # Not a course delivery (no row in deliveries): the negated subscriber id keeps outbox
        # file names apart from deliveries', and a re-sent confirmation replaces the previous one.
        delivery_id=-subscriber_id,
        to_email=email,
        to_name=name,
        from_email=sender.email,
        from_name=sender.name,
        reply_to=sender.reply_to,
        rendered=rendered,
        values={},
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=f"mailto:{sender.reply_to or sender.email}?subject=unsubscribe",
        postal_address=site.postal_address,
        message_id_domain=sender.email.rpartition("@")[2],
    )


def _rendered(course: str, locale: str, subject: str, context: Mapping[str, object]) -> RenderedStep:
    """The confirmation email's parts: nothing personal is left to fill, so no slots."""
    return RenderedStep(
        course=course,
        step_key=CONFIRM_STEP,
        locale=locale,
        subject=Compiled((subject,), ()),
        preheader="",
        html=Compiled((env.get_template("confirm_email.html").render(context),), ()),
        text=Compiled((text_env.get_template("confirm_email.txt").render(context),), ()),
    )


def send_confirmation(state: WebState, message: OutgoingMessage, *, now: dt.datetime) -> None:
    """Hand the email to the transport now; a refusal is raised, never swallowed."""
    transport = state.transport_factory()
    transport.open()
    try:
        (result,) = transport.send_batch([message], now=now)
    finally:
        transport.close()
    if result.error is not None:
        raise result.error
    if not result.ok:
        raise TransportError("the transport did not accept the confirmation email")
