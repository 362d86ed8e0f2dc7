"""Schedule files on their own: schema, defaults from drip.yaml, and located errors, all at once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from drip.config import Site, load_site
from drip.course.models import Sender
from drip.course.schedule import Schedule, load_schedule, read_schedule, schedule_files
from drip.errors import ScheduleError

HERE = Path(__file__).parent
SCHEDULES = HERE / "fixtures" / "schedules"
SITE = HERE / "fixtures" / "site_course"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(SITE)


def problems_of(name: str, site: Site) -> list[str]:
    with pytest.raises(ScheduleError) as info:
        load_schedule(SCHEDULES / name, site)
    return [str(p) for p in info.value.problems]


def load(name: str, site: Site) -> Schedule:
    return load_schedule(SCHEDULES / name, site)


def test_typo_in_a_nested_key_names_the_closest_key(site: Site) -> None:
    path = SCHEDULES / "typo.yaml"
    assert problems_of("typo.yaml", site) == [
        f"{path}:3:3: send_window.tiem: unknown key (did you mean 'time'?)",
    ]


def test_every_error_reported_at_once_with_positions(site: Site) -> None:
    path = SCHEDULES / "many-errors.yaml"
    assert problems_of("many-errors.yaml", site) == [
        f"{path}:2:1: titel: unknown key (did you mean 'title'?)",
        f"{path}:3:9: locale: unsupported locale 'de', expected one of fr, en",
        f"{path}:4:11: timezone: unknown time zone 'Europe/Pari' (did you mean 'Europe/Paris'?)",
        f"{path}:6:9: send_window.time: invalid time '8h30', expected HH:MM on a 24-hour clock, e.g. \"08:30\"",
        f"{path}:7:9: send_window.days: unknown day name 'tuseday' (did you mean 'tuesday'?);"
        ' use mon, tue, wed, thu, fri, sat, sun, "weekdays" or "every day"',
        f"{path}:8:1: cadance: unknown key (did you mean 'cadence'?)",
        f"{path}:10:3: welcome.subjet: unknown key (did you mean 'subject'?)",
        f"{path}:12:20: articles./posts/x/.day: Input should be greater than or equal to 0, got -1",
        f"{path}:13:10: closing: expected false, or a mapping of subject/preheader overrides, got 'maybe'",
    ]


def test_error_carries_file_line_column_and_key(site: Site) -> None:
    with pytest.raises(ScheduleError) as info:
        load("typo.yaml", site)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.column, problem.key) == (
        SCHEDULES / "typo.yaml",
        3,
        3,
        "send_window.tiem",
    )
    assert problem.hint == "did you mean 'time'?"


def test_repeated_section_points_at_the_repeat(site: Site) -> None:
    path = SCHEDULES / "repeated.yaml"
    assert problems_of("repeated.yaml", site) == [
        f"{path}:4:5: sections.2: 'comprendre-les-roles' is already listed (line 2)",
        f"{path}:7:9: send_window.time: invalid time '25:00', expected HH:MM on a 24-hour clock, e.g. \"08:30\"",
        f"{path}:8:10: cadence: Input should be a valid integer, unable to parse string as an integer, got 'deux'",
    ]


def test_values_that_reach_headers_stay_on_one_line(site: Site) -> None:
    path = SCHEDULES / "header-injection.yaml"
    assert problems_of("header-injection.yaml", site) == [
        f"{path}:2:12: welcome.subject: must fit on one line",
        f"{path}:4:13: sender.reply_to: must not be empty",
        f"{path}:5:10: sender.email: must fit on one line",
    ]


def test_sender_addresses_are_checked(site: Site) -> None:
    path = SCHEDULES / "bad-sender.yaml"
    assert problems_of("bad-sender.yaml", site) == [
        f"{path}:2:10: sender.email: not a valid email address: There must be something after the @-sign.",
        f"{path}:3:13: sender.reply_to: not a valid email address: The email address contains invalid"
        " characters before the @-sign: SPACE.",
    ]


def test_top_level_must_be_a_mapping(site: Site) -> None:
    path = SCHEDULES / "not-a-mapping.yaml"
    assert problems_of("not-a-mapping.yaml", site) == [
        f"{path}:1:1: expected a mapping of schedule settings at the top level",
    ]


def test_yaml_syntax_error_is_located(site: Site) -> None:
    path = SCHEDULES / "broken-yaml.yaml"
    assert problems_of("broken-yaml.yaml", site) == [
        f"{path}:3:1: invalid YAML: expected ',' or '}}', but got '<scalar>' (while parsing a flow mapping)",
    ]


def test_missing_file_is_a_schedule_error(site: Site, tmp_path: Path) -> None:
    with pytest.raises(ScheduleError) as info:
        load_schedule(tmp_path / "nope.yaml", site)
    assert str(info.value).startswith(f"{tmp_path / 'nope.yaml'}: cannot read file: ")


def test_empty_file_takes_every_default_from_the_site(site: Site) -> None:
    schedule = load("empty.yaml", site)
    assert schedule.slug == "empty"
    assert schedule.pillar == "empty"  # the course slug names the pillar unless `pillar:` says otherwise
    assert (schedule.locale, schedule.timezone) == ("fr", "Europe/Paris")
    assert schedule.sender == Sender(name="Lettre d'essai", email="lettre@essai.example.org", reply_to=None)
    assert schedule.window.time == dt.time(8, 30)
    assert schedule.window.weekdays == frozenset(range(5))
    assert schedule.model.cadence == 2
    assert schedule.model.welcome is not None and schedule.model.closing is not None


def test_short_forms(site: Site) -> None:
    schedule = load("short-forms.yaml", site)
    assert schedule.window.time == dt.time(9, 15)  # unquoted 9:15 is not YAML's base-60 number 555
    assert schedule.window.weekdays == frozenset({0, 2, 4})
    assert schedule.model.welcome is None  # `welcome: false`
    assert schedule.model.closing is not None  # `closing:` left empty keeps it
    assert list(schedule.model.sections) == ["comprendre-les-roles", "les-premiers-pas"]
    assert schedule.sender == Sender(name="Camille de l'équipe", email="lettre@essai.example.org")
    assert (schedule.locale, schedule.timezone) == ("en", "America/New_York")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("10:30", dt.time(10, 30)),
        ("8:05", dt.time(8, 5)),
        ('"07:45"', dt.time(7, 45)),
        ("'23:00'", dt.time(23)),
    ],
)
def test_time_written_with_or_without_quotes(
    site: Site, tmp_path: Path, written: str, expected: dt.time
) -> None:
    for layout in (
        f"send_window:\n  time: {written}  # local\n",
        f"send_window: {{time: {written}, days: weekdays}}\n",
    ):
        path = tmp_path / "c.yaml"
        path.write_text(layout, encoding="utf-8")
        assert load_schedule(path, site).window.time == expected


def test_unquoted_bad_time_is_still_reported_as_written(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("send_window:\n  time: 25:10\n", encoding="utf-8")
    with pytest.raises(ScheduleError) as info:
        load_schedule(path, site)
    assert str(info.value) == (
        f"{path}:2:9: send_window.time: invalid time '25:10', expected HH:MM on a 24-hour clock, e.g. \"08:30\""
    )


def test_entry_positions_are_kept_for_the_compiler(site: Site) -> None:
    schedule = load("short-forms.yaml", site)
    problem = schedule.entry_problem("sections", "les-premiers-pas", "no such section")
    assert str(problem) == f"{SCHEDULES / 'short-forms.yaml'}:5:34: sections.1: no such section"


def test_schedule_files_lists_yaml_by_stem(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("")
    (tmp_path / "a.yml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert schedule_files(tmp_path) == {"a": tmp_path / "a.yml", "b": tmp_path / "b.yaml"}
    assert schedule_files(tmp_path / "missing") == {}


def test_a_key_written_twice_is_an_error_not_a_silent_overwrite(site: Site) -> None:
    path = SCHEDULES / "twice.yaml"
    assert problems_of("twice.yaml", site) == [
        f"{path}:4:1: articles: appears twice (first on line 1); merge both into one",
        f"{path}:5:23: articles./posts/b/.day: appears twice (first on line 5); merge both into one",
    ]


def test_an_unknown_variable_in_a_subject_is_located_with_the_other_errors(
    site: Site, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        'pillar: devenir-lead-dev\ncadense: 2\nwelcome:\n  subject: "Bienvenue {{ nmae }}"\n'
        '  preheader: "{{ subscriber.name }} et {{ curse.title }}"\n',
        encoding="utf-8",
    )
    _, problems = read_schedule(path, site)
    assert [str(p) for p in problems] == [
        f"{path}:2:1: cadense: unknown key (did you mean 'cadence'?)",
        f"{path}:4:12: welcome.subject: unknown variable 'nmae' (did you mean 'name'?)",
        f"{path}:5:14: welcome.preheader: unknown variable 'curse' (did you mean 'course'?)",
    ]
