"""A site as Hugo writes it, read as it is: refs, section pages, bundles, TOML/JSON, drafts, languages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hugo_support import HUGO_SITE, NOW, copy_hugo_site

from drip.cli import authoring, cli  # noqa: F401  (modules register their commands)
from drip.config import load_site
from drip.content import load_content, read_pillar
from drip.course.compile import compile_course
from drip.errors import ContentError
from drip.preview.checks import check_site


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return copy_hugo_site(tmp_path)


def run_drip(site: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--site", str(site), *args])
    assert "Traceback" not in result.output
    return result


def test_the_content_folder_of_the_site_language_is_read() -> None:
    site = load_site(HUGO_SITE)
    assert site.content_dir == HUGO_SITE / "content" / "en"


def test_section_pages_bundles_slugs_aliases_and_front_matter_formats() -> None:
    index = load_content(HUGO_SITE / "content" / "en", now=NOW)
    assert index.known_urls() == {
        "/",  # content/_index.md (TOML)
        "/about/",
        "/legal-notice/",  # JSON front matter with a slug
        "/hugo-modules/",  # a section page with a reading path: a pillar
        "/modules/",  # its alias
        "/hugo-modules/configuration/",  # slug replaces the file name
        "/content-management/",
        "/content-management/front-matter/",
        "/content-management/bundles/",  # bundles.en.md: the site's language, no suffix in the URL
        "/fr/content-management/bundles/",  # bundles.fr.md: its French translation
        "/fr/content-management/",  # _index.fr.md
        "/getting-started/",  # a section page whose reading path is in front matter
        "/getting-started/quick-start/",  # a page bundle
    }
    assert index.pillars["hugo-modules"].name == "_index.md"
    assert index.hubs == {"/hugo-modules/", "/content-management/", "/getting-started/"}


def test_a_language_suffix_is_the_page_in_that_language_under_its_prefix() -> None:
    """Hugo's translation by file name: bundles.en.md and bundles.fr.md are one page in two languages."""
    index = load_content(HUGO_SITE / "content" / "en", now=NOW)
    folder = HUGO_SITE / "content" / "en" / "content-management"
    english, french = (
        index.posts["/content-management/bundles/"],
        index.posts["/fr/content-management/bundles/"],
    )
    assert (english.path.name, english.title) == ("bundles.en.md", "Page bundles")
    assert (french.path.name, french.title) == ("bundles.fr.md", "Paquets de pages")
    assert index.posts["/fr/content-management/"].path.name == "_index.fr.md"  # a section page, in French
    assert "/fr/content-management/" not in index.hubs  # a course is in the site's language
    assert index.pillars["content-management"].name == "_index.md"
    assert index.url_of(folder / "bundles.en.md") == "/content-management/bundles/"
    assert index.ref("bundles", folder / "_index.md") == ("/content-management/bundles/", "")
    assert index.ref("bundles", folder / "bundles.fr.md") == ("/fr/content-management/bundles/", "")
    assert index.ref("bundles.fr.md", folder / "bundles.en.md") == ("/fr/content-management/bundles/", "")
    assert index.ref("front-matter", folder / "bundles.fr.md") == ("/content-management/front-matter/", "")


def test_the_site_locale_decides_which_suffix_is_at_the_root(tmp_path: Path) -> None:
    content = tmp_path / "content"
    (content / "posts").mkdir(parents=True)
    (content / "guide.fr.md").write_text(
        "---\ntitle: Guide\n---\n\n## Par où commencer\n\n- [A](/posts/a/)\n"
    )
    (content / "guide.en.md").write_text(
        "---\ntitle: Guide (en)\n---\n\n## Start here\n\n- [A](/en/posts/a/)\n"
    )
    (content / "posts" / "a.md").write_text("---\ntitle: A\n---\nTexte.\n")
    (content / "posts" / "a.en.md").write_text("---\ntitle: A (en)\n---\nText.\n")
    (content / "posts" / "v1.2.md").write_text("---\ntitle: Version 1.2\n---\nNot a language.\n")
    index = load_content(content, now=NOW, locale="fr")
    assert index.pillars == {"guide": content / "guide.fr.md"} and index.hubs == {"/guide/"}
    assert set(index.posts) == {"/en/guide/", "/posts/a/", "/en/posts/a/", "/posts/v1.2/"}
    (content / "posts" / "a.fr.md").write_text("---\ntitle: A\n---\nTexte.\n")
    with pytest.raises(ContentError) as found:
        load_content(content, now=NOW, locale="fr")
    assert "/posts/a/ is already provided by" in str(found.value.problems[0])


def test_drafts_future_and_expired_pages_are_not_published_at_now() -> None:
    index = load_content(HUGO_SITE / "content" / "en", now=NOW)
    assert index.unpublished == {
        "content-management/wip": "a draft",
        "content-management/upcoming": "not published before 2999-01-01",
        "content-management/old": "expired on 2020-01-01",
    }
    later = load_content(HUGO_SITE / "content" / "en", now=dt.datetime(3000, 1, 1, tzinfo=dt.UTC))
    assert "/content-management/upcoming/" in later.posts
    assert "/content-management/old/" not in later.posts


def test_ref_and_relref_resolve_in_every_form() -> None:
    index = load_content(HUGO_SITE / "content" / "en", now=NOW)
    pillar = read_pillar(index.pillars["hugo-modules"], content=index)
    assert [item.url for item in pillar.reading_path] == [
        "/getting-started/quick-start/",  # {{< ref "path" >}}, from the content root
        "/content-management/front-matter/#dates",  # {{% relref "/x.md#anchor" %}}
        "/hugo-modules/configuration/",  # relative to the page, slug applied
    ]
    assert pillar.url == "/hugo-modules/"
    page = index.pillars["hugo-modules"]
    assert index.ref("configure.md", page) == ("/hugo-modules/configuration/", "")
    assert index.ref("quick-start", page) == ("/getting-started/quick-start/", "")  # a unique bare name
    assert index.ref("#top", page) == ("/hugo-modules/#top", "")


def test_refs_in_a_front_matter_reading_path_resolve_like_body_links() -> None:
    index = load_content(HUGO_SITE / "content" / "en", now=NOW)
    pillar = read_pillar(index.pillars["getting-started"], content=index)
    assert [(item.url, item.title) for item in pillar.reading_path] == [
        ("/getting-started/quick-start/", "/getting-started/quick-start/"),  # a bare {{< ref >}} string
        ("/content-management/front-matter/#dates", "Front matter dates"),  # {{% relref %}} as url
        ("/hugo-modules/configuration/", "Configure modules"),  # ref: a bare name
    ]


def test_an_unresolvable_ref_in_front_matter_is_a_located_error(site: Path) -> None:
    pillar = site / "content" / "en" / "getting-started" / "_index.md"
    text = pillar.read_text(encoding="utf-8")
    text = text.replace("ref: configure", "ref: configur").replace(
        'front-matter.md#dates"', 'frontmatter.md"'
    )
    pillar.write_text(text, encoding="utf-8")
    (site / "schedules" / "getting-started.yaml").write_text("cadence: 1\n", encoding="utf-8")
    result = run_drip(site, "check", "--now", "2026-06-01T00:00")
    assert result.exit_code == 1
    unknown = "ref '/content-management/frontmatter.md' names no page under content/"
    assert f"{pillar}:5:10: reading_path.1.url: {unknown}" in result.output
    assert f"{pillar}:7:10: reading_path.2.ref: ref 'configur' names no page under content/" in result.output
    pillar.write_text(text.replace("ref: configur", "ref: configur\n    url: /x/"), encoding="utf-8")
    result = run_drip(site, "check", "--now", "2026-06-01T00:00")
    assert result.exit_code == 1 and "give the page as url or as ref, one of them" in result.output


def test_shortcodes_never_reach_an_email_text() -> None:
    course = compile_course(load_site(HUGO_SITE), "hugo-modules", now=NOW)
    pillar = course.pillar
    texts = [pillar.title, pillar.description, pillar.intro, *(s.subject for s in course.steps)]
    texts += [s.article.description or "" for s in course.steps if s.article]
    assert not [t for t in texts if "{{" in t or "}}" in t]
    assert pillar.intro == "Everything about modules, in reading order. Read them in order."
    assert pillar.description == "Use to share code"
    quick_start = course.steps[1].article
    assert (
        quick_start is not None
        and quick_start.description == "Install Hugo and build a site in five minutes."
    )


def test_an_unresolvable_ref_is_a_located_error(site: Path) -> None:
    pillar = site / "content" / "en" / "hugo-modules" / "_index.md"
    text = pillar.read_text(encoding="utf-8")
    text = text.replace('ref "configure"', 'ref "configur"').replace(
        "## Go deeper", '- [Soon]({{< ref "/content-management/upcoming" >}})\n\n## Go deeper'
    )
    pillar.write_text(text, encoding="utf-8")
    result = run_drip(site, "check", "--now", "2026-06-01T00:00")
    assert result.exit_code == 1
    assert f"{pillar}:13:24: ref 'configur' names no page under content/" in result.output
    assert f"{pillar}:15:10: ref '/content-management/upcoming' points to a page that is not published" in (
        result.output
    )


def test_only_real_pillars_warn_about_a_missing_reading_path(site: Path) -> None:
    """Before: the home page, about and legal pages each raised a 'no reading path' warning."""
    report = check_site(load_site(site), now=NOW)
    assert report.ok and not report.warnings, report.warnings
    hub = site / "content" / "en" / "content-management" / "_index.md"
    hub.write_text(hub.read_text(encoding="utf-8").replace("## Start here", "## Read this"), encoding="utf-8")
    report = check_site(load_site(site), now=NOW)
    assert [p.file for p in report.warnings] == [hub]
    assert "no reading path" in report.warnings[0].message


def test_a_list_of_links_to_pillars_is_the_other_pillars() -> None:
    """Before: 'Other hubs' was not recognised and its links were silently dropped from the closing email."""
    course = compile_course(load_site(HUGO_SITE), "hugo-modules", now=NOW)
    assert [link.url for link in course.other_pillars] == ["https://docs.example.org/content-management/"]


def test_a_schedule_names_the_other_pillars_heading_and_an_ignored_list_warns(site: Path) -> None:
    pillar = site / "content" / "en" / "hugo-modules" / "_index.md"
    pillar.write_text(
        pillar.read_text(encoding="utf-8")
        + "\n## See also\n\n- [Modules](https://gohugo.io/hugo-modules/)\n",
        encoding="utf-8",
    )
    schedule = site / "schedules" / "hugo-modules.yaml"
    schedule.write_text(schedule.read_text(encoding="utf-8") + "other_pillars: See also\n", encoding="utf-8")
    report = check_site(load_site(site), now=NOW)
    assert report.ok
    assert [(p.line, p.message, p.hint) for p in report.warnings] == [
        (
            19,
            "the list under 'Other hubs' links only to pillar pages but is not used as the other pillars",
            "name it in the schedule: `other_pillars: Other hubs`",
        )
    ]
    course = compile_course(load_site(site), "hugo-modules", now=NOW)
    assert [link.text for link in course.other_pillars] == ["Modules"]
    schedule.write_text(
        schedule.read_text(encoding="utf-8").replace("See also", "Elsewhere"), encoding="utf-8"
    )
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert (
        f"{schedule}:3:16: other_pillars: no heading 'Elsewhere' in en/hugo-modules/_index.md"
        in result.output
    )
