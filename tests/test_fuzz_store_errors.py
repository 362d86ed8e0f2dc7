"""A store that cannot be written or reached: a located error naming the database, exit 1, no traceback,
and no subscriber's address or name anywhere in the output or the logs.

The SQLite file and its folder are made read-only (``chmod -w``). Root ignores file modes, so
there the connection is also opened with ``PRAGMA query_only``, which fails writes the same way
("attempt to write a readonly database"). PostgreSQL: a server that refuses the connection, and
a database that does not exist.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from web_support import COURSE, REPO_ROOT

from drip.cli import authoring, cli, delivery, demo, subscribers, web  # noqa: F401  (modules register their commands)
from drip.store import db

PEOPLE = {"ada@example.org": "Ada Lovelace", "grace@example.org": "Grace Hopper"}
KEY = "test-secret-key-0123456789abcdef"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(REPO_ROOT / "drip.yaml", root / "drip.yaml")
    for folder in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIP_DATABASE_URL", raising=False)
    monkeypatch.setenv("DRIP_SECRET_KEY", KEY)
    return root


def drip(site: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--site", str(site), *args])


def assert_clean_failure(result: Result, caplog: pytest.LogCaptureFixture, *expected: str) -> None:
    """Exit 1, a message naming the database and saying what is wrong; nobody's data, no traceback."""
    output = result.output
    logs = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert result.exit_code == 1, (output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output and "Traceback" not in logs
    for text in expected:
        assert text in output, output
    for address, name in PEOPLE.items():
        for secret in (address, name, address.split("@")[0]):
            assert secret not in output, output
            assert secret not in logs, logs


@pytest.fixture
def read_only(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The site with two subscribers, then its database file and folder made read-only."""
    for address, name in PEOPLE.items():
        result = drip(site, "subscribe", address, "--course", COURSE, "--name", name)
        assert result.exit_code == 0, result.output
    database = site / "drip.db"
    modes = {path: path.stat().st_mode for path in (site, *site.glob("drip.db*"))}
    for path, mode in modes.items():
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if os.geteuid() == 0:  # root writes whatever the modes say: make the connection itself read-only
        original = db._sqlite_on_connect

        def query_only(connection: sqlite3.Connection, record: Any) -> None:
            original(connection, record)
            connection.execute("PRAGMA query_only=ON")

        monkeypatch.setattr(db, "_sqlite_on_connect", query_only)
    yield database
    for path, mode in modes.items():
        path.chmod(mode)


COMMANDS = [
    ("subscribe", "newcomer@example.org", "--course", COURSE, "--name", "Newcomer"),
    ("subscribe", "ada@example.org", "--course", COURSE, "--name", "Ada Lovelace"),
    ("unsubscribe", "ada@example.org"),
    ("run", "--once", "--now", "2030-01-01T09:00"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_read_only_sqlite_file_is_a_located_error(
    site: Path, read_only: Path, args: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = drip(site, *args)
    assert_clean_failure(result, caplog, "the database is read-only", "drip.db")
    PEOPLE["newcomer@example.org"] = "Newcomer"
    try:
        assert_clean_failure(result, caplog)
    finally:
        del PEOPLE["newcomer@example.org"]


def test_import_into_a_read_only_sqlite_file_is_a_located_error(
    site: Path, read_only: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    people = tmp_path / "people.csv"
    people.write_text(
        "email,name\nada@example.org,Ada Lovelace\nlinus@example.org,Linus T\n", encoding="utf-8"
    )
    PEOPLE["linus@example.org"] = "Linus T"
    try:
        result = drip(site, "import", str(people), "--course", COURSE)
        assert_clean_failure(result, caplog, "the database is read-only", "drip.db")
    finally:
        del PEOPLE["linus@example.org"]


POSTGRES = [
    ("postgresql://drip:hunter2@127.0.0.1:1/drip", "Connection refused"),  # nothing listens there
]
if os.environ.get("DRIP_TEST_POSTGRES_URL"):
    from sqlalchemy import make_url

    _gone = make_url(os.environ["DRIP_TEST_POSTGRES_URL"]).set(database="drip_no_such_database")
    POSTGRES.append((_gone.render_as_string(hide_password=False), "drip_no_such_database"))


@pytest.mark.parametrize(("url", "expected"), POSTGRES, ids=["refused", "gone"][: len(POSTGRES)])
@pytest.mark.parametrize("args", [*COMMANDS, ("import", "{csv}", "--course", COURSE)], ids=lambda a: a[0])
def test_a_postgresql_server_that_refuses_or_a_database_gone_is_a_located_error(
    site: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    url: str,
    expected: str,
    args: tuple[str, ...],
) -> None:
    caplog.set_level(logging.DEBUG)
    people = tmp_path / "people.csv"
    people.write_text("email,name\nada@example.org,Ada Lovelace\n", encoding="utf-8")
    monkeypatch.setenv("DRIP_DATABASE_URL", url)
    result = drip(site, *(str(people) if a == "{csv}" else a for a in args))
    assert_clean_failure(result, caplog, "database", expected)
    assert "hunter2" not in result.output
