"""Hugo shortcodes in a Markdown body: ``ref``/``relref`` become URLs, the others leave no trace.

A shortcode is ``{{< name args >}}`` or ``{{% name args %}}``. ``ref`` and ``relref``
name another content file; they are replaced by that page's site path (with the
anchor kept) so markdown-it sees an ordinary link. Every other shortcode tag is
removed and the text between a paired opening and closing tag is kept, so a
``{{< note >}}`` or ``{{< youtube id >}}`` never reaches an email's text. Newlines
inside a removed tag are kept, so line numbers still point into the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_SHORTCODE = re.compile(r"\{\{[<%]\s*(?P<close>/)?\s*(?P<name>[\w./-]*)(?P<args>.*?)\s*[>%]\}\}", re.DOTALL)
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"|`([^`]*)`|(\S+)')
REFS = ("ref", "relref")


@dataclass(frozen=True)
class BrokenRef:
    """A ``ref``/``relref`` that names no page; line and column are 1-based within the text given."""

    target: str
    line: int
    column: int
    reason: str


def has_shortcodes(text: str) -> bool:
    return "{{<" in text or "{{%" in text


def expand(text: str, resolve: Callable[[str], str | None] | None = None) -> tuple[str, list[BrokenRef]]:
    """``text`` with refs resolved by ``resolve`` (target → site path) and other shortcodes removed."""
    if not has_shortcodes(text):
        return text, []
    broken: list[BrokenRef] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name in REFS and not match["close"]:
            target = _first_arg(match["args"])
            url = resolve(target) if resolve is not None and target else None
            if url is not None:
                return url
            line = text.count("\n", 0, match.start()) + 1
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            reason = "names no page" if target else "has no page to link to"
            broken.append(BrokenRef(target, line, column, reason))
            return "#"
        return "\n" * match[0].count("\n")

    return _SHORTCODE.sub(replace, text), broken


def strip(text: str) -> str:
    """Plain text without any shortcode (titles and descriptions in front matter)."""
    if not has_shortcodes(text):
        return text
    cleaned, _ = expand(text)
    return " ".join(cleaned.split()) if "\n" not in text else cleaned


def _first_arg(args: str) -> str:
    match = _ARG.search(args.strip())
    if match is None:
        return ""
    value = next((group for group in match.groups() if group is not None), "")
    return value.removeprefix("path=").strip('"')
