"""POST /subscribe, then GET and POST /confirm/{token}: double opt-in.

Subscribing records a *pending* subscriber (or leaves a known one untouched) and
sends one confirmation email per cool-down and at most a few a day to one mailbox
(its +tags share them); only the button of the page the emailed link opens enrolls
anyone (the link itself changes nothing, so a mail scanner following it subscribes nobody). The answer is the same whether the address was known or not, so
the form cannot be used to find out who subscribes.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from drip.config import LOCALES
from drip.course.newsletter import load_newsletters
from drip.errors import InputError, Problem, did_you_mean
from drip.inputs.address import MAX_LENGTH as ADDRESS_MAX
from drip.store import subscriptions
from drip.store.subscribers import NAME_MAX, FieldError, make_profile
from drip.web import pages
from drip.web.body import FORM_CAP, parse_form, parse_json, read_capped
from drip.web.i18n import strings
from drip.web.mail import LIST_STEP, confirmation_message, send_confirmation
from drip.web.origin import is_cross_site
from drip.web.state import WebState, state_of

log = logging.getLogger(__name__)

HONEYPOT = "website"
MAX_FIELD = 320  # characters of each value given back in the form after a mistake (as its maxlength)
_ANY_ADDRESS = "name-check@example.org"


@dataclass(frozen=True)
class SubscribeForm:
    """A valid subscription request: normalised address, known course, supported locale."""

    email: str
    name: str
    course: str  # the course, or the list when ``list_title`` is set
    locale: str
    list_title: str | None = None


@dataclass(frozen=True)
class FieldProblem:
    key: str
    message_key: str  # in the strings table
    hint: str | None = None


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    return value if isinstance(value, str) else ""


def validate_form(state: WebState, data: dict[str, Any], locale: str) -> SubscribeForm | list[FieldProblem]:
    """Every problem with the submitted fields at once, or the clean request."""
    problems: list[FieldProblem] = []
    email, name, course = _text(data, "email"), _text(data, "name"), _text(data, "course").strip()
    clean_email = clean_name = ""
    # The store's limits, told as "too long" rather than as the store's other reasons.
    if len(email.strip()) > ADDRESS_MAX:
        problems.append(FieldProblem("email", "err_too_long"))
    else:
        try:
            clean_email = make_profile(email).email
        except FieldError:
            problems.append(FieldProblem("email", "err_email"))
    if len(name.strip()) > NAME_MAX:
        problems.append(FieldProblem("name", "err_too_long"))
    elif "\ufffd" in name:  # bytes that were not UTF-8, replaced when the form was read
        problems.append(FieldProblem("name", "err_control"))
    else:
        try:
            # The store's own name rules, checked on their own so both fields are reported together.
            clean_name = make_profile(_ANY_ADDRESS, name=name).name or ""
        except FieldError:
            problems.append(FieldProblem("name", "err_control"))
    list_name = _text(data, "list").strip()
    list_title: str | None = None
    if list_name and not course:
        lists = list_titles(state)
        list_title = lists.get(list_name)
        if list_title is None:
            problems.append(FieldProblem("list", "err_list", did_you_mean(list_name, lists)))
        course = list_name
    elif course not in state.courses:
        problems.append(FieldProblem("course", "err_course", did_you_mean(course, state.courses)))
    requested = _text(data, "locale").strip()
    if requested and requested not in LOCALES:
        problems.append(FieldProblem("locale", "err_locale", did_you_mean(requested, LOCALES)))
    if problems:
        return problems
    return SubscribeForm(clean_email, clean_name, course, requested or locale, list_title)


def list_titles(state: WebState) -> dict[str, str]:
    """The site's newsletter lists by name, with their titles (none when the files have mistakes)."""
    try:
        return {name: found.title for name, found in load_newsletters(state.site).lists.items()}
    except InputError:
        return {}


def problem_text(problem: FieldProblem, locale: str) -> str:
    t = strings(locale)
    text = t[problem.message_key]
    if problem.hint:
        # did_you_mean's "did you mean 'x'?" → the localised form with the same name.
        suggested = problem.hint.split("'")[1] if "'" in problem.hint else problem.hint
        text += " " + t["did_you_mean"].format(name=suggested)
    return text


def as_problems(found: list[FieldProblem], locale: str) -> list[Problem]:
    """The web form's errors in drip's own :class:`Problem` shape (key and hint included)."""
    return [Problem(problem_text(p, locale), key=p.key, hint=p.hint) for p in found]


def request_confirmation(state: WebState, form: SubscribeForm, *, now: dt.datetime) -> bool:
    """Record the request and send a confirmation unless one left within the cool-down.

    Returns whether an email left. A known subscriber's details are not touched
    until the address is confirmed: whoever fills the form may not own it.
    """
    requested = subscriptions.request_confirmation(
        state.engine,
        state.runtime.secret,
        email=form.email,
        name=form.name,
        locale=form.locale,
        allowance=state.allowance,
        now=now,
    )
    if requested.suppressed:
        # Allowed: only confirming proves the owner wants mail again, and lifts the suppression.
        log.info("subscribe request for a suppressed address: confirmation only")
    if not requested.send:
        return False
    message = confirmation_message(
        state,
        subscriber_id=requested.subscriber_id,
        email=form.email,
        name=requested.name,
        course=form.course,
        locale=form.locale,
        now=now,
        created_at=requested.created_at,
        list_title=form.list_title,
    )
    try:
        send_confirmation(state, message, now=now)
    except Exception:
        # Let the visitor try again at once instead of waiting out a cool-down for nothing.
        subscriptions.forget_confirmation(state.engine, requested)
        raise
    return True


async def _read_body(request: Request) -> tuple[dict[str, Any], bool]:
    """The submitted fields and whether the client speaks JSON (read with the form cap, whatever the type)."""
    content_type = request.headers.get("content-type", "")
    body = await read_capped(request, FORM_CAP)
    if content_type.startswith("application/json"):
        try:
            data = parse_json(body)
        except ValueError:
            data = None
        return (data if isinstance(data, dict) else {}), True
    form = parse_form(body, max_fields=20)
    return {k: v for k, v in form.items() if isinstance(v, str)}, False


def _form_page(
    request: Request,
    state: WebState,
    locale: str,
    course: str,
    *,
    values: dict[str, str],
    problems: list[str],
    status: int = 200,
    list_name: str = "",
) -> Response:
    """The form on its own page: blank, or given back with the reader's values and what to fix."""
    known = course in state.courses
    title = list_titles(state).get(list_name, "") if list_name else ""
    return pages.render(
        request,
        "subscribe.html",
        locale=locale,
        title_key="subscribe_title",
        status=status,
        action="/subscribe",
        course_slug=course if known else "",
        course_title=state.courses[course].title if known else title,
        list_slug=list_name if title else "",
        values=values,
        problems=problems,
    )


async def subscribe_page(request: Request) -> Response:
    """GET /subscribe?course=…: the form on its own page (what `drip embed` prints, framed)."""
    state = state_of(request)
    locale = pages.page_locale(request, state)
    course = request.query_params.get("course", "")
    list_name = request.query_params.get("list", "")
    if list_name and not course and list_name in list_titles(state):
        return _form_page(
            request, state, locale, "", values={"email": "", "name": ""}, problems=[], list_name=list_name
        )
    if course not in state.courses:
        return pages.message(
            request,
            locale=locale,
            title_key="not_found_title",
            paragraphs=[strings(locale)["err_course"]],
            status=404,
        )
    return _form_page(request, state, locale, course, values={"email": "", "name": ""}, problems=[])


def client_key(request: Request) -> str:
    """The rate-limit bucket: the client address as the server sees it (a trusted proxy's
    X-Forwarded-For already applied by uvicorn, see ``web.trusted_proxies``)."""
    return request.client.host if request.client else "unknown"


async def subscribe(request: Request) -> Response:
    state = state_of(request)
    wait = state.limiter.take(client_key(request), state.now().timestamp())
    data, wants_json = await _read_body(request)
    if is_cross_site(request, state.site.config.site.base_url):
        raise pages.cross_site(request)
    locale = pages.page_locale(request, state, _text(data, "locale") or None)
    t = strings(locale)
    if wait > 0:
        retry = str(state.limiter.retry_after(wait))
        headers = {"Retry-After": retry}
        body = t["rate_body"].format(seconds=retry)
        if wants_json:
            return JSONResponse({"error": "rate_limited", "message": body}, status_code=429, headers=headers)
        return pages.message(
            request, locale=locale, title_key="rate_title", paragraphs=[body], status=429, headers=headers
        )
    result = validate_form(state, data, locale)
    if isinstance(result, list):
        problems = as_problems(result, locale)
        if wants_json:
            return JSONResponse(
                {"errors": [{"key": p.key, "message": p.message, "hint": p.hint} for p in problems]},
                status_code=400,
            )
        values = {"email": _text(data, "email")[:MAX_FIELD], "name": _text(data, "name")[:MAX_FIELD]}
        return _form_page(
            request,
            state,
            locale,
            _text(data, "course"),
            values=values,
            problems=[p.message for p in problems],
            status=400,
            list_name=_text(data, "list").strip(),
        )
    if _text(data, HONEYPOT):
        log.info("subscribe: honeypot field filled, nothing recorded")
    else:
        await run_in_threadpool(request_confirmation, state, result, now=state.now())
    # The same answer whatever happened: known, unknown, cool-down or bot.
    t = strings(result.locale)
    if wants_json:
        return JSONResponse({"status": "check_inbox", "message": t["sent_body"]})
    return pages.message(request, locale=result.locale, title_key="sent_title", paragraphs=[t["sent_body"]])


@dataclass(frozen=True)
class Confirmed:
    course_title: str
    locale: str | None


def confirm_list(
    state: WebState, subscriber_id: int, list_name: str, *, now: dt.datetime
) -> Confirmed | None:
    """Activate the subscriber, lift any suppression and join the list; None when either is gone."""
    title = list_titles(state).get(list_name)
    if title is None:
        return None
    contact = subscriptions.confirm_list_subscription(
        state.engine, state.runtime.secret, subscriber_id, list_name, now=now
    )
    return None if contact is None else Confirmed(course_title=title, locale=contact.locale)


def confirm_subscription(
    state: WebState, subscriber_id: int, course: str, *, now: dt.datetime
) -> Confirmed | None:
    """Activate the subscriber, lift any suppression and enroll; None when they no longer exist."""
    found = state.courses.get(course)
    if found is None:
        return None
    contact = subscriptions.confirm_subscription(
        state.engine, state.runtime.secret, subscriber_id, found, now=now
    )
    if contact is None:
        return None
    return Confirmed(course_title=found.title, locale=contact.locale)


def _target_title(state: WebState, name: str | None, step: str | None) -> str | None:
    """The title of what a confirm token is for: a list (its step says so) or a course."""
    if name is None:
        return None
    if step == LIST_STEP:
        return list_titles(state).get(name)
    course = state.courses.get(name)
    return course.title if course is not None else None


async def confirm_page(request: Request) -> Response:
    """GET (and HEAD): what confirming does, and one button. Nothing changes: mail scanners follow links."""
    state = state_of(request)
    data = await pages.path_token(request, "confirm", now=state.now())
    if isinstance(data, Response):
        return data
    title = _target_title(state, data.course, data.step)
    found = await run_in_threadpool(subscriptions.find_contact, state.engine, data.subscriber_id)
    if title is None or found is None:
        return pages.gone(request, pages.page_locale(request, state))
    return pages.render(
        request,
        "confirm.html",
        locale=pages.page_locale(request, state, found.locale),
        title_key="confirm_ask_title",
        action=request.url.path,
        course_title=title,
        email=found.email,
    )


async def confirm(request: Request) -> Response:
    """POST: the button of the confirm page (a person, not a link scanner) confirms and enrolls."""
    state = state_of(request)
    now = state.now()
    data = await pages.path_token(request, "confirm", now=now)
    if isinstance(data, Response):
        return data
    await read_capped(request, FORM_CAP)
    if is_cross_site(request, state.site.config.site.base_url):
        raise pages.cross_site(request)
    locale = pages.page_locale(request, state)
    if data.course is None:
        return pages.gone(request, locale)
    confirming = confirm_list if data.step == LIST_STEP else confirm_subscription
    done = await run_in_threadpool(confirming, state, data.subscriber_id, data.course, now=now)
    if done is None:
        return pages.gone(request, locale)
    locale = pages.page_locale(request, state, done.locale)
    return pages.message(
        request,
        locale=locale,
        title_key="confirmed_title",
        paragraphs=[strings(locale)["confirmed_body"].format(course=done.course_title)],
    )


routes = [
    Route("/subscribe", subscribe_page, methods=["GET"]),
    Route("/subscribe", subscribe, methods=["POST"]),
    Route("/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
]
