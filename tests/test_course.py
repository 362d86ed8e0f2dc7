"""The course compiler against real content: the seed pillar, a fixture site, and every mismatch located."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import jinja2
import pytest

from drip.config import Site, load_site
from drip.content.models import Link
from drip.course.compile import compile_course, course_slugs, jinja_literal, load_courses
from drip.course.models import Sender
from drip.errors import NotFoundError, ScheduleError

HERE = Path(__file__).parent
REPO = HERE.parent
FIXTURE_SITE = HERE / "fixtures" / "site_course"
NB = "\u00a0"


@pytest.fixture(scope="module")
def repo_site() -> Site:
    return load_site(REPO)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A private copy of the fixture site, so a test can add schedules of its own."""
    root = tmp_path / "site"
    shutil.copytree(FIXTURE_SITE, root)
    return load_site(root)


def write(site: Site, slug: str, text: str) -> Path:
    path = site.schedules_dir / f"{slug}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(site: Site, slug: str) -> list[str]:
    with pytest.raises(ScheduleError) as info:
        compile_course(site, slug)
    return [str(p) for p in info.value.problems]


# --- the example course, compiled from the seed pillar -----------------------------------------


def test_example_course_from_the_seed_pillar(repo_site: Site) -> None:
    course = compile_course(repo_site, "le-role-du-cto")
    assert course.slug == "le-role-du-cto"
    assert course.title == "Comprendre le rôle du CTO"
    assert (course.locale, course.timezone) == ("fr", "Europe/Paris")
    assert course.window.time == dt.time(8, 30)
    assert course.window.weekdays == frozenset(range(5))
    assert course.sender == Sender("Le métier de CTO", "lettre@cto.example.org", "bonjour@cto.example.org")
    assert course.schedule_path == REPO / "schedules" / "le-role-du-cto.yaml"
    assert course.pillar.slug == "le-role-du-cto"

    assert [(s.number, s.key, s.kind, s.day, s.immediate) for s in course.steps] == [
        (1, "welcome", "welcome", 0, True),
        (2, "article:/posts/cto-vs-lead-dev-vp-engineering-differences-role/", "article", 2, False),
        (3, "article:/posts/premiers-jours-cto-reussir-prise-de-poste/", "article", 4, False),
        (4, "article:/posts/vision-technique-roadmap-cto-strategy/", "article", 6, False),
        (5, "deeper", "closing", 8, False),
    ]
    assert [s.subject for s in course.steps] == [
        f"Bienvenue dans «{NB}Comprendre le rôle du CTO{NB}»",
        "Jour 2 — CTO, Lead Dev ou VP Engineering : trois rôles, trois questions",
        "Tes premiers mois de CTO : comprendre avant de changer",
        "Jour 6 — Vision technique et roadmap : une boussole plutôt qu'une carte",
        f"Pour aller plus loin{NB}: «{NB}Être ou ne pas être CTO{NB}»",
    ]
    assert [s.preheader for s in course.steps] == [
        "Trois lectures choisies pour comprendre ce que porte vraiment un CTO.",
        "Trois titres souvent confondus. Chacun répond à une question différente : quoi construire, comment le"
        " construire, avec qui.",
        "Les trois premiers mois fixent la confiance. Un plan simple pour comprendre l'existant avant de vouloir"
        " le changer.",
        "Une vision technique utile tient sur une page, se relie aux objectifs de l'entreprise, et aide l'équipe à"
        " dire non.",
        "Une ressource pour approfondir, et d'autres piliers à explorer.",
    ]


def test_example_course_articles_are_absolute_and_resolved(repo_site: Site) -> None:
    course = compile_course(repo_site, "le-role-du-cto")
    articles = [s.article for s in course.steps if s.article is not None]
    assert [(a.url, a.label, a.minutes, a.found) for a in articles] == [
        (
            "https://cto.example.org/posts/cto-vs-lead-dev-vp-engineering-differences-role/",
            "Fondamental",
            10,
            True,
        ),
        ("https://cto.example.org/posts/premiers-jours-cto-reussir-prise-de-poste/", "Posture", 15, True),
        ("https://cto.example.org/posts/vision-technique-roadmap-cto-strategy/", "Terrain", 20, True),
    ]
    assert all("utm_" not in a.url for a in articles)  # tracking is added when rendering
    assert course.deeper[0] == Link(
        "https://cto.example.org/guides-livres/etre-ou-ne-pas-etre-cto/", "Être ou ne pas être CTO"
    )
    assert [link.url for link in course.other_pillars] == [
        "https://cto.example.org/gouvernance-decision/",
        "https://cto.example.org/culture-management/",
        "https://cto.example.org/trouver-sa-place/",
    ]


def test_repo_site_courses(repo_site: Site) -> None:
    assert course_slugs(repo_site) == ["le-role-du-cto"]
    assert list(load_courses(repo_site)) == ["le-role-du-cto"]


# --- a richer schedule: named heading, external link, sections, day overrides ------------------


def test_fixture_course_with_sections_and_overrides(site: Site) -> None:
    course = compile_course(site, "devenir-lead-dev")
    assert [(s.key, s.day) for s in course.steps] == [
        ("welcome", 0),
        ("article:/posts/premier-mois-lead-dev/", 3),
        ("article:/posts/deleguer-sans-tout-relire/", 10),  # written without its trailing slash in the pillar
        ("article:https://adr.example.net/guide/", 13),  # another site's link keeps its full URL
        ("section:les-rituels-d-equipe", 16),
        ("section:comprendre-le-role", 19),
        ("deeper", 30),
    ]
    welcome, mois, deleguer, adr, rituels, role, deeper = course.steps
    assert welcome.subject == f"Bienvenue dans «{NB}Devenir Lead Dev{NB}»"
    assert welcome.preheader == f"Au programme{NB}: 6 emails, un tous les 3 jours, pour aller à l'essentiel."
    assert mois.preheader == "Quatre semaines pour comprendre l'équipe avant de changer quoi que ce soit."
    assert deleguer.subject == "Jour 10 — Déléguer sans tout relire"
    assert deleguer.preheader == "Lâcher prise, {{ name }}."
    assert deleguer.article is not None and not deleguer.article.found
    assert adr.preheader == "Outil"
    assert adr.article is not None and adr.article.url == "https://adr.example.net/guide/"
    assert rituels.subject == "Les rituels qui tiennent une équipe"
    assert rituels.preheader == f"1 article à lire pour creuser{NB}: Les rituels d'équipe"
    assert role.subject == "Jour 19 — Comprendre le rôle"
    assert role.section is not None and role.section.title == "Comprendre le rôle"
    assert [(a.url, a.found) for a in role.section_articles] == [
        ("https://essai.example.org/posts/premier-mois-lead-dev/", True),
        ("https://essai.example.org/posts/lead-dev-ou-manager/", False),
    ]
    assert deeper.subject == f"Pour aller plus loin{NB}: «{NB}Mener une équipe technique{NB}»"
    assert course.window.time == dt.time(7, 45)


def test_content_text_stays_literal_in_jinja_subjects(site: Site) -> None:
    course = compile_course(site, "devenir-lead-dev")
    subject = course.step("article:/posts/premier-mois-lead-dev/").subject
    rendered = (
        jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined).from_string(subject).render()
    )
    assert rendered == "Jour 3 — Ton premier mois de Lead Dev : {{ écouter }} d'abord"
    assert jinja2.Environment().from_string(jinja_literal("{% raw %}{#x#}")).render() == "{% raw %}{#x#}"


def test_keys_do_not_depend_on_position(site: Site) -> None:
    before = {s.key: s for s in compile_course(site, "devenir-lead-dev").steps}
    write(
        site,
        "devenir-lead-dev",
        'pillar: devenir-lead-dev\nreading_path: "Par où commencer"\nwelcome: false\n',
    )
    after = compile_course(site, "devenir-lead-dev")
    assert [s.key for s in after.steps] == [
        "article:/posts/premier-mois-lead-dev/",
        "article:/posts/deleguer-sans-tout-relire/",
        "deeper",
    ]
    assert set(s.key for s in after.steps) <= set(before)
    assert [(s.number, s.day, s.immediate) for s in after.steps] == [
        (1, 2, False),
        (2, 4, False),
        (3, 6, False),
    ]


def test_english_defaults_and_dropped_closing(site: Site) -> None:
    write(site, "en", "pillar: devenir-lead-dev\nlocale: en\ncadence: 1\nclosing: false\n")
    course = compile_course(site, "en")
    assert [(s.key, s.day, s.subject, s.preheader) for s in course.steps] == [
        (
            "welcome",
            0,
            "Welcome to “Devenir Lead Dev”",
            "Coming up: 2 emails, one a day, straight to the essentials.",
        ),
        (
            "article:/posts/premier-mois-lead-dev/",
            1,
            "Day 1 — Ton premier mois de Lead Dev : {{ '{' }}{{ '{' }} écouter }} d'abord",
            "Quatre semaines pour comprendre l'équipe avant de changer quoi que ce soit.",
        ),
        (
            "article:/posts/deleguer-sans-tout-relire/",
            2,
            "Day 2 — Déléguer sans tout relire",
            "Pratique · 12 min read",
        ),
    ]


def test_pillar_named_by_path_inside_content(site: Site) -> None:
    write(site, "par-chemin", "pillar: devenir-lead-dev.md\n")
    assert compile_course(site, "par-chemin").pillar.slug == "devenir-lead-dev"


# --- errors, located in the schedule (or in the pillar when the fault is there) -----------------


def test_unknown_course_names_the_closest(site: Site) -> None:
    with pytest.raises(NotFoundError) as info:
        compile_course(site, "devenir-lead")
    assert (
        str(info.value)
        == "no course 'devenir-lead' in schedules/ (courses: devenir-lead-dev) (did you mean 'devenir-lead-dev'?)"
    )


def test_missing_pillar_suggests_the_closest_slug(site: Site) -> None:
    path = write(site, "c", "title: x\npillar: devenir-lead\n")
    assert problems(site, "c") == [
        f"{path}:2:9: pillar: no pillar page 'devenir-lead' in content/ (did you mean 'devenir-lead-dev'?)"
    ]


def test_pillar_defaults_to_the_course_slug(site: Site) -> None:
    path = write(site, "devenir-lead-de", "cadence: 2\n")
    assert problems(site, "devenir-lead-de") == [
        f"{path}:1:1: no pillar page 'devenir-lead-de' in content/; set `pillar:` to the page's file name"
        " (did you mean 'devenir-lead-dev'?)"
    ]


def test_pillar_path_cannot_leave_content(site: Site) -> None:
    path = write(site, "c", "pillar: ../drip.yaml\n")
    assert problems(site, "c") == [f"{path}:1:9: pillar: no pillar page '../drip.yaml' in content/"]


def test_reading_path_heading_not_found_points_into_the_schedule(site: Site) -> None:
    path = write(site, "c", "pillar: devenir-lead-dev\nreading_path: Parcour conseille\n")
    assert problems(site, "c") == [
        f"{path}:2:15: reading_path: no heading 'Parcour conseille' in content/devenir-lead-dev.md"
        " (did you mean 'Parcours conseillé'?)"
    ]


def test_empty_reading_path_points_into_the_pillar(site: Site) -> None:
    write(site, "c", "pillar: vide\n")
    pillar = site.content_dir / "vide.md"
    assert problems(site, "c") == [
        f"{pillar}:5:1: reading path under heading 'Par où commencer' is empty: add a list of links below it"
    ]


def test_same_article_twice_in_the_reading_path(site: Site) -> None:
    write(site, "c", "pillar: sans-suite\n")
    pillar = site.content_dir / "sans-suite.md"
    assert problems(site, "c") == [
        f"{pillar}:8: /posts/un-seul-article is already in the reading path (line 7); each email needs its own article",
    ]


def test_a_default_closing_without_a_resource_is_dropped_with_a_warning(site: Site) -> None:
    pillar = site.content_dir / "un-article.md"
    pillar.write_text("---\ntitle: Un article\n---\n\n## Par où commencer\n\n1. [Seul](/posts/seul/)\n")
    write(site, "c", "pillar: un-article\n")
    course = compile_course(site, "c")
    assert [s.key for s in course.steps] == ["welcome", "article:/posts/seul/"]
    assert course.steps[0].preheader.startswith(f"Au programme{NB}: 1 email, ")
    assert [str(w) for w in course.warnings] == [
        f"{site.schedules_dir / 'c.yaml'}:1:1: no closing email: content/un-article.md has no go-deeper resource"
        ' nor other pillars (add a "Pour approfondir" section, or set `closing: false` to silence this)'
    ]
    # Asking for the closing email by name keeps it an error.
    path = write(site, "c", "pillar: un-article\nclosing: {subject: Fin}\n")
    assert problems(site, "c") == [
        f"{path}:2:10: closing: content/un-article.md has no go-deeper resource nor other pillars for the closing"
        ' email; add a "Pour approfondir" section or set `closing: false`'
    ]
    write(site, "c", "pillar: un-article\nclosing: false\n")
    assert compile_course(site, "c").warnings == ()


def test_reading_times_of_an_hour_or_more_read_in_hours(site: Site) -> None:
    from drip.content.duration import format_minutes

    assert [format_minutes(m, "fr") for m in (45, 60, 90, 65)] == ["45 min", "1 h", "1 h 30", "1 h 05"]
    assert [format_minutes(m, "en") for m in (45, 60, 90, 65)] == ["45 min", "1 h", "1 h 30 min", "1 h 5 min"]
    pillar = site.content_dir / "long.md"
    pillar.write_text(
        "---\ntitle: Long\n---\n\n## Start here\n\n1. [Long read](/posts/long/) — Deep (1 h)\n"
        "2. [Longer](/posts/longer/) — Deeper (1 h 30)\n\n## Pour approfondir\n\n[Livre](/livre/)\n"
    )
    write(site, "long", "pillar: long\nlocale: en\nreading_path: Start here\n")
    course = compile_course(site, "long")
    assert [s.preheader for s in course.steps[1:3]] == ["Deep · 1 h read", "Deeper · 1 h 30 min read"]


def test_cross_reference_errors_all_at_once(site: Site) -> None:
    path = write(
        site,
        "c",
        "pillar: devenir-lead-dev\n"
        "articles:\n"
        "  /posts/premier-mois-lead-dev: {day: 5}\n"
        "  /posts/deleguer-sans-tout-relir/: {subject: x}\n"
        "  https://essai.example.org/posts/deleguer-sans-tout-relire/: {day: 4}\n"
        "sections: [comprendre-le-rôle, les-rituels-d-equipe]\n"
        "closing: {day: 6}\n",
    )
    assert problems(site, "c") == [
        f"{path}:4:3: articles./posts/deleguer-sans-tout-relir/: no article /posts/deleguer-sans-tout-relir/"
        " in the reading path of content/devenir-lead-dev.md (did you mean '/posts/deleguer-sans-tout-relire/'?)",
        f"{path}:5:69: articles.https://essai.example.org/posts/deleguer-sans-tout-relire/.day: day 4 must come"
        " after day 5 of the email before it (article:/posts/premier-mois-lead-dev/); days must increase in"
        " course order",
        f"{path}:6:12: sections.0: no section 'comprendre-le-rôle' in content/devenir-lead-dev.md"
        " (sections: comprendre-le-role, les-rituels-d-equipe) (did you mean 'comprendre-le-role'?)",
        f"{path}:7:16: closing.day: day 6 must come after day 6 of the email before it"
        " (section:les-rituels-d-equipe); days must increase in course order",
    ]


def test_load_courses_reports_every_schedule_at_once(site: Site) -> None:
    first = write(site, "a-first", "pillar: nope\n")
    second = write(
        site,
        "b-second",
        "pillar: devenir-lead-dev\nsend_window: {time: 8h30}\narticles:\n  /posts/inconnu/: {day: 2}\n",
    )
    with pytest.raises(ScheduleError) as info:
        load_courses(site)
    assert [str(p) for p in info.value.problems] == [
        f"{first}:1:9: pillar: no pillar page 'nope' in content/",
        f"{second}:2:21: send_window.time: invalid time '8h30', expected HH:MM on a 24-hour clock, e.g. \"08:30\"",
        # checked against the pillar even though the file has another mistake
        f"{second}:4:3: articles./posts/inconnu/: no article /posts/inconnu/ in the reading path of"
        " content/devenir-lead-dev.md",
    ]


def test_a_bad_pillar_name_stops_cross_checks_instead_of_adding_noise(site: Site) -> None:
    path = write(site, "devenir-lead-dev", "pillar: 3\ncadence: 0\nsections: [inconnue]\n")
    assert problems(site, "devenir-lead-dev") == [
        f"{path}:1:9: pillar: Input should be a valid string, got 3",
        f"{path}:2:10: cadence: Input should be greater than or equal to 1, got 0",
    ]


def test_load_courses_compiles_every_course(site: Site) -> None:
    write(site, "vide-mais-pas", "pillar: devenir-lead-dev\nwelcome: false\n")
    courses = load_courses(site)
    assert sorted(courses) == ["devenir-lead-dev", "vide-mais-pas"]
    assert courses["vide-mais-pas"].steps[0].key == "article:/posts/premier-mois-lead-dev/"


def test_one_bad_override_does_not_hide_the_others(site: Site) -> None:
    path = write(
        site,
        "c",
        "pillar: devenir-lead-dev\narticles:\n  /posts/premier-mois-lead-dev/: {dya: 3}\n  /posts/nope/: {day: 9}\n",
    )
    assert problems(site, "c") == [
        f"{path}:3:35: articles./posts/premier-mois-lead-dev/.dya: unknown key (did you mean 'day'?)",
        f"{path}:4:3: articles./posts/nope/: no article /posts/nope/ in the reading path of content/devenir-lead-dev.md",
    ]


def test_custom_heading_typo_on_a_page_without_a_default_heading(site: Site) -> None:
    path = write(site, "c", "pillar: guide-maison\nreading_path: Le parcour\n")
    assert problems(site, "c") == [
        f"{path}:2:15: reading_path: no heading 'Le parcour' in content/guide-maison.md"
        " (did you mean 'Le parcours'?)"
    ]
    write(site, "c", "pillar: guide-maison\nreading_path: Le parcours\n")
    assert [s.key for s in compile_course(site, "c").steps] == [
        "welcome",
        "article:/posts/revue-de-code/",
        "deeper",
    ]


def test_a_schedule_may_speak_a_second_language_for_every_email(site: Site) -> None:
    both = "{subject: {fr: 'Sujet %s', en: 'Subject %s'}, preheader: {fr: 'Avant %s', en: 'Before %s'}}"
    text = (
        "pillar: devenir-lead-dev\ntitle: {fr: Devenir Lead Dev, en: Becoming a lead dev}\nclosing: false\n"
        f"welcome: {both % ((1,) * 4)}\n"
        "articles:\n"
        f"  /posts/premier-mois-lead-dev/: {both % ((2,) * 4)}\n"
        f"  /posts/deleguer-sans-tout-relire/: {both % ((3,) * 4)}\n"
    )
    write(site, "bi", text)
    course = compile_course(site, "bi")
    assert course.locales == ("fr", "en") and course.title == "Devenir Lead Dev"
    assert course.title_in("en") == "Becoming a lead dev"
    assert [s.texts("en") for s in course.steps] == [(f"Subject {n}", f"Before {n}") for n in (1, 2, 3)]
    assert course.steps[1].subject == "Sujet 2" and course.warnings == ()
    # One email without English keeps every email in French, and says so.
    path = write(site, "bi", text.replace(both % ((3,) * 4), "{subject: Sujet 3}"))
    course = compile_course(site, "bi")
    assert course.locales == ("fr",)
    assert [str(w) for w in course.warnings] == [
        f"{path}:1:1: readers with locale en get this course in fr: no en subject and preheader for"
        " article:/posts/deleguer-sans-tout-relire/"
    ]


def test_a_bad_locale_in_a_schedule_text_is_located(site: Site) -> None:
    path = write(site, "bi", "pillar: devenir-lead-dev\nwelcome:\n  subject: {fr: Salut, de: Hallo}\n")
    assert problems(site, "bi") == [
        f"{path}:3:12: welcome.subject: de: unsupported locale 'de', expected one of fr, en"
    ]
