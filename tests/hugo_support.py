"""The Hugo-style fixture site (tests/fixtures/hugo_site), shared by the tests that read real-site conventions."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

HUGO_SITE = Path(__file__).parent / "fixtures" / "hugo_site"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # before the fixture's future-dated and after its expired pages


def copy_hugo_site(tmp_path: Path) -> Path:
    """A copy of the fixture site to edit (or to let drip write its cache into), at ``tmp_path/site``."""
    root = tmp_path / "site"
    shutil.copytree(HUGO_SITE, root)
    return root
