"""Posts, and the index of everything content/ provides, read the way a static site generator reads it.

How a file is classified:

- front matter ``type: pillar`` or ``type: post`` decides (other ``type`` values,
  such as a theme's layout name, are ignored);
- otherwise the Markdown files directly in content/ and the section pages
  (``<section>/_index.md``) that have a reading path are pillar pages; every other
  file (content/posts/…, page bundles ``<name>/index.md``, other section pages) is a post;
- files and folders whose name starts with ``_`` or ``.`` are not content, except
  Hugo's ``_index.md`` section pages;
- drafts (``draft: true``), pages dated (``publishDate``, else ``date``) after now,
  and pages whose ``expiryDate`` is past are not published: they are left out, and a
  link or ref to one says why.

URLs are site paths relative to the site's base URL: front matter ``url`` wins;
else the file's place, with front matter ``slug`` replacing the last part:
content/posts/x.md, content/posts/x/index.md → ``/posts/x/``, content/docs/_index.md
→ ``/docs/``, content/x.md → ``/x/``. Front matter ``aliases`` are more paths the page
answers (Hugo redirects them).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from drip.content import shortcodes
from drip.content.cache import ContentCache
from drip.content.duration import minutes_field, minutes_for_words
from drip.content.headings import mentions_reading_path
from drip.content.mdtree import parse_document, plain_text
from drip.content.models import Post
from drip.content.source import Meta, Source, read_source
from drip.errors import ContentError, Problem

PILLAR, POST = "pillar", "post"
DEFAULT_LOCALE = "en"  # drip.yaml's default `locale`
# ISO 639-1 codes: Hugo reads `page.fr.md` as the page in French ("translation by filename").
_ISO_639_1 = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz "
    "ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik "
    "io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml "
    "mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd "
    "se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi "
    "vo wa wo xh yi yo za zh zu"
)
LANGUAGES = frozenset(_ISO_639_1.split(" "))


class PostMeta(Meta):
    date: dt.date | None = None
    reading_time: int | None = Field(default=None, ge=1)
    minutes: int | None = Field(default=None, ge=1)

    @field_validator("date", mode="before")
    @classmethod
    def _day(cls, v: Any) -> Any:
        return v.date() if isinstance(v, dt.datetime) else v

    _reading_time = field_validator("reading_time", "minutes", mode="before")(
        classmethod(lambda cls, v: minutes_field(v))
    )


def read_post(path: Path, content_dir: Path, locale: str = DEFAULT_LOCALE) -> Post:
    """Read one post; its URL comes from its place under ``content_dir`` unless front matter says."""
    src = read_source(path)
    return _post(src, content_dir, url=page_url(src, content_dir, locale))


def split_language(stem: str) -> tuple[str, str | None]:
    """``page.fr`` → (``page``, ``fr``): Hugo's language suffix; (stem, None) without one."""
    name, dot, suffix = stem.rpartition(".")
    code = suffix.lower()
    if dot and name and code.split("-")[0] in LANGUAGES and (len(code) == 2 or code[2:3] == "-"):
        return name, code
    return stem, None


def language_of(path: Path, locale: str = DEFAULT_LOCALE) -> str | None:
    """The language a file's name gives that is not the site's (``page.fr.md`` on an English site), or None."""
    found = split_language(path.stem)[1]
    return found if found is not None and found != locale.lower() else None


def page_url(src: Source, content_dir: Path, locale: str = DEFAULT_LOCALE) -> str:
    """The site path of a content file: front matter ``url``, else its place with ``slug`` applied."""
    url = src.meta.get("url")
    if isinstance(url, str) and url.startswith("/"):
        return url
    path = site_path(src.path, content_dir, locale)
    slug = src.meta.get("slug")
    if isinstance(slug, str) and slug.strip("/"):
        path = path.rstrip("/").rsplit("/", 1)[0] + "/" + slug.strip("/") + "/"
    return path


def _post(src: Source, content_dir: Path, cache: ContentCache | None = None, url: str | None = None) -> Post:
    meta, problems = src.model(PostMeta)
    problems = [*src.problems, *problems]
    if problems or meta is None:
        raise ContentError(problems)
    title, description = _plain(meta.title), _plain(meta.description)
    minutes = meta.reading_time or meta.minutes
    body, _ = shortcodes.expand(src.body)
    if title is None or description is None or minutes is None:
        found = _from_body(body, src, cache)
        title = found[0] if title is None else title
        description = found[1] if description is None else description
        minutes = found[2] if minutes is None else minutes
    return Post(
        path=src.path,
        url=page_url(src, content_dir) if url is None else url,
        title=title,
        description=description,
        date=meta.date,
        minutes=minutes,
        body=body.strip(),
        meta_keys=tuple(src.meta),
    )


def _from_body(body: str, src: Source, cache: ContentCache | None) -> tuple[str, str, int]:
    """Title, summary and reading time from the Markdown: the slow part of indexing, so cached."""
    cached = cache.facts(src.digest) if cache is not None and src.digest else None
    if cached is not None:
        return cached[0] or src.path.stem, cached[1], cached[2]
    doc = parse_document(body, src.body_line)
    title = doc.headings[0].text if doc.headings else ""
    description = next((plain_text(b) for b in doc.blocks if b.type == "paragraph"), "")
    minutes = minutes_for_words(doc.word_count())
    if cache is not None and src.digest:
        cache.put_facts(src.digest, (title, description, minutes))
    return title or src.path.stem, description, minutes


def _plain(text: str | None) -> str | None:
    return shortcodes.strip(text) if text is not None else None


def site_path(path: Path, content_dir: Path, locale: str = DEFAULT_LOCALE) -> str:
    """The URL a static site generator gives a content file: content/posts/x.md → /posts/x/.

    A language suffix is not part of it: ``x.fr.md`` is ``x`` in French, under ``/fr/`` unless
    French is the site's ``locale`` (as the site's language folder is read at the root).
    """
    parts = _relative(path, content_dir).split("/") if path != content_dir else []
    language = None
    if parts:
        parts[-1], language = split_language(posixpath.splitext(parts[-1])[0])
    if parts and parts[-1] in ("index", "_index"):
        parts.pop()
    if language is not None and language != locale.lower():
        parts.insert(0, language)
    return "/" + "".join(f"{part}/" for part in parts if part)


@functools.lru_cache(maxsize=65536)  # called for every known path by every link check
def normalise_path(path: str) -> str:
    """One spelling per page: leading and trailing slash, percent-escapes decoded."""
    path = unquote(path)
    if not path.startswith("/"):
        path = "/" + path
    last = path.rsplit("/", 1)[-1]
    if last and "." not in last:
        path += "/"
    return path


@dataclass(frozen=True)
class ContentIndex:
    """What content/ holds: pillar files by slug, posts by site path."""

    root: Path
    pillars: dict[str, Path]  # slug → file
    posts: dict[str, Post]  # url path → Post
    pillar_urls: dict[str, str] = field(default_factory=dict)  # slug → url path, when not /<slug>/
    pages: dict[str, str] = field(default_factory=dict)  # ref key ("docs/intro") → url path
    aliases: frozenset[str] = frozenset()  # more paths pages answer (front matter `aliases`)
    hubs: frozenset[str] = (
        frozenset()
    )  # url paths of the pages that are pillars: a reading path or `type: pillar`
    unpublished: dict[str, str] = field(default_factory=dict)  # ref key → "a draft", "expired"…
    locale: str = DEFAULT_LOCALE  # the site's language: other languages' pages (x.fr.md) are under /<lang>/

    def pillar_url(self, slug: str) -> str:
        return self.pillar_urls.get(slug, f"/{slug}/")

    def known_urls(self) -> set[str]:
        """Every site path a content file provides, pillars and posts, and their aliases."""
        return {self.pillar_url(slug) for slug in self.pillars} | set(self.posts) | set(self.aliases)

    def url_of(self, path: Path) -> str | None:
        """The site path of a published content file."""
        return self.pages.get(ref_key(path, self.root, self.locale))

    def ref(self, target: str, page: Path) -> tuple[str | None, str]:
        """Resolve a Hugo ``ref``/``relref`` target written on ``page``: (site path, why not).

        Like Hugo: ``.md`` optional, ``#anchor`` kept, a path without a leading ``/``
        is looked up next to the page first, then from the content root; a bare name
        matches a page anywhere when only one has it.
        """
        name, _, anchor = target.strip().partition("#")
        suffix = f"#{anchor}" if anchor else ""
        if not name:
            own = self.url_of(page)
            return (own + suffix, "") if own else (None, "this page is not published")
        name = name.removesuffix(".md").strip("/")
        bases = [] if target.startswith("/") else [ref_key(page.parent, self.root)]
        language = language_of(page, self.locale)  # a page in another language links to its language first
        for base in [*bases, ""]:
            key = posixpath.normpath("/".join(part for part in (base, name) if part)).lstrip("/")
            forms = (key, f"{key}/index", f"{key}/_index")
            translated = tuple(f"{form}.{language}" for form in forms) if language else ()
            for candidate in (*translated, *forms):
                if candidate in self.pages:
                    return self.pages[candidate] + suffix, ""
                if candidate in self.unpublished:
                    return None, f"points to a page that is {self.unpublished[candidate]}"
        by_name = [url for key, url in self.pages.items() if _short_name(key) == name]
        if len(by_name) == 1:
            return by_name[0] + suffix, ""
        if by_name:
            return None, "is ambiguous: several pages have that name; write its path"
        return None, "names no page under content/"

    def post_for(self, url: str, base_url: str) -> Post | None:
        """The post a link points to: "/posts/x/", "/posts/x", or an absolute URL on the site."""
        path = site_path_of(url, base_url)
        return self.posts.get(normalise_path(path)) if path is not None else None


def ref_key(path: Path, root: Path, locale: str = DEFAULT_LOCALE) -> str:
    """A content file as ``ref`` names it: its path under content/ without ``.md``, with ``/``.

    The site's own language suffix is dropped (``x.en.md`` is ``x``); another's is kept (``x.fr``).
    """
    text = _relative(path, root)
    if text == ".":
        return ""
    text = text.removesuffix(".md")
    head, _, last = text.rpartition("/")
    name, language = split_language(last)
    if language is not None and language == locale.lower():
        return f"{head}/{name}" if head else name
    return text


def _relative(path: Path, root: Path) -> str:
    """``path`` under ``root`` as a ``/``-separated string; resolving both (slow on a large site)
    only when the plain paths disagree. Plain string work: pathlib costs a tenth of a second per
    thousand files here."""
    text, base = str(path), str(root)
    if text == base:
        return "."
    prefix = base if base.endswith(os.sep) else base + os.sep
    if text.startswith(prefix):
        return text[len(prefix) :].replace(os.sep, "/")
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def _short_name(key: str) -> str:
    parts = key.split("/")
    return parts[-2] if len(parts) > 1 and parts[-1] in ("index", "_index") else parts[-1]


def site_path_of(url: str, base_url: str) -> str | None:
    """The site path of ``url`` without query or fragment; None for another site's URL."""
    parts = urlsplit(url.strip())
    if parts.scheme or parts.netloc:
        base = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != base.netloc.lower():
            return None
        prefix = base.path.rstrip("/")
        if prefix and not (parts.path == prefix or parts.path.startswith(prefix + "/")):
            return None
        return parts.path[len(prefix) :] or "/"
    return parts.path or None


def load_content(
    content_dir: Path,
    *,
    now: dt.datetime | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    locale: str = DEFAULT_LOCALE,
) -> ContentIndex:
    """Index every published pillar and post; every broken file is reported in one ContentError.

    ``now`` decides what is published (future and expired pages are not); None is the current time.
    ``cache_dir`` keeps what each file yields between runs (see :mod:`drip.content.cache`).
    ``progress`` is told of each file read and how many there are (a bar on a large site).
    ``locale`` is the site's language: a page named for another (``x.fr.md``) is a post under ``/fr/``.
    """
    if not content_dir.is_dir():
        raise ContentError(Problem("content folder not found", file=content_dir))
    moment = now or dt.datetime.now(dt.UTC)
    build = _Build(content_dir, ContentCache.load(cache_dir), locale.lower())
    files = list(_markdown_files(content_dir))
    for path in files:
        try:
            build.add(read_source(path, build.cache), moment)
        except ContentError as exc:
            build.problems += exc.problems
        if progress is not None:
            progress(1, len(files))
    build.cache.save()
    if build.problems:
        raise ContentError(build.problems)
    return build.index()


@dataclass
class _Build:
    """The index as files are added to it, with the problems met on the way."""

    root: Path
    cache: ContentCache
    locale: str
    problems: list[Problem] = field(default_factory=list)
    pillars: dict[str, Path] = field(default_factory=dict)
    pillar_urls: dict[str, str] = field(default_factory=dict)
    posts: dict[str, Post] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)
    hubs: set[str] = field(default_factory=set)
    unpublished: dict[str, str] = field(default_factory=dict)

    def add(self, src: Source, now: dt.datetime) -> None:
        key = ref_key(src.path, self.root, self.locale)
        why_not = unpublished_reason(src.meta, now)
        if why_not is not None:
            self.unpublished[key] = why_not
            return
        written = page_url(src, self.root, self.locale)
        url = normalise_path(written)
        if _kind(src, self.root, self.locale) == POST:
            post = _post(src, self.root, self.cache, written)
            self._page(key, url, src)
            if url in self.posts:
                self.problems.append(_duplicate(src.path, url, self.posts[url].path))
            self.posts[url] = post
            return
        _, meta_problems = src.model(Meta)
        if src.problems or meta_problems:
            raise ContentError([*src.problems, *meta_problems])
        self._page(key, url, src)
        slug = pillar_slug(src.path)
        if slug in self.pillars:
            self.problems.append(_duplicate(src.path, f"/{slug}/", self.pillars[slug]))
        self.pillars[slug] = src.path
        if url != f"/{slug}/":
            self.pillar_urls[slug] = url
        if is_hub(src):
            self.hubs.add(url)

    def _page(self, key: str, url: str, src: Source) -> None:
        self.pages[key] = url
        self.aliases.update(normalise_path(a) for a in _aliases(src.meta))

    def index(self) -> ContentIndex:
        return ContentIndex(
            self.root,
            self.pillars,
            self.posts,
            self.pillar_urls,
            self.pages,
            frozenset(self.aliases - set(self.pages.values())),
            frozenset(self.hubs),
            self.unpublished,
            self.locale,
        )


def pillar_slug(path: Path) -> str:
    """A pillar's name in schedules: its file stem, or its folder for ``_index.md`` and ``index.md``;
    without a language suffix (``x.en.md`` is ``x``)."""
    stem = split_language(path.stem)[0]
    return path.parent.name if stem in ("index", "_index") else stem


def is_section_page(path: Path) -> bool:
    """Hugo's section page, ``_index.md``, in any language (``_index.fr.md``)."""
    return path.suffix == ".md" and split_language(path.stem)[0] == "_index"


def is_hub(src: Source) -> bool:
    """A page is a pillar when it says so or has a reading path; an about or legal page is not."""
    return src.meta.get("type") == PILLAR or "reading_path" in src.meta or mentions_reading_path(src.body)


def _aliases(meta: dict[str, Any]) -> list[str]:
    raw = meta.get("aliases")
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return [v for v in values if isinstance(v, str) and v.strip()]


def unpublished_reason(meta: dict[str, Any], now: dt.datetime) -> str | None:
    """Why a page is not published at ``now`` (a draft, in the future, expired), or None."""
    if meta.get("draft") is True:
        return "a draft"
    published = _moment(meta.get("publishDate", meta.get("publishdate", meta.get("date"))))
    if published is not None and published > now:
        return f"not published before {published.date().isoformat()}"
    expires = _moment(meta.get("expiryDate", meta.get("expirydate")))
    if expires is not None and expires <= now:
        return f"expired on {expires.date().isoformat()}"
    return None


def _moment(value: Any) -> dt.datetime | None:
    """A front matter date as an aware datetime (a day starts at midnight UTC); None when absent or unreadable."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
    return None


# content/newsletters/ holds broadcasts (drip.content.broadcasts): emails, not pages of the site.
BROADCASTS_DIR = "newsletters"


def _markdown_files(content_dir: Path) -> Iterator[Path]:
    for path in sorted(content_dir.rglob("*.md")):
        parts = _relative(path, content_dir).split("/")
        if parts[0] == BROADCASTS_DIR and len(parts) > 1:
            continue
        if not any(part.startswith(("_", ".")) for part in parts[:-1]) and (
            is_section_page(path) or not parts[-1].startswith(("_", "."))
        ):
            yield path


def _kind(src: Source, content_dir: Path, locale: str = DEFAULT_LOCALE) -> str:
    """A page in another language than the site's is a post: a course is in the site's language."""
    if language_of(src.path, locale) is not None:
        return POST
    declared = src.meta.get("type")
    if declared in (PILLAR, POST):
        return str(declared)
    if is_section_page(src.path):
        return PILLAR if src.path.parent != content_dir and is_hub(src) else POST
    return PILLAR if src.path.parent == content_dir else POST


def _duplicate(path: Path, url: str, first: Path) -> Problem:
    return Problem(f"{url} is already provided by {first}", file=path, line=1, column=1)
