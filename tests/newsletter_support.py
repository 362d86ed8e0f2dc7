"""A small site with posts, a list and a digest, for the newsletter tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from drip.config import Site, load_site

DRIP_YAML = """\
site:
  name: "Le métier de CTO"
  base_url: "https://cto.example.org"
  locale: fr
  timezone: Europe/Paris
sender:
  name: "Le métier de CTO"
  email: "lettre@cto.example.org"
postal_address: "12 rue des Lilas, 69003 Lyon"
"""

PILLAR = """\
---
title: "Le rôle du CTO"
description: "Tout sur le rôle."
---

Une page pour comprendre le rôle.

## Par où commencer

- [Premiers jours](/posts/premiers-jours/) — Fondamental
"""

LIST = """\
kind: list
title: "La lettre du CTO"
archive: true
hold_during_course: wait
no_repeat_days: 30
"""

DIGEST = """\
kind: digest
list: lettre
cron: "0 9 * * mon"
posts: all
max_posts: 5
"""


def post(title: str, date: str | None, *, extra: str = "", body: str = "Un paragraphe.") -> str:
    dated = f"date: {date}\n" if date else ""
    return f'---\ntitle: "{title}"\ndescription: "Résumé de {title}."\n{dated}{extra}---\n\n{body}\n'


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def make_site(root: Path, *, digest: str = DIGEST, lists: str = LIST) -> Site:
    """Three dated posts (one future), one undated, a pillar, the list ``lettre`` and the digest ``hebdo``."""
    write(root, "drip.yaml", DRIP_YAML)
    write(root, "content/le-role-du-cto.md", PILLAR)
    write(
        root,
        "content/posts/premiers-jours.md",
        post("Premiers jours", "2026-11-30", extra="tags: [management]\nminutes: 7\n"),
    )
    write(
        root,
        "content/posts/vision.md",
        post(
            "Vision",
            "2026-12-02",
            extra='image: "https://cto.example.org/img/vision.png"\nimage_alt: "Une boussole"\n',
        ),
    )
    write(root, "content/equipe/recrutement.md", post("Recruter", "2026-12-03", extra="tags: [Equipe]\n"))
    write(root, "content/posts/futur.md", post("Plus tard", "2027-01-10"))
    write(root, "content/posts/sans-date.md", post("Sans date", None))
    write(root, "schedules/lettre.yaml", lists)
    write(root, "schedules/hebdo.yaml", digest)
    return load_site(root)
