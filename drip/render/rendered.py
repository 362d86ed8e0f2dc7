"""A step compiled once: what render hands to dispatch, preview and every transport."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from drip.render.slots import Compiled

K = TypeVar("K")
V = TypeVar("V")


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


class LruCache(Generic[K, V]):
    """At most ``max_size`` values, the least recently used dropped first. Thread-safe.

    For caches a long-running worker fills from data that keeps coming (each issue, each
    subset of its posts a reader gets): a dict would grow for the life of the process.
    """

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for ``key`` (now the most recent), or ``make()``'s, kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: a render takes milliseconds; two threads may both make it
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
        return value
