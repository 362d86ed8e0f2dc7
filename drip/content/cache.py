"""What reading a post's Markdown yields (title, summary, reading time), kept between runs.

Parsing Markdown is most of the cost of indexing a large site. The cache is a JSON
file in ``.drip_cache/`` at the site root, the way ruff and pytest keep theirs: it
holds a ``.gitignore`` of ``*`` so git never sees it. Entries are keyed by the SHA-256
of the body and the file is named for drip's version, so an edit or an upgrade
simply misses; a cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from drip import __version__

CACHE_DIR = ".drip_cache"


@dataclass
class BodyCache:
    """Derived facts of Markdown bodies, by content hash; ``folder`` None keeps them in memory only."""

    folder: Path | None = None
    entries: dict[str, list[str | int]] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, folder: Path | None) -> BodyCache:
        cache = cls(folder)
        if folder is not None:
            try:
                data = json.loads(cache.file().read_text(encoding="utf-8"))
                cache.entries = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                pass
        return cache

    def file(self) -> Path:
        assert self.folder is not None
        return self.folder / f"content-{__version__}.json"

    def get(self, body: str) -> tuple[str, str, int] | None:
        found = self.entries.get(_key(body))
        if isinstance(found, list) and len(found) == 3:
            title, description, minutes = found
            if isinstance(title, str) and isinstance(description, str) and isinstance(minutes, int):
                return title, description, minutes
        return None

    def put(self, body: str, title: str, description: str, minutes: int) -> None:
        self.entries[_key(body)] = [title, description, minutes]
        self.changed = True

    def save(self) -> None:
        if self.folder is None or not self.changed:
            return
        try:
            self.folder.mkdir(exist_ok=True)
            (self.folder / ".gitignore").write_text("# Created by drip: a cache, never committed.\n*\n")
            self.file().write_text(json.dumps(self.entries, ensure_ascii=False), encoding="utf-8")
        except OSError:
            pass


def _key(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
