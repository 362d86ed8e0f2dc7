"""`drip --help` starts without loading the database, templates or web server code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the example site

HEAVY = ("sqlalchemy", "alembic", "psycopg", "jinja2", "mjml", "starlette", "uvicorn")


def _imported_by(*args: str) -> set[str]:
    """Top-level packages a fresh interpreter imports to run ``drip args``."""
    script = (
        "import sys\n"
        "from drip.cli import main\n"
        f"sys.argv = ['drip', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    return set(done.stderr.split())


def test_help_imports_no_database_template_or_web_code() -> None:
    assert _imported_by("--help") & set(HEAVY) == set()


def test_a_command_help_imports_no_database_code_either() -> None:
    assert _imported_by("status", "--help") & set(HEAVY) == set()


def test_check_and_preview_open_no_database() -> None:
    for args in (("check",), ("preview", "le-role-du-cto")):
        assert _imported_by(*args) & {"sqlalchemy", "alembic", "psycopg"} == set(), args


def test_the_choices_spelt_out_for_a_fast_start_match_their_source() -> None:
    from drip.cli.authoring import FORMATS
    from drip.cli.subscribers import STATUSES
    from drip.preview import emails
    from drip.store import schema

    assert tuple(schema.SubscriberStatus) == STATUSES
    assert emails.FORMATS == FORMATS


def test_the_preview_app_starts_without_what_only_its_pages_need() -> None:
    """create_app loads neither the store, the course compiler nor email rendering: its pages do."""
    script = (
        "import sys\n"
        "from drip.config import load_site\n"
        "from drip.preview.server import create_app\n"
        "create_app(load_site('.'))\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded = set(done.stderr.split())
    assert loaded & {"sqlalchemy", "drip.course.compile", "drip.render.steps", "drip.store.db"} == set()
