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
LIST_STEP = "list"  # the step of a confirm token for a newsletter list


def _links(
    state: WebState,
    subscriber_id: int,
    course: str,
    step: str | None,
    now: dt.datetime,
    created_at: dt.datetime | None,
) -> tuple[str, str]:
    """The confirm and unsubscribe links of a confirmation email, bound to the subscriber's row."""
    secret = state.runtime.secret
    born = born_of(created_at) if created_at is not None else None
    confirm = make_token(secret, "confirm", subscriber_id, course, step=step, born=born, now=now)
    unsubscribe = make_token(secret, "unsubscribe", subscriber_id, course, born=born, now=now)
    return state.url("/confirm/" + confirm), state.url("/unsubscribe/" + unsubscribe)


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
    list_title: str | None = None,
) -> OutgoingMessage:
    """The confirmation email for one address and course (or list, given its title), with its signed confirm link.

    A list's confirm token says so in its step (:data:`LIST_STEP`): confirming joins the list.
    """
    site = state.site.config
    t = strings(locale)
    course_title = list_title if list_title is not None else state.courses[course].title
    step = LIST_STEP if list_title is not None else None
    confirm_url, unsubscribe_url = _links(state, subscriber_id, course, step, now, created_at)
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
