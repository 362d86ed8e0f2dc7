"""The one family of store fixtures: an up-to-date store on SQLite (a tmp file) and on PostgreSQL.

``db_url`` names an empty database of each kind, ``engine`` migrates it, ``store``
pairs the two; conftest.py registers all three. The PostgreSQL case runs in a
fresh schema per test (:func:`pg_schema`) and is skipped when DRIP_TEST_POSTGRES_URL
is not set. :func:`sqlite_store` and :func:`pg_schema` are for tests that build
their own stores.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from drip.store.db import connect, upgrade

PG_URL_ENV = "DRIP_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class Store:
    url: str
    engine: sa.Engine

    @property
    def kind(self) -> str:
        return self.engine.dialect.name


def sqlite_store(tmp_path: Path) -> Store:
    """A migrated SQLite store in ``tmp_path``."""
    url = f"sqlite:///{tmp_path / 'drip.db'}"
    engine = connect(url)
    upgrade(engine)
    return Store(url, engine)


@dataclass(frozen=True)
class PgSchema:
    url: str  # points at the schema through search_path
    admin_url: str
    schema: str


def pg_schema() -> Generator[PgSchema]:
    """A schema of its own on the test server, dropped afterwards; skip when none is named."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"{PG_URL_ENV} is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    schema = f"t_{secrets.token_hex(6)}"
    admin = connect(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        yield PgSchema(url, base, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


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


@pytest.fixture(name="store")
def store_fixture(db_url: str, engine: sa.Engine) -> Store:
    """The migrated store of each kind with its URL, for tests that start processes on it."""
    return Store(db_url, engine)


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
