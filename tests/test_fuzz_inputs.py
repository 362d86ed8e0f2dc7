"""A thousand malformed files of each kind a user writes: each one a located error, never a traceback.

drip.yaml, schedules, front matter and CSV imports are read in-process from the example site's
real files, broken by :mod:`fuzz_support`. "A clear error" is an :class:`InputError` whose problems
name the file (and the line, for syntax and encoding errors); any other exception fails the test.
A CSV import that fails leaves every table of the store as it was.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from fuzz_support import FUZZ, Tally, assert_located, assert_problem, digest, mutated_bytes, run
from hypothesis import given
from hypothesis import strategies as st
from web_support import COURSE, REPO_ROOT, SECRET, copy_site

from drip.config import CONFIG_FILE, Site, load_site
from drip.content.pillar import read_pillar
from drip.content.source import read_source
from drip.course.compile import compile_course
from drip.course.schedule import read_schedule
from drip.errors import ConfigError, ContentError, InputError
from drip.store.db import open_store
from drip.store.importer import import_csv

NOW = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
CSV_BASE = (REPO_ROOT / "tests" / "fixtures" / "csv" / "valid.csv").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return copy_site(tmp_path_factory.mktemp("fuzz-site"))


def test_drip_yaml(tmp_path: Path) -> None:
    base = (REPO_ROOT / CONFIG_FILE).read_text(encoding="utf-8")
    path = tmp_path / CONFIG_FILE
    tally = Tally("drip.yaml")

    @FUZZ
    @given(mutated_bytes(base))
    def one(data: bytes) -> None:
        path.write_bytes(data)
        try:
            load_site(tmp_path)
        except ConfigError as exc:
            assert_located(exc, path)
            tally("errors")
            return
        tally("accepted")

    run(tally, one)


def test_schedules(site: Site, tmp_path: Path) -> None:
    base = (REPO_ROOT / "schedules" / f"{COURSE}.yaml").read_text(encoding="utf-8")
    path = tmp_path / f"{COURSE}.yaml"
    tally = Tally("schedules")

    @FUZZ
    @given(mutated_bytes(base))
    def one(data: bytes) -> None:
        path.write_bytes(data)
        schedule, problems = read_schedule(path, site)
        for problem in problems:
            assert_problem(problem, path)
        assert schedule is not None or problems
        tally("errors" if problems else "accepted")

    run(tally, one)


@pytest.mark.parametrize(
    "relative", ["content/le-role-du-cto.md", "content/posts/premiers-jours-cto-reussir-prise-de-poste.md"]
)
def test_front_matter(site: Site, tmp_path: Path, relative: str) -> None:
    """Pillar and post files: front matter and body broken alike; read_source and read_pillar."""
    base = (REPO_ROOT / relative).read_text(encoding="utf-8")
    path = tmp_path / Path(relative).name
    tally = Tally(f"front matter ({Path(relative).name})")
    pillar = "posts" not in relative

    @FUZZ
    @given(mutated_bytes(base, structured=False))
    def one(data: bytes) -> None:
        path.write_bytes(data)
        source = read_source(path)
        for problem in source.problems:
            assert_problem(problem, path)
        if pillar:
            try:
                read_pillar(path)
            except ContentError as exc:
                assert_located(exc, path)
        tally("errors" if source.problems else "read")

    run(tally, one)


def test_csv_rows(site: Site, tmp_path: Path) -> None:
    """Import into a SQLite store: a refused file changes nothing; an accepted one is rolled back after."""
    course = compile_course(site, COURSE)
    engine = open_store(f"sqlite:///{tmp_path / 'fuzz.db'}")
    path = tmp_path / "people.csv"
    before = digest(engine)
    tally = Tally("CSV rows")

    @FUZZ
    @given(mutated_bytes(CSV_BASE, structured=False), st.booleans())
    def one(data: bytes, skip_invalid: bool) -> None:
        path.write_bytes(data)
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                import_csv(conn, path, course, skip_invalid=skip_invalid, now=NOW, secret=lambda: SECRET)
            except InputError as exc:
                transaction.commit()  # whatever the failed import wrote would now be kept
                assert_located(exc, path)
                assert digest(engine) == before
                tally("errors")
                return
            transaction.rollback()
        tally("imported")

    try:
        run(tally, one)
    finally:
        engine.dispose()
        shutil.rmtree(tmp_path / "unused", ignore_errors=True)
