"""Personalisation slots: the cheap second stage of "render once, personalise many".

The expensive stage (Jinja → MJML → HTML, CSS inlining) runs once per step and
locale with every per-subscriber field replaced by a marker. :func:`split` cuts
the compiled output at the markers into literal parts and slots; :meth:`Compiled.fill`
joins them back with each subscriber's values — on one line, escaped for HTML, raw for text.
"""

from __future__ import annotations

import functools
import html
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Plain ASCII letters and digits survive Jinja, MJML, the CSS inliner and
# html2text unchanged, in text and in attribute values alike.
MARKER_PREFIX = "DRIPSLOT"
_MARKER = re.compile(MARKER_PREFIX + r"(\d+)X")


@dataclass(frozen=True)
class Slot:
    """A per-subscriber field: its name and what to show when the subscriber has none."""

    name: str  # "name", "email", "unsubscribe_url", "attributes.company"
    default: str = ""


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: str) -> str:
    """A slot value with control characters (CR, LF, NUL…) turned into one space.

    Slot values are single-line by nature (a name, an address, a URL): a line
    break in one must never start a new header line in a subject or break the
    layout of the text part.
    """
    return _CONTROL.sub(" ", value)


def marker(index: int) -> str:
    return f"{MARKER_PREFIX}{index}X"


@dataclass(frozen=True)
class Compiled:
    """Compiled output cut at its slots: parts[0] slot[0] parts[1] slot[1] … parts[-1]."""

    parts: tuple[str, ...]
    slots: tuple[Slot, ...]

    def fill(self, values: Mapping[str, str], *, escape: bool) -> str:
        """Join the parts with this subscriber's values (HTML-escaped when ``escape``)."""
        parts = self.parts
        if not self.slots:
            return parts[0]
        out = [parts[0]]
        for i, value in enumerate(self.slot_values(values, escape=escape)):
            out.append(value)
            out.append(parts[i + 1])
        return "".join(out)

    def slot_values(self, values: Mapping[str, str], *, escape: bool) -> list[str]:
        """What goes in each slot for this subscriber: one line, HTML-escaped when ``escape``."""
        out: list[str] = []
        for slot in self.slots:
            value = values.get(slot.name) or slot.default
            if not value.isprintable():  # fast path: most values have no control characters
                value = one_line(value)
            out.append(html.escape(value, quote=True) if escape else value)
        return out

    def substitution_form(self, token: str | Callable[[Slot], str] = "-{}-") -> str:
        """The output with each slot written as a provider substitution tag (e.g. ``-name-``).

        ``token`` is the tag's pattern, or gives each slot its own.
        """
        out = [self.parts[0]]
        for i, slot in enumerate(self.slots):
            pattern = token if isinstance(token, str) else token(slot)
            out.append(pattern.format(slot_tag(slot)))
            out.append(self.parts[i + 1])
        return "".join(out)

    @functools.cached_property
    def slot_names(self) -> frozenset[str]:
        """Kept once read: every email of a step asks (its open pixel's slot)."""
        return frozenset(s.name for s in self.slots)


def slot_tag(slot: Slot) -> str:
    """A stable tag for one slot (name and default), usable as a substitution key."""
    base = re.sub(r"[^a-z0-9]+", "_", slot.name.lower()).strip("_")
    if slot.default:
        return f"{base}_{zlib.crc32(slot.default.encode()):08x}"
    return base


def split(text: str, slots: list[Slot] | tuple[Slot, ...]) -> Compiled:
    """Cut compiled output at its markers; markers refer to ``slots`` by index."""
    parts: list[str] = []
    used: list[Slot] = []
    last = 0
    for m in _MARKER.finditer(text):
        parts.append(text[last : m.start()])
        used.append(slots[int(m.group(1))])
        last = m.end()
    parts.append(text[last:])
    return Compiled(tuple(parts), tuple(used))
