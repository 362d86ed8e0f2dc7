"""The Markdown body as markdown-it-py's syntax tree, seen as headings and sections.

Structure is always read from tokens, never from the raw text: a heading's section
is the blocks that follow it up to the next heading of the same or a higher level.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from drip.content.models import Link

_MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])
LISTS = ("bullet_list", "ordered_list")


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form, to compare heading names."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join(kept.casefold().split())


def slugify(text: str) -> str:
    """URL-safe ASCII slug: "Comprendre les rôles" → "comprendre-les-roles"."""
    ascii_text = fold(text).encode("ascii", "ignore").decode("ascii")
    return "-".join(ascii_text.split())


def plain_text(node: SyntaxTreeNode) -> str:
    """The readable text of a node: markup dropped, link text kept, whitespace collapsed."""
    return " ".join(_text(node).split())


def _text(node: SyntaxTreeNode) -> str:
    if node.type in ("text", "code_inline", "image"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    if node.type == "html_inline":
        return ""
    return "".join(_text(child) for child in node.children)


def _leaves(node: SyntaxTreeNode) -> Iterator[SyntaxTreeNode]:
    """Inline leaves in reading order; a link counts as one leaf."""
    for child in node.children:
        if child.type == "link" or not child.children:
            yield child
        else:
            yield from _leaves(child)


def first_link(node: SyntaxTreeNode) -> tuple[SyntaxTreeNode | None, str]:
    """The first link inside ``node`` and the plain text written after it."""
    link: SyntaxTreeNode | None = None
    after: list[str] = []
    for leaf in _leaves(node):
        if link is None:
            if leaf.type == "link":
                link = leaf
        else:
            after.append(_text(leaf))
    return link, " ".join("".join(after).split())


def href(link: SyntaxTreeNode) -> str:
    return str(link.attrs.get("href", ""))


def links(node: SyntaxTreeNode) -> list[tuple[Link, bool]]:
    """Every link under ``node`` in order, with whether it is emphasised (bold or italic)."""
    found: list[tuple[Link, bool]] = []
    _collect_links(node, False, found)
    return found


def _collect_links(node: SyntaxTreeNode, emphasised: bool, out: list[tuple[Link, bool]]) -> None:
    for child in node.children:
        if child.type == "link":
            text = plain_text(child) or href(child)
            out.append((Link(url=href(child), text=text), emphasised))
        else:
            _collect_links(child, emphasised or child.type in ("strong", "em"), out)


def paragraphs(node: SyntaxTreeNode) -> list[SyntaxTreeNode]:
    """Direct paragraph children (a list item's own text, not its nested lists')."""
    return [child for child in node.children if child.type == "paragraph"]


@dataclass(frozen=True)
class Heading:
    index: int  # position among the document's top-level blocks
    level: int
    text: str
    line: int  # 1-based line in the file


@dataclass(frozen=True)
class Document:
    """The body's top-level blocks and its headings, with file line numbers."""

    blocks: tuple[SyntaxTreeNode, ...]
    headings: tuple[Heading, ...]
    line_offset: int  # lines of the file before the body

    def line(self, node: SyntaxTreeNode) -> int | None:
        return node.map[0] + self.line_offset + 1 if node.map else None

    def find(self, names: tuple[str, ...]) -> Heading | None:
        """The first heading, at any level, whose folded text equals one of ``names``."""
        wanted = {fold(name) for name in names}
        return next((h for h in self.headings if fold(h.text) in wanted), None)

    def word_count(self) -> int:
        """Words a reader reads: inline text of every block, code blocks left out."""
        return sum(
            len(plain_text(node).split())
            for block in self.blocks
            for node in block.walk()
            if node.type == "inline"
        )

    def section(self, heading: Heading) -> tuple[int, int]:
        """Block index range [start, end) of the section a heading opens."""
        end = next(
            (h.index for h in self.headings if h.index > heading.index and h.level <= heading.level),
            len(self.blocks),
        )
        return heading.index + 1, end

    def headings_in(self, start: int, end: int) -> list[Heading]:
        return [h for h in self.headings if start <= h.index < end]


def parse_document(body: str, line_offset: int = 0) -> Document:
    """Parse a Markdown body; ``line_offset`` turns body lines into file lines."""
    blocks = tuple(SyntaxTreeNode(_MD.parse(body)).children)
    headings = tuple(
        Heading(i, int(b.tag[1:]), plain_text(b), (b.map[0] if b.map else 0) + line_offset + 1)
        for i, b in enumerate(blocks)
        if b.type == "heading"
    )
    return Document(blocks, headings, line_offset)
