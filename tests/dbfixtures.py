"""The ``engine`` fixture: an up-to-date store on SQLite (a tmp file) and on PostgreSQL.

The PostgreSQL case runs in a fresh schema per test (``delivery_fixtures.pg_schema``)
and is skipped when DRIP_TEST_POSTGRES_URL is not set. Import ``engine_fixture``
(and ``db_url_fixture``) into a test module or conftest to use them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_fixtures import pg_schema

from drip.store.db import connect, upgrade


@pytest.fixture(name="db_url", params=["sqlite", "postgresql"])
def db_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL naming an empty database of each kind (no schema yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'drip.db'}"
        return
    for pg in pg_schema():  # drops the schema when the loop resumes
        yield pg.url


@pytest.fixture(name="engine")
def engine_fixture(db_url: str) -> Iterator[sa.Engine]:
    """An engine on a migrated store of each kind, disposed of afterwards."""
    engine = connect(db_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


REPO = Path(__file__).resolve().parents[1]
COURSE = "cto"


def course_site(root: Path) -> Path:
    """The example site (drip.yaml, content/) copied under ``root``, with one course, ``cto``."""
    site = root / "site"
    site.mkdir()
    shutil.copy(REPO / "drip.yaml", site / "drip.yaml")
    shutil.copytree(REPO / "content", site / "content")
    (site / "schedules").mkdir()
    (site / "schedules" / f"{COURSE}.yaml").write_text("pillar: le-role-du-cto\n", encoding="utf-8")
    return site
