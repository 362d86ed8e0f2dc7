"""The plain-text part of a Markdown email, from the same tokens as its HTML.

Readers of text parts see Markdown-like plain text: links as ``text (URL)``,
list items with ``-`` or ``1.``, quotes with ``>``, code indented, tables as rows
of cells separated by ``|``.
"""

from __future__ import annotations

from collections.abc import Sequence

from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode


def _inline(node: SyntaxTreeNode) -> str:
    out: list[str] = []
    for child in node.children:
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "image":
            alt = _inline(child) or str(child.attrs.get("alt", ""))
            out.append(f"[{alt}]")
        elif kind == "link":
            text, href = _inline(child), str(child.attrs.get("href", ""))
            out.append(href if text == href else f"{text} ({href})")
        else:
            out.append(_inline(child))
    return "".join(out)


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join([first + lines[0], *[(rest + line) if line else line for line in lines[1:]]])


def _list(node: SyntaxTreeNode, ordered: bool) -> str:
    start = int(node.attrs.get("start", 1)) if ordered else 1
    items: list[str] = []
    for n, item in enumerate(node.children, start=start):
        marker = f"{n}. " if ordered else "- "
        body = "\n".join(_block(child) for child in item.children)
        items.append(_indent(body, marker, " " * len(marker)))
    return "\n".join(items)


def _table(node: SyntaxTreeNode) -> str:
    rows: list[str] = []
    for part in node.children:
        for row in part.children:
            rows.append(
                " | ".join(_inline(cell.children[0]) if cell.children else "" for cell in row.children)
            )
        if part.type == "thead":
            rows.append("-" * max(len(r) for r in rows))
    return "\n".join(rows)


def _block(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind in ("paragraph", "heading"):
        return _inline(node.children[0]) if node.children else ""
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, kind == "ordered_list")
    if kind == "blockquote":
        return _indent(_blocks(node.children), "> ", "> ").replace("\n>\n", "\n> \n")
    if kind in ("fence", "code_block"):
        return _indent(node.content.rstrip("\n"), "    ", "    ")
    if kind == "table":
        return _table(node)
    if kind == "hr":
        return "----"
    return _blocks(node.children)


def _blocks(nodes: Sequence[SyntaxTreeNode]) -> str:
    return "\n\n".join(text for text in (_block(n) for n in nodes) if text)


def tokens_to_text(tokens: Sequence[Token]) -> str:
    """Plain text for the tokens of a Markdown body (links already made absolute and tracked)."""
    return _blocks(SyntaxTreeNode(tokens).children) + "\n"
