"""The heading names drip looks for in a pillar, in French and English, compared folded."""

from __future__ import annotations

import re

from drip.content.mdtree import fold

READING_PATH_HEADINGS = ("Par où commencer", "Commencer ici", "Start here", "Where to start")
INTRO_HEADINGS = ("À qui s'adresse cette page", "Pour qui", "Who this page is for", "Who is this page for")
ARTICLES_HEADINGS = ("Articles", "Tous les articles", "All articles")
DEEPER_HEADINGS = ("Pour approfondir", "Aller plus loin", "Go deeper", "Going further", "Further reading")
OTHER_PILLARS_HEADINGS = (
    "Explorer les autres piliers",
    "Autres piliers",
    "Les autres piliers",
    "Other pillars",
    "Explore other pillars",
    "Explore",
)

_ATX = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_READING_PATH = frozenset(fold(name) for name in READING_PATH_HEADINGS)


def mentions_reading_path(body: str) -> bool:
    """Whether a body has a "Start here" heading: a quick scan, without parsing the Markdown."""
    return any(fold(match[1]) in _READING_PATH for match in _ATX.finditer(body))
