"""Shared fixtures. Append new fixtures; do not change others' ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from drip.config import Site, load_site
from drip.course.compile import compile_course
from drip.course.models import Course

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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


@pytest.fixture(scope="session")
def example_course(example_site: Site) -> Course:
    """The example course compiled from schedules/ and content/."""
    return compile_course(example_site, EXAMPLE_COURSE)


# Debian's Chromium, never a downloaded one; the flags keep it offline and quiet.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


# One test at a time: while sync Playwright runs, its event loop counts as running in this thread,
# so a browser kept for the whole session would break every later test that calls asyncio.run().
@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, launched the one way every browser test uses; skips where it is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


# The store fixtures, `db_url`, `engine` and `store`: SQLite and PostgreSQL (skipped unless
# DRIP_TEST_POSTGRES_URL is set), defined in dbfixtures.py.
from dbfixtures import db_url_fixture, engine_fixture, store_fixture  # noqa: E402, F401
