"""Lists and digests in schedules/: loaded with defaults, every mistake located, courses untouched."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from newsletter_support import DIGEST, LIST, make_site, write

from drip.config import load_site
from drip.course.compile import course_slugs, load_courses
from drip.course.kinds import course_files, schedule_kind
from drip.course.models import SendWindow
from drip.course.newsletter import load_newsletters, read_newsletters
from drip.errors import ScheduleError

REPO = Path(__file__).resolve().parent.parent


def messages(root: Path) -> list[str]:
    _, problems = read_newsletters(load_site(root))
    return [str(p) for p in problems]


def test_a_list_and_a_digest_load_with_site_defaults(tmp_path: Path) -> None:
    found = load_newsletters(make_site(tmp_path))
    lettre = found.lists["lettre"]
    assert (lettre.title, lettre.locale, lettre.timezone) == ("La lettre du CTO", "fr", "Europe/Paris")
    assert (lettre.archive, lettre.hold_during_course, lettre.no_repeat_days) == (True, "wait", 30)
    assert lettre.sender.email == "lettre@cto.example.org"
    hebdo = found.digests["hebdo"]
    assert (hebdo.list, hebdo.title, hebdo.cron, hebdo.timezone) == (
        "lettre",
        "La lettre du CTO",
        "0 9 * * mon",
        "Europe/Paris",
    )
    assert (hebdo.max_posts, hebdo.min_posts, hebdo.since, hebdo.window) == (5, 1, None, None)
    assert hebdo.posts.everything


def test_send_window_posts_filter_and_since(tmp_path: Path) -> None:
    digest = """\
        kind: digest
        list: lettre
        timezone: America/New_York
        send_window: {time: "07:45", days: [tue, fri]}
        posts: {pillars: le-role-du-cto, sections: [equipe], tags: [management]}
        min_posts: 2
        since: 2026-09-01
        """
    hebdo = load_newsletters(make_site(tmp_path, digest=digest)).digests["hebdo"]
    assert hebdo.window == SendWindow(dt.time(7, 45), frozenset({1, 4}))
    assert (hebdo.posts.pillars, hebdo.posts.sections, hebdo.posts.tags) == (
        ("le-role-du-cto",),
        ("equipe",),
        ("management",),
    )
    assert hebdo.since == dt.datetime(2026, 9, 1, tzinfo=ZoneInfo("America/New_York"))


def test_course_schedules_ignore_lists_and_digests(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    write(tmp_path, "schedules/le-role-du-cto.yaml", "kind: course\npillar: le-role-du-cto\nclosing: false\n")
    assert course_slugs(site) == ["le-role-du-cto"]
    assert list(load_courses(site)) == ["le-role-du-cto"]
    assert list(course_files(site.schedules_dir)) == ["le-role-du-cto"]
    assert [schedule_kind(p) for p in sorted(site.schedules_dir.iterdir())] == ["digest", "course", "list"]


def test_a_misspelt_kind_is_a_course_error_with_a_hint(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    write(tmp_path, "schedules/oops.yaml", "kind: digets\n")
    with pytest.raises(ScheduleError) as info:
        load_courses(site)
    assert any(
        "kind: unknown kind 'digets'" in str(p) and "did you mean 'digest'?" in str(p)
        for p in info.value.problems
    )


def test_every_digest_mistake_located_at_once(tmp_path: Path) -> None:
    digest = """\
        kind: digest
        list: letre
        cron: "61 9 * * mon"
        max_post: 3
        posts: {tag: [x]}
        """
    make_site(tmp_path, digest=digest)
    found = messages(tmp_path)
    path = tmp_path / "schedules" / "hebdo.yaml"
    assert f"{path}:3:7: cron: not a valid cron expression" in found[0]
    assert "the last value (61) is higher than the maximum value (59)" in found[0]
    assert f"{path}:4:1: max_post: unknown key (did you mean 'max_posts'?)" in found
    assert f"{path}:5:9: posts.tag: unknown key (did you mean 'tags'?)" in found


def test_an_unknown_list_is_suggested(tmp_path: Path) -> None:
    make_site(tmp_path, digest=DIGEST.replace("list: lettre", "list: letre"))
    path = tmp_path / "schedules" / "hebdo.yaml"
    assert messages(tmp_path) == [
        f"{path}:2:7: list: no list 'letre' in schedules/ (lists: lettre); a list is a file with `kind: list`"
        " (did you mean 'lettre'?)"
    ]


def test_timing_is_required_once(tmp_path: Path) -> None:
    make_site(tmp_path, digest="kind: digest\nlist: lettre\n")
    assert messages(tmp_path) == [
        f"{tmp_path / 'schedules' / 'hebdo.yaml'}:1:1: set either `cron` or `send_window`, not both nor neither"
    ]


def test_list_mistakes(tmp_path: Path) -> None:
    lists = (
        LIST.replace("hold_during_course: wait", "hold_during_course: wiat").replace("30", "-1")
        + "archve: true\n"
    )
    make_site(tmp_path, lists=lists)
    path = tmp_path / "schedules" / "lettre.yaml"
    found = messages(tmp_path)
    assert (
        f"{path}:4:21: hold_during_course: expected wait, skip or false, got 'wiat' (did you mean 'wait'?)"
        in found
    )
    assert f"{path}:5:17: no_repeat_days: Input should be greater than or equal to 0, got -1" in found
    assert f"{path}:6:1: archve: unknown key (did you mean 'archive'?)" in found
    assert len(found) == 3  # the digest on a broken list adds nothing


def test_the_example_site_has_a_list_and_a_digest() -> None:
    site = load_site(REPO)
    found = load_newsletters(site)
    assert found.lists and found.digests
    assert course_slugs(site) == ["le-role-du-cto"]
