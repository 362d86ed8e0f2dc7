"""``drip check`` reports newsletter mistakes with the rest, located, all at once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from newsletter_support import make_site, write

from drip.config import Site
from drip.preview.checks import check_site

BROADCAST = """\
---
subject: "Une annonce"
list: {list}
send_at: 2026-09-07 09:00
---

Bonjour, lis [ceci](posts/vision/).

![Un schéma](/img/schema.png)
"""


def test_the_example_site_checks_clean(example_site: Site) -> None:
    assert check_site(example_site).ok


def test_broadcast_and_digest_mistakes_are_reported_together(tmp_path: Path) -> None:
    digest = 'kind: digest\nlist: lettre\ncron: "0 9 * * mon"\nposts: {pillars: [le-role-du-ct], sections: [equipes]}\n'
    site = make_site(tmp_path, digest=digest)
    write(tmp_path, "content/newsletters/annonce.md", BROADCAST.format(list="lettre"))
    write(tmp_path, "content/newsletters/autre.md", BROADCAST.format(list="letre"))
    found = [str(p) for p in check_site(site, now=dt.datetime(2026, 12, 20, tzinfo=dt.UTC)).errors]
    annonce = tmp_path / "content" / "newsletters" / "annonce.md"
    assert (
        f"{annonce}:7:19: link 'posts/vision/' is relative to the page it is written on and cannot resolve in an email: start it with / or https:// (did you mean '/posts/vision/'?)"
        in found
    )
    assert any(p.startswith(f"{annonce}:9:1: image /img/schema.png needs an absolute address") for p in found)
    assert any(p.startswith(f"{annonce}:9:1: image /img/schema.png has no width") for p in found)
    assert (
        f"{tmp_path / 'content' / 'newsletters' / 'autre.md'}:3:7: list: no list 'letre' in schedules/ (lists: lettre) (did you mean 'lettre'?)"
        in found
    )
    hebdo = tmp_path / "schedules" / "hebdo.yaml"
    assert (
        f"{hebdo}: posts.pillars: no pillar page 'le-role-du-ct' in content/ (did you mean 'le-role-du-cto'?)"
        in found
    )
    assert f"{hebdo}: posts.sections: no posts in content/equipes/ (did you mean 'equipe'?)" in found


def test_a_broadcast_grace_that_is_not_a_duration_is_reported_at_its_line(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    bad = BROADCAST.format(list="lettre").replace("send_at:", "grace: 6 heures\nsend_at:")
    path = write(tmp_path, "content/newsletters/annonce.md", bad)
    before = path.read_text(encoding="utf-8")
    found = [str(p) for p in check_site(site, now=dt.datetime(2026, 12, 20, tzinfo=dt.UTC)).errors]
    assert any(p.startswith(f"{path}:4:8: ") and "90m, 6h or 2d" in p for p in found), found
    assert path.read_text(encoding="utf-8") == before
