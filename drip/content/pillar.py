"""Read a pillar page (front matter + Markdown) into a :class:`~drip.content.models.Pillar`.

The reading path is the list (ordered or bulleted) under a heading named like
"Par où commencer" or "Start here", at any level, compared without case, accents
or punctuation; a schedule may name another heading. A pillar may instead give
its reading path in front matter (``reading_path:`` entries, each a URL or a
mapping with url/title/label/minutes/notes/group): that list wins over the body,
unless a heading is asked for explicitly. Headings for the intro, the article
sections, the "go deeper" resource and the other pillars are found the same way.

Every problem in the file is reported at once, as a :class:`~drip.errors.ContentError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from markdown_it.tree import SyntaxTreeNode
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drip.content import shortcodes
from drip.content.duration import label_and_minutes, minutes_field
from drip.content.headings import (
    ARTICLES_HEADINGS,
    DEEPER_HEADINGS,
    INTRO_HEADINGS,
    OTHER_PILLARS_HEADINGS,
    READING_PATH_HEADINGS,
)
from drip.content.mdtree import (
    LISTS,
    Document,
    Heading,
    first_link,
    fold,
    href,
    links,
    paragraphs,
    parse_document,
    plain_text,
    slugify,
)
from drip.content.models import Link, Pillar, ReadingItem, Section
from drip.content.posts import ContentIndex, normalise_path, pillar_slug
from drip.content.source import Meta, Source, read_source
from drip.errors import ContentError, Problem, closest
from drip.inputs.yamlfile import KeyPath

FRONT_MATTER_PATH = "reading_path"  # reading_path_heading of a path given in front matter
_DASHES = " \t—–-:,;·|"


class ReadingEntry(BaseModel):
    """One front matter reading-path entry; a bare string is its URL.

    The URL may be written as Hugo writes links (``{{< ref "x" >}}``), or the page named by
    ``ref: x`` instead of ``url``: either resolves as a ``ref`` in the body does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(default="", min_length=1)
    ref: str | None = Field(default=None, min_length=1)
    title: str | None = None
    label: str | None = None
    minutes: int | None = Field(default=None, ge=1)
    notes: list[str] = Field(default_factory=list)
    group: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _url_only(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"url": v}
        if not isinstance(v, dict):
            raise ValueError(
                f"expected a URL or a mapping with url (or ref), title, label, minutes, notes, group; got {v!r}"
            )
        if ("url" in v) == ("ref" in v):
            raise ValueError("give the page as url or as ref, one of them")
        return v

    @field_validator("minutes", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return minutes_field(v)


class PillarMeta(Meta):
    reading_path: list[ReadingEntry] | None = None


def read_pillar(
    path: Path,
    *,
    heading: str | None = None,
    content: ContentIndex | None = None,
    other_pillars: str | None = None,
) -> Pillar:
    """Read a pillar; ``heading`` and ``other_pillars`` name headings that are not default ones.

    With ``content``, Hugo ``ref``/``relref`` links resolve against it, the page takes
    its URL from it, and a list linking only to its pillar pages is the other pillars.
    """
    src = read_source(path)
    problems = list(src.problems)
    meta, meta_problems = src.model(PillarMeta)
    problems += meta_problems
    doc = parse_document(_expand_refs(src, content, problems), src.body_line)

    if heading is None and FRONT_MATTER_PATH in src.meta:
        path_heading = FRONT_MATTER_PATH
        entries = meta.reading_path if meta and meta.reading_path is not None else []
        items = _front_matter_path(entries, src, doc, problems, content) if meta else ()
    else:
        path_heading, items = _body_path(doc, src, heading, problems)
    slug = pillar_slug(path)
    url = (meta.url if meta else None) or (content.url_of(path) if content else None) or f"/{slug}/"
    hubs = content.hubs - {normalise_path(url)} if content else None
    others, warnings = _other_pillars(doc, src, other_pillars, hubs, problems, path_heading)

    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise ContentError(problems)

    path_at = doc.find((path_heading,))
    intro = _intro(doc, path_at.index if path_at else len(doc.blocks))
    deeper, deeper_text = _deeper(doc)
    title = shortcodes.strip(meta.title) if meta and meta.title else None
    description = shortcodes.strip(meta.description) if meta and meta.description else None
    return Pillar(
        path=path,
        slug=slug,
        url=url,
        title=title or (doc.headings[0].text if doc.headings else slug),
        description=description or intro.split("\n\n")[0],
        intro=intro,
        reading_path_heading=path_heading,
        reading_path=items,
        sections=_article_sections(doc),
        deeper=deeper,
        deeper_text=deeper_text,
        other_pillars=others,
        front_matter=dict(src.meta),
        warnings=tuple(warnings),
    )


def _ref_resolver(
    src: Source, content: ContentIndex | None
) -> tuple[Callable[[str], str | None], dict[str, str]]:
    """Resolve ``ref`` targets written on ``src`` against the content; the dict gathers why one did not."""
    reasons: dict[str, str] = {}

    def resolve(target: str) -> str | None:
        if content is None:
            reasons[target] = "cannot be resolved without the site's content/"
            return None
        url, reasons[target] = content.ref(target, src.path)
        return url

    return resolve, reasons


def _expand_refs(src: Source, content: ContentIndex | None, problems: list[Problem]) -> str:
    """The body with ``ref``/``relref`` turned into site paths; each one that names no page is a problem."""
    resolve, reasons = _ref_resolver(src, content)
    body, broken = shortcodes.expand(src.body, resolve)
    for ref in broken:
        line = src.body_line + ref.line
        why = reasons.get(ref.target) or ref.reason
        problems.append(Problem(f"ref {ref.target!r} {why}", file=src.path, line=line, column=ref.column))
    return body


def _front_matter_path(
    entries: list[ReadingEntry],
    src: Source,
    doc: Document,
    problems: list[Problem],
    content: ContentIndex | None,
) -> tuple[ReadingItem, ...]:
    if not entries:
        problems.append(
            src.positions.problem((FRONT_MATTER_PATH,), "reading path is empty: list at least one link")
        )
        return ()
    texts = {link.url: link.text for block in doc.blocks for link, _ in links(block)}
    items = []
    for i, entry in enumerate(entries):
        where = src.positions.find((FRONT_MATTER_PATH, i))
        url = _entry_url(entry, src, (FRONT_MATTER_PATH, i), content, problems)
        items.append(
            ReadingItem(
                url=url,
                title=entry.title or texts.get(url, url),
                label=entry.label,
                minutes=entry.minutes,
                notes=tuple(entry.notes),
                group=entry.group,
                line=where[0] if where else None,
            )
        )
    return tuple(items)


def _entry_url(
    entry: ReadingEntry, src: Source, at: KeyPath, content: ContentIndex | None, problems: list[Problem]
) -> str:
    """A front matter entry's URL: ``ref: x`` and ``{{< ref "x" >}}`` resolved as in the body, else as written."""
    resolve, reasons = _ref_resolver(src, content)
    if entry.ref is not None:
        url = resolve(entry.ref)
        if url is None:
            problems.append(src.positions.problem((*at, "ref"), f"ref {entry.ref!r} {reasons[entry.ref]}"))
        return url or "#"
    if not shortcodes.has_shortcodes(entry.url):
        return entry.url
    url, broken = shortcodes.expand(entry.url, resolve)
    for ref in broken:
        why = reasons.get(ref.target) or ref.reason
        problems.append(src.positions.problem((*at, "url"), f"ref {ref.target!r} {why}"))
    return url.strip()


def _body_path(
    doc: Document, src: Source, heading: str | None, problems: list[Problem]
) -> tuple[str, tuple[ReadingItem, ...]]:
    names = (heading,) if heading else READING_PATH_HEADINGS
    found = doc.find(names)
    if found is None:
        problems.append(_heading_not_found(doc, src, names, explicit=heading is not None))
        return names[0], ()
    start, end = doc.section(found)
    items: list[ReadingItem] = []
    for i in range(start, end):
        block = doc.blocks[i]
        if block.type not in LISTS:
            continue
        group = _lead_in(doc.blocks[i - 1]) if i > start else None
        for entry in block.children:
            item = _reading_item(entry, group, doc, src, problems)
            if item is not None:
                items.append(item)
    if not items and not any(doc.blocks[i].type in LISTS for i in range(start, end)):
        problems.append(
            Problem(
                f"reading path under heading '{found.text}' is empty: add a list of links below it",
                file=src.path,
                line=found.line,
                column=src.column(found.line),
            )
        )
    return found.text, tuple(items)


def _heading_not_found(
    doc: Document, src: Source, names: tuple[str, ...], *, explicit: bool, purpose: str = "the reading path"
) -> Problem:
    wanted = " or ".join(f"'{name}'" for name in names)
    if explicit:
        message = f"no heading {wanted} for {purpose}"
    else:
        message = f"no reading path: no heading {wanted}, and no reading_path in front matter"
    if doc.headings:
        message += "; headings in this file: " + ", ".join(f"'{h.text}'" for h in doc.headings)
    else:
        message += "; this file has no headings"
    by_fold = {fold(h.text): h for h in doc.headings}
    match = next((m for name in names if (m := closest(fold(name), by_fold))), None)
    near: Heading | None = by_fold[match] if match else None
    line = near.line if near else src.first_line()
    return Problem(
        message,
        file=src.path,
        line=line,
        column=src.column(line),
        hint=f"did you mean '{near.text}'?" if near else None,
    )


def _lead_in(block: SyntaxTreeNode) -> str | None:
    """The paragraph (or sub-heading) right above a list: "Si tu découvres ce sujet :"."""
    if block.type in ("paragraph", "heading"):
        return plain_text(block) or None
    return None


def _reading_item(
    entry: SyntaxTreeNode, group: str | None, doc: Document, src: Source, problems: list[Problem]
) -> ReadingItem | None:
    own = paragraphs(entry)
    link, after = first_link(own[0]) if own else (None, "")
    line = doc.line(entry)
    if link is None or not href(link):
        text = plain_text(own[0]) if own else ""
        problems.append(
            Problem(
                f"reading path item '{text}' has no link",
                file=src.path,
                line=line,
                column=src.column(line) if line else None,
            )
        )
        return None
    label, minutes = label_and_minutes(after)
    notes = [plain_text(p) for p in own[1:]] + _nested_notes(entry)
    return ReadingItem(
        url=href(link),
        title=plain_text(link) or href(link),
        label=label,
        minutes=minutes,
        notes=tuple(n for n in notes if n),
        group=group,
        line=line,
    )


def _nested_notes(entry: SyntaxTreeNode) -> list[str]:
    notes: list[str] = []
    for child in entry.children:
        if child.type in LISTS:
            for sub in child.children:
                notes += [plain_text(p) for p in paragraphs(sub)]
                notes += _nested_notes(sub)
    return notes


def _intro(doc: Document, before: int) -> str:
    """The "who this page is for" section, else the first run of paragraphs above the reading path."""
    found = doc.find(INTRO_HEADINGS)
    if found is not None:
        start, end = doc.section(found)
        return _paragraph_text(doc.blocks[start:end])
    run: list[SyntaxTreeNode] = []
    for block in doc.blocks[:before]:
        if block.type == "paragraph":
            run.append(block)
        elif run:
            break
    return _paragraph_text(run)


def _paragraph_text(blocks: tuple[SyntaxTreeNode, ...] | list[SyntaxTreeNode]) -> str:
    return "\n\n".join(text for b in blocks if b.type == "paragraph" and (text := plain_text(b)))


def _described_links(block: SyntaxTreeNode) -> list[Link]:
    """Links of a block; a list item's first link takes the words after it as description."""
    if block.type not in LISTS:
        return [link for link, _ in links(block)]
    found: list[Link] = []
    for entry in block.children:
        own = paragraphs(entry)
        link, after = first_link(own[0]) if own else (None, "")
        if link is not None:
            text = plain_text(link) or href(link)
            found.append(Link(url=href(link), text=text, description=after.strip(_DASHES) or None))
            found += [extra for p in own for extra, _ in links(p)][1:]
        for child in entry.children:
            if child.type in LISTS:
                found += _described_links(child)
    return found


def _article_sections(doc: Document) -> tuple[Section, ...]:
    found = doc.find(ARTICLES_HEADINGS)
    return _sections(doc, *doc.section(found)) if found else ()


def _sections(doc: Document, start: int, end: int) -> tuple[Section, ...]:
    inside = doc.headings_in(start, end)
    if not inside:
        return ()
    top = min(h.level for h in inside)
    out: list[Section] = []
    for h in inside:
        if h.level != top:
            continue
        s, e = doc.section(h)
        e = min(e, end)
        own_end = next((sub.index for sub in doc.headings_in(s, e)), e)
        own = doc.blocks[s:own_end]
        out.append(
            Section(
                title=h.text,
                level=h.level,
                slug=slugify(h.text),
                text=_paragraph_text(own),
                links=tuple(link for block in own for link in _described_links(block)),
                subsections=_sections(doc, s, e),
                line=h.line,
            )
        )
    return tuple(out)


def _deeper(doc: Document) -> tuple[tuple[Link, ...], str]:
    """ "Go deeper" links, emphasised (main) ones first, and the section's text."""
    found = doc.find(DEEPER_HEADINGS)
    if found is None:
        return (), ""
    start, end = doc.section(found)
    blocks = doc.blocks[start:end]
    seen: dict[str, tuple[Link, bool]] = {}
    for block in blocks:
        for link, emphasised in links(block):
            seen.setdefault(link.url, (link, emphasised))
    ordered = sorted(seen.values(), key=lambda pair: not pair[1])
    return tuple(link for link, _ in ordered), _paragraph_text(blocks)


def _other_pillars(
    doc: Document,
    src: Source,
    name: str | None,
    hubs: frozenset[str] | None,
    problems: list[Problem],
    path_heading: str,
) -> tuple[tuple[Link, ...], list[Problem]]:
    """The links to other pillars, and a warning for each list of pillar links left unused.

    The heading a schedule names wins, then a default name ("Other pillars"), then the
    first heading whose lists link only to pillar pages of the site (``hubs``).
    """
    found = doc.find((name,) if name else OTHER_PILLARS_HEADINGS)
    if name is not None and found is None:
        problems.append(_heading_not_found(doc, src, (name,), explicit=True, purpose="the other pillars"))
    hub_lists = [h for h in _hub_lists(doc, hubs or frozenset()) if fold(h.text) != fold(path_heading)]
    chosen = found if found is not None or name is not None else next(iter(hub_lists), None)
    warnings = [
        Problem(
            f"the list under '{h.text}' links only to pillar pages but is not used as the other pillars",
            file=src.path,
            line=h.line,
            column=src.column(h.line),
            hint=f"name it in the schedule: `other_pillars: {h.text}`",
        )
        for h in hub_lists
        if chosen is None or h.index != chosen.index
    ]
    if chosen is None:
        return (), warnings
    start, end = doc.section(chosen)
    found_links = tuple(
        link for block in doc.blocks[start:end] if block.type in LISTS for link in _described_links(block)
    )
    return found_links, warnings


def _hub_lists(doc: Document, hubs: frozenset[str]) -> list[Heading]:
    """Headings whose own lists (above any sub-heading) link only to pillar pages."""
    if not hubs:
        return []
    out: list[Heading] = []
    for h in doc.headings:
        own = doc.blocks[
            h.index + 1 : next((o.index for o in doc.headings if o.index > h.index), len(doc.blocks))
        ]
        urls = [link.url for block in own if block.type in LISTS for link in _described_links(block)]
        if urls and all(url.startswith("/") and normalise_path(url.split("#")[0]) in hubs for url in urls):
            out.append(h)
    return out
