"""SendGrid through the official client: the recipients of one step share one request.

Deliveries of the same rendered step (course, step, locale) and sender go in one
``POST /v3/mail/send`` of up to 1000 personalizations. The subject, text and HTML
are sent once, in ``Compiled.substitution_form()``, and each personalization
carries its recipient's values as ``substitutions``. One slot may appear in the
subject and text, where its value is written as is, and in the HTML, where it
must be escaped: a tag has one value per recipient, so the two kinds of part use
two families of tags, ``%drip_t_name%`` and ``%drip_h_name%``.

The body is written as JSON text rather than built as a dict for the client to
serialise: the parts every recipient shares are encoded once per step, and each
personalization costs one short string with only the recipient's own values run
through the JSON string encoder. The request says ``application/json;
charset=utf-8``, which python_http_client passes through as is.

Batching means SendGrid answers for a whole request. A 400 that names
personalizations (``personalizations.3.to.0.email``) fails those recipients only
and the rest is sent again; a 400 or 413 that names nothing is split in halves
until the bad recipient stands alone; a 400 about the shared content fails the
request's recipients, as each would fail alone.
"""

from __future__ import annotations

import html
import http.client
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from json.encoder import encode_basestring_ascii as json_string
from os import environ as os_environ
from typing import Any, NamedTuple

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from drip.config import SendgridSection, Site
from drip.errors import (
    ConfigError,
    PermanentTransportError,
    Problem,
    TransientTransportError,
    TransportError,
)
from drip.render.rendered import RenderedStep
from drip.render.slots import Slot, one_line, slot_tag
from drip.transports.base import OutgoingMessage, SendResult, TransportBase, send_time
from drip.transports.message import (
    MAX_NAME,
    check_address,
    check_domain,
    clean,
    extra_headers,
    list_headers,
    unsubscribe_targets,
)

MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
TEXT_TAG = "%drip_t_{}%"
HTML_TAG = "%drip_h_{}%"
# Not exactly "application/json": python_http_client then sends a str body as it is
# instead of json.dumps-ing it (python_http_client.client.Client.http_request).
CONTENT_TYPE = "application/json; charset=utf-8"
_HTML_SPECIAL = re.compile(r"[&<>\"']")
# Printable ASCII but for " \\ & ' < >: a value of only these is the same in JSON (between quotes)
# and in HTML, and has no control character to flatten.
_PLAIN = re.compile(r"[ !#-%(-;=?-\[\]-~]*")
_PERSONALIZATION_FIELD = re.compile(r"personalizations\.(\d+)(?:\.|$)")


# One recipient waiting for a request: its position in the batch (for the result), the
# delivery, its personalization as JSON text. A plain tuple: a named one costs three times
# as much to make, and thousands are made per request.
_Pending = tuple[int, OutgoingMessage, str]


class PlanSlot(NamedTuple):
    """One slot of a step and the JSON keys (``"%drip_t_name%":``) of its text and HTML tags, if used.

    A plain slot (:attr:`OutgoingMessage.plain`) reads the same in text and HTML: its text tag
    stands in both, so each personalization carries its value once.
    """

    name: str
    default: str
    text_key: str | None
    html_key: str | None
    plain: bool


@dataclass(frozen=True)
class Plan:
    """What every personalization of a step shares: its slots, and the size of its tags."""

    slots: tuple[PlanSlot, ...]
    tag_chars: int  # the tags are ASCII: characters are bytes
    # When every slot is plain (a step whose only slots are the signed links): their names, and
    # the pairs as one %-template to fill with the values as they are.
    plain_names: tuple[str, ...] = ()
    plain_template: str = ""


def _shared(slot: Slot, plain: frozenset[str]) -> bool:
    """Whether a slot's value reads the same in text and HTML for every recipient: a plain value,
    or its default (a recipient without one) when that is plain too."""
    return slot.name in plain and _PLAIN.fullmatch(slot.default) is not None


def html_tags(plain: frozenset[str]) -> Callable[[Slot], str]:
    """The tag pattern of each slot in the HTML part: the text tag for a plain slot."""
    return lambda slot: TEXT_TAG if _shared(slot, plain) else HTML_TAG


def substitution_plan(step: RenderedStep, plain: frozenset[str] = frozenset()) -> Plan:
    """Every slot of a step with the tags it stands behind; computed once per request group."""
    tags: dict[Slot, dict[str, str]] = {}
    in_html = html_tags(plain)
    for part, family in ((step.subject, TEXT_TAG), (step.text, TEXT_TAG), (step.html, None)):
        for slot in part.slots:
            pattern = family or in_html(slot)
            tags.setdefault(slot, {})[pattern] = pattern.format(slot_tag(slot))
    slots = tuple(
        PlanSlot(
            slot.name,
            slot.default,
            f",{json_string(by[TEXT_TAG])}:" if TEXT_TAG in by else None,
            f",{json_string(by[HTML_TAG])}:" if HTML_TAG in by else None,
            _shared(slot, plain),
        )
        for slot, by in tags.items()
    )
    tag_chars = sum(len(tag) for by in tags.values() for tag in by.values())
    if slots and all(s.plain and s.text_key is not None and s.html_key is None for s in slots):
        template = "".join(f'{(s.text_key or "").replace("%", "%%")}"%s"' for s in slots)[1:]
        return Plan(slots, tag_chars, tuple(s.name for s in slots), template)
    return Plan(slots, tag_chars)


def substitutions(msg: OutgoingMessage, plan: Plan) -> str:
    """This recipient's ``"tag":"value"`` pairs, values as ``Compiled.fill`` writes them: one line, escaped in HTML."""
    values = msg.values
    if plan.plain_names:
        links = tuple(map(values.get, plan.plain_names))
        if all(links):  # each value given, and URL-safe as built: written as it is
            return _within_limit(msg, plan.plain_template % links)
    pairs: list[str] = []
    chars = plan.tag_chars
    for name, default, text_key, html_key, plain in plan.slots:
        given = values.get(name)
        if plain and given and text_key is not None:  # a signed link, URL-safe as built: one tag for both
            pairs += (text_key, '"', given, '"')
            chars += len(given) + 2
            continue
        if _PLAIN.fullmatch(value := given or default) is not None:  # most names: JSON- and HTML-safe
            encoded = html_encoded = f'"{value}"'
        else:
            value = value if value.isprintable() else one_line(value)
            encoded = html_encoded = json_string(value)
            if html_key is not None and _HTML_SPECIAL.search(value):
                html_encoded = json_string(html.escape(value, quote=True))
        if text_key is not None:
            pairs += (text_key, encoded)
            chars += len(encoded)
        if html_key is not None:
            pairs += (html_key, html_encoded)
            chars += len(html_encoded)
    return _within_limit(msg, "".join(pairs)[1:], chars)  # each key starts with its comma


def _within_limit(msg: OutgoingMessage, text: str, chars: int | None = None) -> str:
    """The pairs when SendGrid takes them: at most MAX_SUBSTITUTION_BYTES of tags and values.

    ``chars`` is the characters of tags and values (the whole text when not given).
    """
    # The exact count (of what SendGrid receives: the JSON read back) only when it could matter:
    # the JSON text is at least as long as the value it holds, a character of which takes 4 bytes at most.
    if (len(text) if chars is None else chars) * 4 > MAX_SUBSTITUTION_BYTES:
        written: dict[str, str] = json.loads("{" + text + "}")
        size = sum(len(k.encode()) + len(v.encode()) for k, v in written.items())
        if size > MAX_SUBSTITUTION_BYTES:
            raise PermanentTransportError(
                f"personal values of delivery {msg.delivery_id} take {size} bytes, "
                f"more than SendGrid's {MAX_SUBSTITUTION_BYTES} per recipient"
            )
    return text


def personalization(msg: OutgoingMessage, plan: Plan) -> str:
    """One recipient as JSON text: address, per-recipient headers, delivery id (a string), substitutions."""
    # check_address and check_url let through printable ASCII only, neither quote nor backslash,
    # and a List-Unsubscribe URL they skip is a plain signed link: the address and the header's
    # value are JSON strings as they are, between quotes.
    email = f'"{check_address(msg.to_email, role="recipient")}"'
    name = clean(msg.to_name)[:MAX_NAME].strip()
    named = f',"name":{json_string(name)}' if name else ""
    url, mailto = unsubscribe_targets(msg)
    extra = (
        "".join(f",{json_string(k)}:{json_string(v)}" for k, v in extra_headers(msg)) if msg.headers else ""
    )
    subs = f',"substitutions":{{{substitutions(msg, plan)}}}' if plan.slots else ""
    return (
        f'{{"to":[{{"email":{email}{named}}}],'
        f'"headers":{{"List-Unsubscribe":"<{url}>, <{mailto}>"{extra}}},'
        f'"custom_args":{{"delivery_id":"{msg.delivery_id:d}"}}{subs}}}'
    )


def request_template(msg: OutgoingMessage, *, sandbox: bool) -> dict[str, Any]:
    """Everything the recipients of one step share: sender, subject, content, categories, settings."""
    step = msg.rendered
    sender: dict[str, str] = {"email": check_address(msg.from_email, role="sender")}
    if clean(msg.from_name):
        sender["name"] = clean(msg.from_name)[:MAX_NAME]
    body: dict[str, Any] = {
        "from": sender,
        "subject": clean(step.subject.substitution_form(TEXT_TAG)),
        "content": [
            {"type": "text/plain", "value": step.text.substitution_form(TEXT_TAG)},
            {"type": "text/html", "value": step.html.substitution_form(html_tags(msg.plain))},
        ],
        "categories": list(dict.fromkeys(c[:255] for c in (msg.course, msg.step_key) if c)),
        "mail_settings": {"sandbox_mode": {"enable": sandbox}},
        # The same for every recipient, so sent once; each personalization adds its own List-Unsubscribe.
        "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click", **shared_headers(msg)},
    }
    if msg.reply_to:
        body["reply_to"] = {"email": check_address(msg.reply_to, role="reply-to")}
    return body


def shared_headers(msg: OutgoingMessage) -> dict[str, str]:
    """List-ID and Feedback-ID as every transport writes them, unfolded: SendGrid folds lines itself."""
    pairs = (line.partition(": ") for line in list_headers(msg, check_domain(msg.message_id_domain)))
    return {name: value.replace("\r\n ", " ") for name, _, value in pairs}


def request_head(template: Mapping[str, Any]) -> str:
    """The JSON text of a request up to its first personalization; a body is head, pairs, ``]}``."""
    return json.dumps(template, separators=(",", ":"))[:-1] + ',"personalizations":['


def _errors(raw: bytes | str | None) -> list[tuple[str | None, str]]:
    """SendGrid's ``{"errors": [{"field", "message"}]}`` as pairs; empty when the body says nothing usable."""
    try:
        data = json.loads(raw or b"")
    except ValueError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        (e.get("field") if isinstance(e.get("field"), str) else None, str(e.get("message", "")))
        for e in errors
        if isinstance(e, dict)
    ]


def _detail(raw: bytes | str | None) -> str:
    errors = _errors(raw)
    if errors:
        return "; ".join(f"{field}: {message}" if field else message for field, message in errors)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    return text.strip()[:300]


def retry_after(headers: Mapping[str, str] | None, now: datetime) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) or X-RateLimit-Reset (unix time)."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now.timestamp())
        except ValueError:
            return None
    return None


def status_error(
    status: int, raw: bytes | str | None, headers: Mapping[str, str] | None, now: datetime
) -> TransportError:
    """429, 408 and 5xx are worth retrying; any other refusal (400, 401, 403, 413…) is not."""
    message = f"SendGrid answered {status}: {_detail(raw)}".rstrip(": ")
    if status == 429:
        return TransientTransportError(message, retry_after=retry_after(headers, now))
    if status == 408 or status >= 500:
        return TransientTransportError(message, retry_after=retry_after(headers, now))
    return PermanentTransportError(message)


class _Payload(bytes):
    """Request bytes that log as their size.

    python_http_client formats every request body into a debug message
    (``'PAYLOAD: {data}'.format(...)``) even when debug logging is off: for a
    request of 1000 personalizations that is a quarter of the client's CPU.
    """

    def __format__(self, spec: str) -> str:
        return f"<{len(self):,} bytes of JSON>"


class _Body(str):
    """A request body for the client, already encoded: its ``encode()`` is the :class:`_Payload`.

    python_http_client takes a ``str`` body and sends ``body.encode("utf-8")``. The body is
    put together as bytes instead, the head encoded once per step: a str body of a thousand
    personalizations was copied three times more (head, tail, encoding), 1% of a recipient's
    instructions. The text of this str is only the body's size, for whatever prints it.
    """

    payload: _Payload

    def __new__(cls, payload: bytes) -> _Body:
        body = super().__new__(cls, f"<{len(payload):,} bytes of JSON>")
        body.payload = _Payload(payload)
        return body

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.payload


class SendgridTransport(TransportBase):
    """Batch deliveries into SendGrid mail/send requests with the official client."""

    name = "sendgrid"
    handoff_size = 1000  # one request of up to 1000 personalizations
    batch_size = 1000  # a pass is one full request

    def __init__(
        self,
        settings: SendgridSection,
        *,
        environ: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_per_request: int = MAX_PERSONALIZATIONS,
    ) -> None:
        env = os_environ if environ is None else environ
        api_key = env.get(settings.api_key_env)
        if not api_key:
            raise ConfigError(
                Problem(
                    f"environment variable {settings.api_key_env} is not set: the SendGrid transport "
                    "needs an API key, and keys never live in drip.yaml",
                    key="transport.sendgrid.api_key_env",
                )
            )
        self.settings = settings
        self.max_per_request = max(1, min(max_per_request, MAX_PERSONALIZATIONS))
        self._client = SendGridAPIClient(api_key=api_key, host=settings.host)
        self._client.client.timeout = timeout
        self._client.client.request_headers["Content-Type"] = CONTENT_TYPE
        self.requests_sent = 0  # for tests and benchmarks: batching is observable

    def send_batch(
        self, messages: Sequence[OutgoingMessage], *, now: datetime | None = None
    ) -> list[SendResult]:
        date = send_time(now)
        results: dict[int, SendResult] = {}
        # Grouped by the rendered step's identity: dispatch renders each step once and shares
        # the object; hashing its content for every recipient would cost a tenth of a send.
        groups: dict[tuple[int, str, str, str | None, frozenset[str]], list[int]] = {}
        for index, msg in enumerate(messages):
            key = (id(msg.rendered), msg.from_email, msg.from_name, msg.reply_to, msg.plain)
            groups.setdefault(key, []).append(index)
        for indexes in groups.values():
            first = messages[indexes[0]]
            plan = substitution_plan(first.rendered, first.plain)
            try:
                head = request_head(request_template(first, sandbox=self.settings.sandbox)).encode()
            except TransportError as exc:
                for index in indexes:
                    results[index] = SendResult(messages[index].delivery_id, error=exc)
                continue
            items: list[_Pending] = []
            for index in indexes:
                msg = messages[index]
                try:
                    items.append((index, msg, personalization(msg, plan)))
                except TransportError as exc:
                    results[index] = SendResult(msg.delivery_id, error=exc)
            for start in range(0, len(items), self.max_per_request):
                self._post(head, items[start : start + self.max_per_request], results, date)
        return [results[i] for i in range(len(messages))]

    def _post(
        self, head: bytes, items: list[_Pending], results: dict[int, SendResult], now: datetime
    ) -> None:
        body = _Body(b"".join((head, ",".join([text for _, _, text in items]).encode(), b"]}")))
        self.requests_sent += 1
        error: TransportError
        try:
            # What SendGridAPIClient.send does with a dict, given the body as JSON text.
            response = self._client.client.mail.send.post(request_body=body)
        except HTTPError as exc:
            if self._narrow(exc, head, items, results, now):
                return
            error = status_error(exc.status_code, exc.body, exc.headers, now)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout
            error = TransientTransportError(f"cannot reach SendGrid at {self.settings.host}: {exc}")
        else:
            provider_id = response.headers.get("X-Message-Id")
            for position, msg, _ in items:
                results[position] = SendResult(msg.delivery_id, provider_id)
            return
        for position, msg, _ in items:
            results[position] = SendResult(msg.delivery_id, error=error)

    def _narrow(
        self,
        exc: HTTPError,
        head: bytes,
        items: list[_Pending],
        results: dict[int, SendResult],
        now: datetime,
    ) -> bool:
        """After a 400/413 on several recipients, find who is at fault; False when the request fails as one."""
        if exc.status_code not in (400, 413) or len(items) < 2:
            return False
        errors = _errors(exc.body)
        named: dict[int, list[str]] = {}
        shared = False
        for field, message in errors:
            m = _PERSONALIZATION_FIELD.match(field or "")
            if m and int(m.group(1)) < len(items):
                named.setdefault(int(m.group(1)), []).append(f"{field}: {message}")
            elif field:
                shared = True  # about the content or the sender: every recipient would fail alike
        if exc.status_code == 400 and named and not shared:
            for i, messages in named.items():
                error = PermanentTransportError(f"SendGrid answered 400: {'; '.join(messages)}")
                position, msg, _ = items[i]
                results[position] = SendResult(msg.delivery_id, error=error)
            rest = [item for i, item in enumerate(items) if i not in named]
            if rest:
                self._post(head, rest, results, now)
            return True
        if shared:
            return False
        half = len(items) // 2
        self._post(head, items[:half], results, now)
        self._post(head, items[half:], results, now)
        return True


def from_site(site: Site) -> SendgridTransport:
    return SendgridTransport(site.config.transport.sendgrid)
