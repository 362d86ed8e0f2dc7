"""MJML → HTML: lint, compile with mjml-python, then inline the CSS MJML marks for inlining.

mjml-python compiles fast but accepts unknown tags and attributes without a word,
and leaves ``<mj-style inline="inline">`` in a ``<style>`` block where node MJML
would inline it. So templates are linted here (tag and attribute names, balanced
``mj-*`` tags) and the inline CSS is taken out before compiling and applied with
css-inline afterwards, leaving MJML's own ``<style>`` blocks (media queries) alone.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import css_inline
from mjml import mjml2html

from drip.errors import Problem, did_you_mean

# Every tag MJML 4 knows.
KNOWN_TAGS = frozenset(
    {
        "mjml",
        "mj-head",
        "mj-body",
        "mj-include",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-html-attribute",
        "mj-selector",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-raw",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
    }
)

_PADDING = frozenset({"padding", "padding-top", "padding-right", "padding-bottom", "padding-left"})
_BORDER = frozenset({"border", "border-top", "border-right", "border-bottom", "border-left", "border-radius"})
_BACKGROUND = frozenset(
    {
        "background-color",
        "background-url",
        "background-repeat",
        "background-size",
        "background-position",
        "background-position-x",
        "background-position-y",
    }
)
_FONT = frozenset(
    {
        "color",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "line-height",
        "letter-spacing",
        "text-decoration",
        "text-transform",
    }
)
_COMMON = frozenset({"css-class", "mj-class"})
_SECTION = _COMMON | _PADDING | _BORDER | _BACKGROUND | {"direction", "full-width", "text-align"}

# Attributes allowed on the tags drip's templates use (from the MJML documentation).
# Tags missing from this table are known to MJML but not attribute-checked.
ATTRIBUTES: dict[str, frozenset[str]] = {
    "mjml": frozenset({"lang", "dir", "owa"}),
    "mj-head": frozenset(),
    "mj-title": frozenset(),
    "mj-preview": frozenset(),
    "mj-style": frozenset({"inline"}),
    "mj-breakpoint": frozenset({"width"}),
    "mj-font": frozenset({"name", "href"}),
    "mj-body": frozenset({"width", "background-color", "css-class"}),
    "mj-wrapper": _SECTION | {"gap"},
    "mj-section": _SECTION,
    "mj-column": _COMMON
    | _PADDING
    | _BORDER
    | {
        "background-color",
        "inner-background-color",
        "inner-border",
        "inner-border-radius",
        "width",
        "vertical-align",
        "direction",
    },
    "mj-text": _COMMON | _PADDING | _FONT | {"align", "container-background-color", "height"},
    "mj-button": _COMMON
    | _PADDING
    | _BORDER
    | _FONT
    | {
        "align",
        "background-color",
        "container-background-color",
        "height",
        "href",
        "inner-padding",
        "name",
        "rel",
        "target",
        "text-align",
        "title",
        "vertical-align",
        "width",
    },
    "mj-image": _COMMON
    | _PADDING
    | _BORDER
    | {
        "align",
        "alt",
        "container-background-color",
        "fluid-on-mobile",
        "height",
        "href",
        "name",
        "rel",
        "sizes",
        "src",
        "srcset",
        "target",
        "title",
        "usemap",
        "width",
    },
    "mj-divider": _COMMON
    | _PADDING
    | {"align", "border-color", "border-style", "border-width", "container-background-color", "width"},
    "mj-spacer": _COMMON | _PADDING | {"container-background-color", "height"},
    "mj-raw": frozenset({"position", "css-class"}),
}


_CONTENT = frozenset(
    {
        "mj-accordion",
        "mj-button",
        "mj-carousel",
        "mj-divider",
        "mj-image",
        "mj-navbar",
        "mj-raw",
        "mj-social",
        "mj-spacer",
        "mj-table",
        "mj-text",
    }
)

# Which mj- tags each tag may hold (MJML 4 documentation, "Standard body" and "Standard head" parts);
# tags missing here hold HTML or nothing. MJML's strict validation rejects anything else.
CHILDREN: dict[str, frozenset[str]] = {
    "mjml": frozenset({"mj-head", "mj-body", "mj-raw"}),
    "mj-head": frozenset(
        {
            "mj-attributes",
            "mj-breakpoint",
            "mj-font",
            "mj-html-attributes",
            "mj-preview",
            "mj-raw",
            "mj-style",
            "mj-title",
        }
    ),
    "mj-html-attributes": frozenset({"mj-selector"}),
    "mj-selector": frozenset({"mj-html-attribute"}),
    "mj-body": frozenset({"mj-wrapper", "mj-section", "mj-hero", "mj-raw"}),
    "mj-wrapper": frozenset({"mj-section", "mj-hero", "mj-raw"}),
    "mj-section": frozenset({"mj-column", "mj-group", "mj-raw"}),
    "mj-group": frozenset({"mj-column", "mj-raw"}),
    "mj-column": _CONTENT,
    "mj-hero": _CONTENT,
    "mj-accordion": frozenset({"mj-accordion-element", "mj-raw"}),
    "mj-accordion-element": frozenset({"mj-accordion-title", "mj-accordion-text", "mj-raw"}),
    "mj-carousel": frozenset({"mj-carousel-image"}),
    "mj-navbar": frozenset({"mj-navbar-link", "mj-raw"}),
    "mj-social": frozenset({"mj-social-element", "mj-raw"}),
}
# mj-attributes holds one element per tag it sets defaults for: any tag name goes.
_ANY_CHILD = frozenset({"mj-attributes"})


def _parents_of(tag: str) -> list[str]:
    return sorted(parent for parent, children in CHILDREN.items() if tag in children)


class _Linter(HTMLParser):
    def __init__(self, file: Path | None) -> None:
        super().__init__(convert_charrefs=True)
        self.file = file
        self.problems: list[Problem] = []
        self.open: list[tuple[str, int, int]] = []

    def _problem(self, message: str, hint: str | None = None) -> None:
        line, col = self.getpos()
        self.problems.append(Problem(message, file=self.file, line=line, column=col + 1, hint=hint))

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if not (tag == "mjml" or tag.startswith("mj-")):
            return False
        if tag not in KNOWN_TAGS:
            self._problem(f"unknown MJML tag <{tag}>", did_you_mean(tag, KNOWN_TAGS))
            return False
        parent = self.open[-1][0] if self.open else None
        if parent not in _ANY_CHILD:
            self._check_parent(tag, parent)
        allowed = ATTRIBUTES.get(tag)
        if allowed is not None:
            for name, _ in attrs:
                if name not in allowed:
                    self._problem(f"unknown attribute {name!r} on <{tag}>", did_you_mean(name, allowed))
        return True

    def _check_parent(self, tag: str, parent: str | None) -> None:
        """A tag inside a parent MJML does not allow there (a fragment's top-level tags are not checked)."""
        if parent is None or tag in CHILDREN.get(parent, frozenset()):
            return
        allowed = ", ".join(f"<{p}>" for p in _parents_of(tag)) or "no MJML tag"
        self._problem(f"<{tag}> is not allowed inside <{parent}>; it belongs in {allowed}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._check(tag, attrs):
            return
        line, col = self.getpos()
        self.open.append((tag, line, col + 1))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if not (tag == "mjml" or tag.startswith("mj-")) or tag not in KNOWN_TAGS:
            return
        if not self.open or self.open[-1][0] != tag:
            expected = f", expected </{self.open[-1][0]}>" if self.open else ""
            self._problem(f"closing tag </{tag}> does not match an open tag{expected}")
            # Resynchronise on the matching open tag, if any, so one slip gives one problem.
            names = [name for name, _, _ in self.open]
            if tag in names:
                del self.open[len(names) - 1 - names[::-1].index(tag) :]
            return
        self.open.pop()

    def close(self) -> None:
        super().close()
        for tag, line, col in self.open:
            self.problems.append(Problem(f"<{tag}> is never closed", file=self.file, line=line, column=col))


def lint(source: str, file: Path | None = None) -> list[Problem]:
    """Every unknown ``mj-*`` tag, unknown attribute and unbalanced tag in MJML (or an MJML template).

    MJML is XML: an ``mj-*`` tag is closed by its end tag or written ``<mj-image … />``.
    HTML inside ``mj-text`` and friends is left alone.
    """
    linter = _Linter(file)
    linter.feed(source)
    linter.close()
    return linter.problems


class _InlineStyles(HTMLParser):
    """Finds ``<mj-style inline="inline">`` blocks: their CSS and where they sit in the source."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.line_starts = [0, *(m.end() for m in re.finditer("\n", source))]
        self.spans: list[tuple[int, int]] = []
        self.css: list[str] = []
        self._start: int | None = None

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mj-style" and dict(attrs).get("inline") == "inline":
            self._start = self._offset()

    def handle_endtag(self, tag: str) -> None:
        if tag == "mj-style" and self._start is not None:
            start = self._start
            inner_start = self.source.index(">", start) + 1
            inner_end = self._offset()
            end = self.source.index(">", inner_end) + 1
            self.css.append(self.source[inner_start:inner_end])
            self.spans.append((start, end))
            self._start = None


def split_inline_css(source: str) -> tuple[str, str]:
    """MJML without its ``<mj-style inline="inline">`` blocks, and their CSS joined.

    Only the head from the first ``mj-style`` on is parsed: ``mj-style`` belongs
    there, and the body is most of the document.
    """
    head_end = source.find("</mj-head>")
    first = source.find("<mj-style", 0, head_end if head_end >= 0 else len(source))
    if first < 0:
        return source, ""
    region = source[first:head_end] if head_end >= 0 else source[first:]
    finder = _InlineStyles(region)
    finder.feed(region)
    finder.close()
    if not finder.spans:
        return source, ""
    parts: list[str] = []
    last = 0
    for start, end in finder.spans:
        parts.append(source[last : first + start])
        last = first + end
    parts.append(source[last:])
    return "".join(parts), "\n".join(finder.css)


def to_html(source: str) -> str:
    """Compile MJML to HTML with the inline CSS applied; ValueError on malformed MJML.

    ``fonts={}`` keeps MJML from adding Google Fonts links for common font names:
    templates use system fonts and emails load nothing from third parties.
    """
    mjml, css = split_inline_css(source)
    html: str = mjml2html(mjml, disable_comments=True, fonts={})
    if not css:
        return html
    inliner = css_inline.CSSInliner(
        inline_style_tags=False,
        keep_style_tags=True,
        keep_link_tags=True,
        load_remote_stylesheets=False,
        extra_css=css,
    )
    result: str = inliner.inline(html)
    return result
