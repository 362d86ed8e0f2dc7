"""A subscriber's slot values: what fills the personalisation slots of a rendered step.

One function for every place an email is personalised (dispatch, "view in
browser"), so the links in a page and in an email are built the same way.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any

from drip.config import is_base_url
from drip.render.rendered import RenderedStep
from drip.render.steps import CLICK_SLOT, OPEN_SLOT
from drip.tokens import Sign, born_of, click_token, link_signer, open_token


def subscriber_values(
    base_url: str,
    secret: str,
    *,
    subscriber_id: int,
    name: str,
    email: str,
    attributes: Mapping[str, Any],
    course: str,
    step: str,
    now: dt.datetime,
    created_at: dt.datetime | None = None,
) -> dict[str, str]:
    """Name, email, attributes and the three links, each carrying a signed token scoped to its action
    and bound to the subscriber's row by its creation time (so the links die with it)."""
    born = born_of(created_at) if created_at is not None else None
    unsubscribe, preferences, view = _link_signers(base_url, secret, course, step, now)
    values = {
        "name": name,
        "email": email,
        "unsubscribe_url": unsubscribe(subscriber_id, born),
        "preferences_url": preferences(subscriber_id, born),
        "view_url": view(subscriber_id, born),
    }
    for key, value in attributes.items():
        values[f"attributes.{key}"] = "" if value is None else str(value)
    return values


@functools.lru_cache(maxsize=64)
def _link_signers(
    base_url: str, secret: str, course: str, step: str, now: dt.datetime
) -> tuple[Sign, Sign, Sign]:
    """The unsubscribe, preferences and view links of one step at one time, for any subscriber:
    looked up once per email instead of once per link (a datetime keeps its hash once computed)."""
    issued = int(now.timestamp())
    return (
        link_signer(secret, "unsubscribe", course, None, issued, f"{base_url}/unsubscribe/"),
        link_signer(secret, "preferences", course, None, issued, f"{base_url}/preferences/"),
        link_signer(secret, "view", course, step, issued, f"{base_url}/view/"),
    )


LINK_SLOTS = frozenset({"unsubscribe_url", "preferences_url", "view_url"})


@functools.lru_cache(maxsize=16)
def plain_slots(base_url: str) -> frozenset[str]:
    """The values :func:`subscriber_values` builds as URL-safe ASCII: its links, when ``base_url`` is
    one :func:`drip.config.check_base_url` left (the rest of a link is base64url and dots)."""
    return LINK_SLOTS if is_base_url(base_url) else frozenset()


def is_tracked(rendered: RenderedStep) -> bool:
    """Whether the step was rendered with click or open tracking on: most are not, and their emails
    need no :func:`tracking_values`."""
    return bool(rendered.links) or OPEN_SLOT in rendered.html.slot_names


def tracking_values(base_url: str, secret: str, delivery_id: int, rendered: RenderedStep) -> dict[str, str]:
    """The /c/ link of each content link and the /o/ image of one delivery: empty unless the
    step was rendered with tracking on (its slots then hold the untracked links as defaults)."""
    values = {
        f"{CLICK_SLOT}{index}": f"{base_url}/c/{click_token(secret, delivery_id, index, url)}"
        for index, url in enumerate(rendered.links)
    }
    if OPEN_SLOT in rendered.html.slot_names:
        values[OPEN_SLOT] = f"{base_url}/o/{open_token(secret, delivery_id)}.gif"
    return values
