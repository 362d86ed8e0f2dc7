"""Shared fixtures. Append new fixtures; do not change others' ones."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from drip.config import Site, load_site
from drip.models import Article, Course, Sender, SendWindow, Step

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_COURSE = "le-role-du-cto"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/** from the current renderer instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def example_site() -> Site:
    """The repository root, which is itself an example drip site."""
    return load_site(REPO_ROOT)


def _hand_built_course(site: Site) -> Course:
    """The example course assembled by hand from the real pillar (used until the compiler exists)."""
    from drip.content.pillar import read_pillar

    pillar = read_pillar(site.content_dir / f"{EXAMPLE_COURSE}.md")
    base = site.config.site.base_url
    steps = [
        Step(
            key="welcome",
            kind="welcome",
            number=1,
            day=0,
            subject="Bienvenue dans « Devenir CTO » !",
            preheader="Ce qui t'attend dans les prochains jours.",
            immediate=True,
        )
    ]
    for i, item in enumerate(pillar.reading_path, start=1):
        steps.append(
            Step(
                key=f"article:{item.url}",
                kind="article",
                number=len(steps) + 1,
                day=2 * i,
                subject=f"Jour {2 * i} — {item.title}",
                preheader=f"{item.label} · {item.minutes} min de lecture",
                article=Article(
                    url=base + item.url,
                    title=item.title,
                    description=None,
                    label=item.label,
                    minutes=item.minutes,
                    date=None,
                ),
            )
        )
    steps.append(
        Step(
            key="deeper",
            kind="closing",
            number=len(steps) + 1,
            day=2 * len(pillar.reading_path) + 2,
            subject="Pour aller plus loin",
            preheader="Un livre et d'autres sujets à explorer.",
        )
    )
    from drip.models import Link

    return Course(
        slug=EXAMPLE_COURSE,
        title="Devenir CTO",
        locale="fr",
        timezone="Europe/Paris",
        window=SendWindow(time=dt.time(8, 30), weekdays=frozenset(range(5))),
        sender=Sender(name=site.config.sender.name, email=site.config.sender.email),
        pillar=pillar,
        steps=tuple(steps),
        deeper=tuple(Link(base + d.url, d.text, d.description) for d in pillar.deeper),
        other_pillars=tuple(Link(base + o.url, o.text, o.description) for o in pillar.other_pillars),
    )


@pytest.fixture(scope="session")
def example_course(example_site: Site) -> Course:
    """The example course compiled from schedules/ and content/ (hand-built until the compiler lands)."""
    try:
        from drip.course import compile_course
    except ImportError:
        return _hand_built_course(example_site)
    return compile_course(example_site, EXAMPLE_COURSE)
