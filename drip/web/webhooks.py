"""POST /webhooks/sendgrid: SendGrid's signed Event Webhook.

Only a request signed with the account's ECDSA key (SENDGRID_WEBHOOK_PUBLIC_KEY)
and stamped within five minutes of now is read. Bounces, drops, spam reports and
unsubscribes stop all mail to the address: subscriber status, cancelled
deliveries and a keyed hash on the suppression list, a few hundred events a transaction. SendGrid
retries a batch with new ``sg_event_id`` values, so an event is recognised by a
digest of its content without that field: a replayed batch changes nothing.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from drip.store import schema
from drip.store.events import Event
from drip.store.schema import SubscriberStatus
from drip.store.suppressions import SuppressionReason
from drip.store.webhook_events import Reported, StopEvent, record_provider_events
from drip.web.body import WEBHOOK_CAP, parse_json, read_capped
from drip.web.clicks import scanner_name
from drip.web.state import WebState, state_of

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SKEW = dt.timedelta(minutes=5)

# event type -> (subscriber status, suppression reason)
SUPPRESSING: Mapping[str, tuple[str, str]] = {
    "bounce": (SubscriberStatus.BOUNCED, SuppressionReason.BOUNCED),
    "dropped": (SubscriberStatus.BOUNCED, SuppressionReason.BOUNCED),
    "spamreport": (SubscriberStatus.COMPLAINED, SuppressionReason.COMPLAINED),
    "unsubscribe": (SubscriberStatus.UNSUBSCRIBED, SuppressionReason.UNSUBSCRIBED),
    "group_unsubscribe": (SubscriberStatus.UNSUBSCRIBED, SuppressionReason.UNSUBSCRIBED),
}


# SendGrid event type -> the ledger's kind; any other type is kept as "other", its name in detail.
KINDS: Mapping[str, str] = {
    "processed": schema.EventKind.ACCEPTED,
    "delivered": schema.EventKind.DELIVERED,
    "deferred": schema.EventKind.DEFERRED,
    "bounce": schema.EventKind.BOUNCED,
    "dropped": schema.EventKind.BOUNCED,
    "spamreport": schema.EventKind.COMPLAINED,
    "click": schema.EventKind.CLICKED,
    "open": schema.EventKind.OPENED,
    "unsubscribe": schema.EventKind.UNSUBSCRIBED,
    "group_unsubscribe": schema.EventKind.UNSUBSCRIBED,
    "group_resubscribe": schema.EventKind.RESUBSCRIBED,
}


@dataclass(frozen=True)
class Applied:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0


def verify(public_key: str, body: bytes, signature: str, timestamp: str, *, now: dt.datetime) -> bool:
    """True only for a fresh timestamp and a valid ECDSA signature over timestamp + body."""
    try:
        stamped = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return False
    if abs(now - stamped) > MAX_SKEW:
        return False
    try:
        verifier = EventWebhook(public_key)
        return bool(verifier.verify_signature(body.decode("utf-8"), signature, timestamp))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return False


def event_digest(event: Mapping[str, Any]) -> str:
    """The identity of an event across SendGrid's retries: its content without ``sg_event_id``."""
    content = {k: v for k, v in event.items() if k != "sg_event_id"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    # JSON may spell a lone surrogate (\\ud800): hashed as its raw code point, never a crash.
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def stop_event(event: object) -> StopEvent | None:
    """The event as one that stops mail to an address, or None for anything else (ignored)."""
    if not isinstance(event, dict):
        return None
    kind, email = event.get("event"), event.get("email")
    if not isinstance(kind, str) or kind not in SUPPRESSING:
        return None
    if not isinstance(email, str) or not email.strip() or not _is_unicode(email):
        return None
    status, reason = SUPPRESSING[kind]
    return StopEvent(digest=event_digest(event), kind=kind, email=email, status=status, reason=reason)


def _is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (valid JSON escapes, never an address)."""
    return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _machine(event: Mapping[str, Any]) -> str | None:
    """Why SendGrid's open or click was a machine's: its own flag (Apple's proxy) or a scanner's agent."""
    if event.get("sg_machine_open") is True:
        return "sg_machine_open"
    agent = event.get("useragent")
    return scanner_name(agent) if isinstance(agent, str) else None


def _occurred(event: Mapping[str, Any], now: dt.datetime) -> dt.datetime:
    stamp = event.get("timestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        try:
            return dt.datetime.fromtimestamp(stamp, dt.UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return now


def ledger_event(event: object, now: dt.datetime) -> Event | None:
    """Any SendGrid event as a ledger row, tied to the delivery named in its custom args."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return None
    kind = str(event["event"])
    named = event.get("delivery_id")
    delivery_id = int(named) if isinstance(named, str) and named.isdigit() and len(named) < 19 else None
    machine = _machine(event) if kind in ("open", "click") else None
    return Event(
        delivery_id,
        KINDS.get(kind, schema.EventKind.OTHER),
        "sendgrid",
        _occurred(event, now),
        machine=machine is not None,
        detail=(machine or kind)[:64],
        digest=event_digest(event),
    )


def apply_events(state: WebState, events: list[Any], *, now: dt.datetime) -> Applied:
    """Record a verified batch in the ledger and apply what stops mail, in short transactions of a few
    hundred events; events seen before are skipped."""
    batch: list[Reported] = []
    for raw in events:
        found = ledger_event(raw, now)
        if found is not None:
            batch.append(Reported(found, stop_event(raw)))
    stops = sum(1 for r in batch if r.stop is not None)
    recorded = record_provider_events(state.engine, state.runtime.secret, batch, now=now)
    return Applied(recorded.applied, recorded.duplicates, len(events) - stops)


async def sendgrid_events(request: Request) -> Response:
    state = state_of(request)
    if not state.webhook_key:
        log.warning("SendGrid webhook called but SENDGRID_WEBHOOK_PUBLIC_KEY is not set: refused")
        return JSONResponse({"error": "webhook not configured"}, status_code=403)
    try:
        body = await read_capped(request, WEBHOOK_CAP)
    except HTTPException as exc:
        return JSONResponse(
            {"error": "body too large" if exc.status_code == 413 else "bad request"},
            status_code=exc.status_code,
        )
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    now = state.now()
    if not (signature and timestamp and verify(state.webhook_key, body, signature, timestamp, now=now)):
        log.warning("SendGrid webhook: bad signature or stale timestamp, batch refused")
        return JSONResponse({"error": "invalid signature"}, status_code=403)
    try:
        events = parse_json(body)
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    if not isinstance(events, list):
        return JSONResponse({"error": "expected a JSON array of events"}, status_code=400)
    result = await run_in_threadpool(apply_events, state, events, now=now)
    log.info(
        "SendGrid webhook: %d applied, %d duplicates, %d ignored",
        result.applied,
        result.duplicates,
        result.ignored,
    )
    return JSONResponse(
        {"applied": result.applied, "duplicates": result.duplicates, "ignored": result.ignored}
    )


routes = [Route("/webhooks/sendgrid", sendgrid_events, methods=["POST"])]
