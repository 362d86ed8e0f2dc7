"""What reading each content file yields (front matter with positions, title, summary, reading time), kept between runs.

Parsing front matter and Markdown is most of the cost of indexing a large site. The
cache is a JSON file in ``.drip_cache/`` at the site root, the way ruff and pytest keep
theirs: it holds a ``.gitignore`` of ``*`` so git never sees it. Entries are keyed by
the SHA-256 of a file's text, so an edit misses; the file is named for a fingerprint
of drip's version, of the parsers' versions and of the code that reads content, so
an upgrade or a change of the readers misses too. JSON, never pickle: an entry is
data, checked value by value when read; one that does not decode (a corrupt file, an
older format) is a miss and is rebuilt, and a cache that cannot be read or written is
ignored. Only entries used by the last run are written back, so it never grows stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from drip import __version__

CACHE_DIR = ".drip_cache"
FORMAT = 2  # the shape of an entry; bump it when the shape changes

Facts = tuple[str, str, int]  # title, summary and reading time found in a body
# What a file's front matter yields: values, positions of nodes and keys, line offset, where the body starts.
Split = tuple[dict[str, Any], list[list[Any]], list[list[Any]], int, int, int]


class Uncacheable(ValueError):
    """A value JSON cannot hold faithfully (a YAML set, binary, a non-text key): that file is not cached."""


@dataclass
class ContentCache:
    """Facts about content files, by text hash; ``folder`` None keeps them in memory only."""

    folder: Path | None = None
    entries: dict[str, Any] = field(default_factory=dict)
    used: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, folder: Path | None) -> ContentCache:
        found = cls(folder)
        if folder is not None:
            try:
                data = json.loads(found.file().read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                return found
            if (
                isinstance(data, dict)
                and data.get("format") == FORMAT
                and isinstance(data.get("entries"), dict)
            ):
                found.entries = data["entries"]
        return found

    def file(self) -> Path:
        assert self.folder is not None
        return self.folder / f"content-{fingerprint()}.json"

    def _entry(self, digest: str) -> dict[str, Any] | None:
        if digest in self.used:
            return self.used[digest]
        entry = self.entries.get(digest)
        if not isinstance(entry, dict):
            return None
        self.used[digest] = entry
        return entry

    def _slot(self, digest: str) -> dict[str, Any]:
        entry = self._entry(digest)
        if entry is None:
            entry = self.used[digest] = {}
        self.changed = True
        return entry

    def split(self, digest: str) -> Split | None:
        """The front matter of the file whose text hashes to ``digest``, or None (a miss, or a bad entry)."""
        entry = self._entry(digest)
        try:
            raw = entry["s"] if entry is not None else None
            if raw is None:
                return None
            meta, nodes, keys, offset, body_start, body_line = raw
            decoded = decode(meta)
            if not isinstance(decoded, dict) or not all(_is_int(v) for v in (offset, body_start, body_line)):
                raise ValueError("bad entry")
            return decoded, _positions(nodes), _positions(keys), offset, body_start, body_line
        except (KeyError, TypeError, ValueError, RecursionError):
            return None

    def put_split(self, digest: str, split: Split) -> None:
        meta, nodes, keys, offset, body_start, body_line = split
        try:
            self._slot(digest)["s"] = [encode(meta), nodes, keys, offset, body_start, body_line]
        except Uncacheable:
            self.used.pop(digest, None)

    def facts(self, digest: str) -> Facts | None:
        entry = self._entry(digest)
        found = entry.get("f") if entry is not None else None
        if isinstance(found, list) and len(found) == 3:
            title, description, minutes = found
            if isinstance(title, str) and isinstance(description, str) and _is_int(minutes):
                return title, description, minutes
        return None

    def put_facts(self, digest: str, facts: Facts) -> None:
        self._slot(digest)["f"] = list(facts)

    def save(self) -> None:
        """Write the entries this run used; atomically, so a concurrent run never reads half a file."""
        if self.folder is None or not (self.changed or len(self.used) != len(self.entries)):
            return
        target = self.file()
        temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        try:
            self.folder.mkdir(exist_ok=True)
            (self.folder / ".gitignore").write_text("# Created by drip: a cache, never committed.\n*\n")
            for stale in self.folder.glob("content-*.json"):
                if stale != target:
                    stale.unlink(missing_ok=True)
            payload = {"format": FORMAT, "entries": self.used}
            temporary.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
            os.replace(temporary, target)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def encode(value: Any) -> Any:
    """A front matter value as JSON that :func:`decode` turns back into an equal value.

    Every mapping becomes ``{"m": …}`` and every date ``{"d"|"t"|"h": iso}``, so no value a
    site writes can pass for a tag.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Uncacheable("not a finite number")
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise Uncacheable("a key that is not text")
        return {"m": {k: encode(v) for k, v in value.items()}}
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, dt.time):
        return {"h": value.isoformat()}
    raise Uncacheable(type(value).__name__)


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`; ValueError or TypeError for anything it never writes."""
    if value is None or isinstance(value, bool | str | int | float):
        return value
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "m" and isinstance(inner, dict):
            return {str(k): decode(v) for k, v in inner.items()}
        if tag == "t" and isinstance(inner, str):
            return dt.datetime.fromisoformat(inner)
        if tag == "d" and isinstance(inner, str):
            return dt.date.fromisoformat(inner)
        if tag == "h" and isinstance(inner, str):
            return dt.time.fromisoformat(inner)
    raise ValueError("not a value this cache writes")


def positions_of(table: dict[tuple[str | int, ...], tuple[int, int]]) -> list[list[Any]]:
    """A Positions table (key path → line, column) as JSON rows."""
    return [[list(path), line, column] for path, (line, column) in table.items()]


def _positions(rows: Any) -> list[list[Any]]:
    if not isinstance(rows, list):
        raise TypeError("positions must be a list")
    for row in rows:
        path, line, column = row
        if not (isinstance(path, list) and all(isinstance(p, str) or _is_int(p) for p in path)):
            raise TypeError("bad key path")
        if not (_is_int(line) and _is_int(column)):
            raise TypeError("bad position")
    return rows


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@cache
def fingerprint() -> str:
    """drip's version, the parsers' and the text of the modules that turn a file into what is cached."""
    import markdown_it
    import yaml

    from drip.content import cache as this
    from drip.content import duration, mdtree, posts, shortcodes, source
    from drip.inputs import textfile, yamlfile

    digest = hashlib.sha256(f"{__version__} {FORMAT} {yaml.__version__} {markdown_it.__version__}".encode())
    for module in (this, duration, mdtree, posts, shortcodes, source, textfile, yamlfile):
        try:
            digest.update(Path(str(module.__file__)).read_bytes())
        except (OSError, TypeError):
            digest.update(module.__name__.encode())
    return f"{__version__}-{digest.hexdigest()[:12]}"
