"""A step compiled once: what render hands to dispatch, preview and every transport."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drip.render.slots import Compiled


@dataclass(frozen=True)
class RenderedStep:
    """One step of one course in one locale, compiled once; personal fields left as slots."""

    course: str
    step_key: str
    locale: str
    subject: Compiled  # plain text
    preheader: str
    html: Compiled
    text: Compiled
    links: tuple[str, ...] = ()  # with click tracking: the targets of its /c/ links, by index

    def personalise(self, values: Mapping[str, str]) -> tuple[str, str, str]:
        """Subject, HTML and text for one subscriber: the cheap second stage."""
        return (
            self.subject.fill(values, escape=False),
            self.html.fill(values, escape=True),
            self.text.fill(values, escape=False),
        )
