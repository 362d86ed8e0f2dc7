"""Markdown written for an email, made into HTML every mail client shows the same way.

markdown-it-py parses the body (CommonMark plus tables; raw HTML is shown as
text, never passed through). Before rendering, each token gets its inline
style (mail clients drop ``<style>`` blocks), each link its absolute tracked
URL, and each image is checked: an absolute https address, alt text and a width,
written ``![Alt](https://…/image.png){width=560}``. The plain-text part is
rendered from the same tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token

from drip.errors import Problem
from drip.render.markdown_text import tokens_to_text

_WIDTH = re.compile(r"^\{\s*width\s*=\s*(\d+)\s*(?:px)?\s*\}")
MAX_IMAGE_WIDTH = 1200


@dataclass(frozen=True)
class Palette:
    """The theme colours the inline styles use (theme.j2's names)."""

    text: str = "#1f2933"
    muted: str = "#4b5563"
    accent: str = "#1d4ed8"
    rule: str = "#e5e7eb"
    highlight_bg: str = "#eef2ff"


def _styles(p: Palette) -> dict[str, str]:
    heading = f"margin: 24px 0 12px 0; color: {p.text}; font-weight: 700; line-height: 1.3;"
    cell = f"border: 1px solid {p.rule}; padding: 6px 10px;"
    return {
        "h1": f"{heading} font-size: 26px;",
        "h2": f"{heading} font-size: 22px;",
        "h3": f"{heading} font-size: 19px;",
        "h4": f"{heading} font-size: 17px;",
        "h5": f"{heading} font-size: 17px;",
        "h6": f"{heading} font-size: 17px;",
        "p": "margin: 0 0 16px 0;",
        "ul": "margin: 0 0 16px 0; padding: 0 0 0 24px;",
        "ol": "margin: 0 0 16px 0; padding: 0 0 0 24px;",
        "li": "margin: 0 0 8px 0;",
        "a": f"color: {p.accent}; text-decoration: underline;",
        "blockquote": f"margin: 0 0 16px 0; padding: 4px 0 4px 16px; border-left: 4px solid {p.rule}; color: {p.muted};",
        "table": "border-collapse: collapse; width: 100%; margin: 0 0 16px 0; font-size: 15px;",
        "th": f"{cell} background-color: {p.highlight_bg}; font-weight: 700;",
        "td": cell,
        "code": f"font-family: Menlo, Consolas, monospace; font-size: 14px; background-color: {p.highlight_bg}; padding: 1px 4px; border-radius: 3px;",
        "pre": f"margin: 0 0 16px 0; padding: 12px 14px; background-color: {p.highlight_bg}; border-radius: 6px; overflow-x: auto; font-family: Menlo, Consolas, monospace; font-size: 14px; line-height: 1.5; white-space: pre-wrap;",
        "img": "display: block; max-width: 100%; height: auto; border: 0; margin: 0 0 16px 0;",
        "hr": f"border: 0; border-top: 1px solid {p.rule}; margin: 24px 0;",
    }


def parser() -> MarkdownIt:
    """CommonMark with tables; raw HTML stays text, and bare URLs stay as written."""
    return MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass(frozen=True)
class WrittenLink:
    """A link or image address as written in the Markdown, with where it is written."""

    href: str
    line: int
    column: int
    image: bool = False


@dataclass
class EmailBody:
    """The body as email HTML and as plain text, with every address as written and any problems."""

    html: str = ""
    text: str = ""
    links: list[WrittenLink] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class _Source:
    """Where a token sits in the file: 1-based line and the column of a snippet on it."""

    def __init__(self, markdown: str, file: Path | None, line_offset: int) -> None:
        self.lines = markdown.splitlines()
        self.file = file
        self.offset = line_offset

    def where(self, block: Token, snippet: str) -> tuple[int, int]:
        first, last = block.map or (0, 1)
        for index in range(first, min(last, len(self.lines))):
            at = self.lines[index].find(snippet) if snippet else -1
            if at >= 0:
                return self.offset + index + 1, at + 1
        text = self.lines[first] if first < len(self.lines) else ""
        return self.offset + first + 1, len(text) - len(text.lstrip()) + 1

    def problem(self, block: Token, snippet: str, message: str, hint: str | None = None) -> Problem:
        line, column = self.where(block, snippet)
        return Problem(message, file=self.file, line=line, column=column, hint=hint)


def _image(image: Token, after: Token | None, block: Token, src: _Source, out: EmailBody) -> None:
    """Check one image and give it its width; the ``{width=N}`` after it leaves the text."""
    href = str(image.attrGet("src") or "")
    alt = "".join(c.content for c in image.children or [])
    line, column = src.where(block, f"]({href}") if href else src.where(block, "![")
    out.links.append(WrittenLink(href, line, column, image=True))
    found = _WIDTH.match(after.content) if after is not None and after.type == "text" else None
    if found and after is not None:
        after.content = after.content[found.end() :]
    shown = href or "(empty)"
    if not href.startswith("https://") and not href.startswith("http://"):
        out.problems.append(
            src.problem(
                block,
                "![",
                f"image {shown} needs an absolute address: mail clients cannot resolve {href!r}",
                "write it as https://…",
            )
        )
    if not alt.strip():
        out.problems.append(
            src.problem(
                block,
                "![",
                f"image {shown} has no alt text, which readers with images off see instead",
                "write ![what it shows](…)",
            )
        )
    width = int(found.group(1)) if found else 0
    if not 1 <= width <= MAX_IMAGE_WIDTH:
        what = "has no width" if not found else f"has width {width}, outside 1 to {MAX_IMAGE_WIDTH}"
        out.problems.append(
            src.problem(
                block,
                "![",
                f"image {shown} {what}: Outlook shows images at their file's size",
                "write {width=560} right after the image",
            )
        )
    if width:
        image.attrSet("width", str(width))


def _inline(
    block: Token, styles: Mapping[str, str], link: Callable[[str], str], src: _Source, out: EmailBody
) -> None:
    children = block.children or []
    for i, child in enumerate(children):
        if child.type == "link_open":
            href = str(child.attrGet("href") or "")
            line, column = src.where(block, f"]({href}")
            out.links.append(WrittenLink(href, line, column))
            child.attrSet("href", link(href))
            child.attrSet("style", styles["a"])
        elif child.type == "image":
            _image(child, children[i + 1] if i + 1 < len(children) else None, block, src, out)
            child.attrSet("style", styles["img"])
        elif child.type == "code_inline":
            child.attrSet("style", styles["code"])


def _style_blocks(
    tokens: list[Token], styles: Mapping[str, str], link: Callable[[str], str], src: _Source, out: EmailBody
) -> None:
    for token in tokens:
        if token.type == "inline":
            _inline(token, styles, link, src, out)
        elif token.nesting >= 0 and token.tag in styles:
            align = token.attrGet("style")  # table cells carry their column's alignment
            aligned = f" {align};" if align else (" text-align: left;" if token.tag in ("th", "td") else "")
            token.attrSet("style", styles[token.tag] + aligned)


def _code_block(renderer: object, tokens: list[Token], idx: int, options: object, env: object) -> str:
    token = tokens[idx]
    return f'<pre style="{token.meta["pre"]}"><code>{escapeHtml(token.content)}</code></pre>\n'


def render_markdown(
    markdown: str,
    *,
    link: Callable[[str], str],
    palette: Palette | None = None,
    file: Path | None = None,
    line_offset: int = 0,
) -> EmailBody:
    """The body as inline-styled HTML and plain text; image mistakes come back as located problems."""
    md = parser()
    styles = _styles(palette or Palette())
    md.add_render_rule("fence", _code_block)
    md.add_render_rule("code_block", _code_block)
    tokens = md.parse(markdown)
    out = EmailBody()
    _style_blocks(tokens, styles, link, _Source(markdown, file, line_offset), out)
    for token in tokens:
        if token.type in ("fence", "code_block"):
            token.meta["pre"] = styles["pre"]
    out.html = md.renderer.render(tokens, md.options, {})
    out.text = tokens_to_text(tokens)
    return out
