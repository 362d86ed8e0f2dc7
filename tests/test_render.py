"""Rendering: templates → MJML → HTML + text, slots, overrides, errors and escaping."""

from __future__ import annotations

import dataclasses
import os
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import jinja2
import pytest

from drip.config import Site
from drip.content.models import Article
from drip.course.models import Course, Step
from drip.errors import TemplateError
from drip.render.i18n import CATALOGUES, messages, pick_locale
from drip.render.mjml import lint, split_inline_css, to_html
from drip.render.slots import MARKER_PREFIX
from drip.render.steps import (
    RenderCache,
    mjml_source,
    render_course,
    render_step,
    sample_values,
)
from drip.render.templates import DEFAULTS_DIR
from drip.render.text import tidy

if TYPE_CHECKING:
    from playwright.sync_api import Browser

BASE = "https://cto.example.org"
HOSTILE_NAME = '<script>alert("x")</script> O\'Hara {{ 7*7 }}\r\nBcc: evil@example.org'


class _Links(HTMLParser):
    """Every href and the text of the element carrying it."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.styles: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            href = found["href"] or ""
            self.hrefs.append(href)
            self.styles[href] = found.get("style") or ""


def _hrefs(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def _site_with_templates(example_site: Site, tmp_path: Path, files: dict[str, str]) -> Site:
    """The example site's configuration, with its own email_templates/ folder in tmp_path."""
    folder = tmp_path / "email_templates"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return Site(root=tmp_path, config=example_site.config)


def _default(name: str) -> str:
    return (DEFAULTS_DIR / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def rendered(example_site: Site, example_course: Course) -> dict[str, tuple[str, str, str]]:
    """Every email of the example course personalised with the preview values."""
    values = sample_values(example_site, example_course)
    return {
        key: step.personalise(values) for key, step in render_course(example_site, example_course).items()
    }


# --- the example course --------------------------------------------------------------------------


def test_every_email_has_subject_footer_and_text(
    rendered: dict[str, tuple[str, str, str]], example_course: Course
) -> None:
    assert list(rendered) == [s.key for s in example_course.steps]
    why = (
        "Tu reçois cet email parce que tu t'es inscrit(e) au parcours "
        f"«\u00a0{example_course.title}\u00a0» sur Le métier de CTO."
    )
    for key, (subject, html, text) in rendered.items():
        assert subject.strip() and "\n" not in subject, key
        for part in (unescape(html), text):
            assert why in part, key
            assert f"{BASE}/unsubscribe/preview-token" in part
            assert f"{BASE}/preferences/preview-token" in part
            assert f"{BASE}/view/preview-token" in part
            assert "Le métier de CTO, 12 rue des Lilas, 69003 Lyon, France" in part
            assert MARKER_PREFIX not in part
        words = unescape(html)
        assert "Se désinscrire" in words and "Voir dans le navigateur" in words
        assert "Gérer mes préférences" in words
        assert "Bonjour Camille," in words and "Bonjour Camille," in text
        assert '<html lang="fr"' in html
        assert text.endswith("\n") and "\n-- \n" in text  # RFC 3676 signature separator


def test_preheader_is_hidden_text_at_the_top_of_the_body(example_site: Site, example_course: Course) -> None:
    for step in example_course.steps:
        rendered = render_step(example_site, example_course, step)
        assert rendered.preheader and MARKER_PREFIX not in rendered.preheader
        _, html, _ = rendered.personalise(sample_values(example_site, example_course))
        body = html[html.index("<body") :]
        hidden = re.search(r'<div style="display:none;[^"]*">([^<]*)</div>', body)
        assert hidden is not None, step.key
        assert body.index(hidden.group(0)) < body.index('role="article"')
        assert unescape(hidden.group(1)) == rendered.preheader


def test_article_email_shows_a_card_with_label_time_and_button(
    rendered: dict[str, tuple[str, str, str]], example_course: Course
) -> None:
    step = next(s for s in example_course.steps if s.kind == "article")
    assert step.article is not None
    _, html, text = rendered[step.key]
    words = unescape(html)
    assert step.article.title in words
    assert step.article.label is not None
    assert f"{step.article.label.upper()} · {step.article.minutes} min de lecture" in text
    assert "Lire l'article" in words
    button = re.search(r'<a href="([^"]+)"[^>]*>\s*Lire l(?:\'|&#39;)article', html)
    assert button is not None and button.group(1).replace("&amp;", "&").startswith(step.article.url)


def test_every_content_link_is_absolute_and_tagged(
    rendered: dict[str, tuple[str, str, str]], example_course: Course
) -> None:
    footer = {f"{BASE}/{kind}/preview-token" for kind in ("unsubscribe", "preferences", "view")}
    seen = 0
    for key, (_, html, text) in rendered.items():
        text_urls = set(re.findall(r"https?://\S+", text))
        for url in [*_hrefs(html).hrefs, *text_urls]:
            if url in footer:
                continue
            seen += 1
            parts = urlsplit(url)
            assert parts.scheme == "https" and parts.netloc, url
            query = parse_qs(parts.query)
            assert query["utm_source"] == ["drip"], url
            assert query["utm_medium"] == ["email"], url
            assert query["utm_campaign"] == [example_course.slug], url
            assert query["utm_content"] == [key], url
    assert seen >= 3 * len(rendered)


def test_inline_css_ends_up_on_the_elements(rendered: dict[str, tuple[str, str, str]]) -> None:
    _, html, _ = rendered["deeper"]
    links = _hrefs(html)
    other = next(h for h in links.hrefs if "/gouvernance-decision/" in h)
    # email_templates/theme.j2 at the repository root sets the accent colour.
    assert "color: #0f5e57" in links.styles[other]
    footer = next(h for h in links.hrefs if "/unsubscribe/" in h)
    assert "color: #4a5557" in links.styles[footer]
    assert ".content a" not in html  # inlined, not left in a <style> block
    assert "@media only screen and (max-width: 480px)" in html  # MJML's responsive CSS stays in <head>
    assert "fonts.googleapis.com" not in html


def test_text_part_lists_every_link_of_the_closing_email(
    rendered: dict[str, tuple[str, str, str]], example_course: Course
) -> None:
    _, _, text = rendered["deeper"]
    for link in (*example_course.deeper, *example_course.other_pillars):
        assert link.text in text
        assert link.url + "?utm_source=drip" in text


# --- personalisation -----------------------------------------------------------------------------


def test_hostile_name_is_escaped_in_html_and_inert_in_text_and_subject(
    example_site: Site, example_course: Course
) -> None:
    step = dataclasses.replace(example_course.steps[1], subject="{{ name }}, ton article du jour")
    rendered = render_step(example_site, example_course, step)
    values = sample_values(example_site, example_course, name=HOSTILE_NAME)
    values["view_url"] = 'https://evil.example/"><script>x()</script>'
    subject, html, text = rendered.personalise(values)

    assert "<script>" not in html and "</script>" not in html
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#x27;Hara {{ 7*7 }} Bcc: evil@example.org"
        in html
    )
    assert 'href="https://evil.example/&quot;&gt;&lt;script&gt;x()&lt;/script&gt;"' in html
    assert "Hara 49" not in html and "Hara 49" not in text  # {{ 7*7 }} is never evaluated
    assert "\r" not in html and "\nBcc" not in html

    assert (
        subject == '<script>alert("x")</script> O\'Hara {{ 7*7 }} Bcc: evil@example.org, ton article du jour'
    )
    assert "\r" not in subject and "\n" not in subject
    assert 'Bonjour <script>alert("x")</script> O\'Hara {{ 7*7 }} Bcc: evil@example.org,' in text
    assert "\r" not in text and "\nBcc" not in text


def test_missing_name_falls_back_to_a_greeting(example_site: Site, example_course: Course) -> None:
    rendered = render_step(example_site, example_course, example_course.steps[0])
    values = sample_values(example_site, example_course)
    values["name"] = ""
    _, html, text = rendered.personalise(values)
    assert "Bonjour à toi," in unescape(html) and "Bonjour à toi," in text


def test_subscriber_attributes_and_defaults_become_slots(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    article = _default("article.mjml").replace(
        "{% block body %}",
        "{% block body %}<mj-section><mj-column><mj-text>Équipe {{ subscriber.attributes.company }} / "
        '{{ subscriber("attributes.role", "CTO") }}</mj-text></mj-column></mj-section>',
    )
    site = _site_with_templates(example_site, tmp_path, {"article.mjml": article})
    step = next(s for s in example_course.steps if s.kind == "article")
    rendered = render_step(site, example_course, step)
    assert {"attributes.company", "attributes.role"} <= rendered.html.slot_names
    _, html, _ = rendered.personalise({"attributes.company": "Acme & Fils"})
    assert "Équipe Acme &amp; Fils / CTO" in html


# --- render once ---------------------------------------------------------------------------------


def test_render_cache_compiles_each_step_once(example_site: Site, example_course: Course) -> None:
    cache = RenderCache()
    first = [cache(example_site, example_course, step) for step in example_course.steps]
    again = [cache(example_site, example_course, step) for step in example_course.steps]
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert len(cache) == len(example_course.steps)
    assert cache.get(example_site, example_course, "welcome") is first[0]

    # A reader of a language the course does not speak gets the course's own email, the same one.
    assert cache(example_site, example_course, example_course.steps[0], locale="en") is first[0]
    bilingual = _bilingual(example_course)
    english = cache(example_site, bilingual, bilingual.steps[0], locale="en")
    assert english is not first[0] and english.locale == "en"

    edited_step = dataclasses.replace(example_course.steps[0], subject="Un autre sujet")
    edited = dataclasses.replace(example_course, steps=(edited_step, *example_course.steps[1:]))
    fresh = cache(example_site, edited, edited_step)
    assert fresh is not first[0]
    assert fresh.personalise({})[0] == "Un autre sujet"


def test_personalising_never_runs_the_template_again(example_site: Site, example_course: Course) -> None:
    rendered = render_step(example_site, example_course, example_course.steps[1])
    names = [f"Lecteur {i}" for i in range(50)]
    outputs = [rendered.personalise({"name": n})[1] for n in names]
    # Only the slots differ: removing each reader's name gives the same document.
    assert len({out.replace(n, "") for out, n in zip(outputs, names, strict=True)}) == 1


# --- locales -------------------------------------------------------------------------------------


def _bilingual(course: Course) -> Course:
    """The course with English subjects and preheaders on every step, as a schedule would give them."""
    steps = tuple(
        dataclasses.replace(s, localised=(("en", f"EN {s.number}", f"EN preheader {s.number}"),))
        for s in course.steps
    )
    return dataclasses.replace(course, steps=steps, titles=(("en", "Understanding the CTO role"),))


def test_a_reader_gets_the_course_language_unless_the_schedule_speaks_theirs(
    example_site: Site, example_course: Course
) -> None:
    values = sample_values(example_site, example_course)
    french = render_step(example_site, example_course, example_course.steps[0], locale="en")
    subject, html, _ = french.personalise(values)
    assert french.locale == "fr" and '<html lang="fr"' in html and "Se désinscrire" in html
    assert "Unsubscribe" not in html and "Welcome to" not in unescape(html)
    assert subject.startswith("Bienvenue")
    # One step without English strings keeps the whole course in French.
    bilingual = _bilingual(example_course)
    partial = dataclasses.replace(bilingual, steps=(bilingual.steps[0], *example_course.steps[1:]))
    assert partial.locales == ("fr",)
    assert render_step(example_site, partial, partial.steps[0], locale="en").locale == "fr"
    assert bilingual.locales == ("fr", "en")
    assert bilingual.email_locale("en-GB") == "en" and bilingual.email_locale("de") == "fr"
    english = render_step(example_site, bilingual, bilingual.steps[0], locale="en")
    subject, html, _ = english.personalise(values)
    assert (english.locale, subject, english.preheader) == ("en", "EN 1", "EN preheader 1")
    assert "Welcome to “Understanding the CTO role”" in unescape(html)


def test_english_rendering_uses_the_english_catalogue(example_site: Site, example_course: Course) -> None:
    example_course = _bilingual(example_course)
    rendered = render_step(example_site, example_course, example_course.steps[-1], locale="en")
    _, html, text = rendered.personalise(sample_values(example_site, example_course))
    assert rendered.locale == "en"
    words = unescape(html)
    assert "You are receiving this email because you signed up for the course" in words
    assert "Unsubscribe" in words and "View in browser" in words and "Manage preferences" in words
    assert "Hi Camille," in text and "Unsubscribe: " in text
    assert '<html lang="en"' in html


def test_locale_choice_and_fallback() -> None:
    assert pick_locale("fr") == "fr"
    assert pick_locale("fr-CA") == "fr"
    assert pick_locale("en_GB") == "en"
    assert pick_locale("de") == "en"
    assert pick_locale(None) == "en"
    assert set(CATALOGUES["fr"]) == set(CATALOGUES["en"])
    assert messages("de")("unsubscribe") == "Unsubscribe"


# --- site overrides ------------------------------------------------------------------------------


def test_site_template_overrides_the_default(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    theme = _default("theme.j2").replace('accent = "#1d4ed8"', 'accent = "#8a1538"')
    footer_word = "Merci de nous lire"
    layout = _default("layout.mjml").replace(
        "{{ site.postal_address }}", footer_word + " — {{ site.postal_address }}"
    )
    site = _site_with_templates(example_site, tmp_path, {"theme.j2": theme, "layout.mjml": layout})
    _, html, _ = render_step(site, example_course, example_course.steps[1]).personalise({})
    assert "#8a1538" in html and "#0f5e57" not in html
    assert footer_word in unescape(html)


def test_defaults_apply_when_the_site_has_no_templates(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    site = Site(root=tmp_path, config=example_site.config)  # no email_templates/ at all
    _, html, _ = render_step(site, example_course, example_course.steps[1]).personalise({})
    assert "#1d4ed8" in html


# --- errors --------------------------------------------------------------------------------------


def test_template_syntax_error_names_file_and_line(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    broken = "{% extends 'layout.mjml' %}\n{% block body %}\n{% if article %}\n{% endblock %}\n"
    site = _site_with_templates(example_site, tmp_path, {"article.mjml": broken})
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[1])
    [problem] = caught.value.problems
    assert problem.file == tmp_path / "email_templates" / "article.mjml"
    assert problem.line == 4
    assert str(problem) == (
        f"{tmp_path}/email_templates/article.mjml:4: template syntax error: Encountered unknown tag "
        "'endblock'. You probably made a nesting mistake. Jinja is expecting this tag, but currently "
        "looking for 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."
    )


def test_unknown_mjml_tags_and_attributes_are_all_reported(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    article = (
        "{% extends 'layout.mjml' %}\n"
        "{% block body %}\n"
        "<mj-section>\n"
        "  <mj-column>\n"
        "    <mj-txt>{{ article.title }}</mj-txt>\n"
        '    <mj-button hre="{{ article.url }}">Lire</mj-button>\n'
        "  </mj-column>\n"
        "</mj-section>\n"
        "{% endblock %}\n"
    )
    site = _site_with_templates(example_site, tmp_path, {"article.mjml": article})
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[1])
    path = tmp_path / "email_templates" / "article.mjml"
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:5:5: unknown MJML tag <mj-txt> (did you mean 'mj-text'?)",
        f"{path}:6:5: unknown attribute 'hre' on <mj-button> (did you mean 'href'?)",
    ]


def test_unbalanced_mjml_is_reported_before_compiling(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    article = (
        "{% extends 'layout.mjml' %}\n{% block body %}\n<mj-section>\n  <mj-column>\n"
        '    <mj-image src="https://cto.example.org/x.png">\n  </mj-column>\n</mj-section>\n{% endblock %}\n'
    )
    site = _site_with_templates(example_site, tmp_path, {"article.mjml": article})
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[0])  # any step: every template is checked
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path}/email_templates/article.mjml:6:3: closing tag </mj-column> does not match an open tag, "
        "expected </mj-image>"
    ]


def test_mjml_that_does_not_compile_names_the_template(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    layout = _default("layout.mjml").rstrip("\n") + "\n<mj-raw></mj-raw>\n"
    site = _site_with_templates(example_site, tmp_path, {"layout.mjml": layout})
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[1])
    [problem] = caught.value.problems
    assert problem.message == "MJML does not compile: unable to parse next template in root template"
    assert problem.file == DEFAULTS_DIR / "article.mjml"
    assert problem.key == example_course.steps[1].key


def test_undefined_variable_and_unknown_subscriber_field_are_located(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    text = _default("article.txt").replace('{{ t("reply_invite") }}', "{{ artcle.title }}")
    mjml = _default("article.mjml").replace(
        '{{ paragraph(t("reply_invite")) }}', '{{ paragraph(subscriber("nmae")) }}'
    )
    site = _site_with_templates(example_site, tmp_path, {"article.txt": text})
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[1])
    [problem] = caught.value.problems
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if "artcle" in x))
    assert (problem.file, problem.line) == (tmp_path / "email_templates" / "article.txt", line)
    assert problem.message == "unknown variable 'artcle' in template article.txt"
    assert problem.hint == "did you mean 'article'?"

    other = tmp_path / "other"
    other.mkdir()
    site = _site_with_templates(example_site, other, {"article.mjml": mjml})
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[1])
    [problem] = caught.value.problems
    line = 1 + mjml.splitlines().index(next(x for x in mjml.splitlines() if "nmae" in x))
    assert (problem.file, problem.line) == (other / "email_templates" / "article.mjml", line)
    assert "unknown subscriber field 'nmae' (did you mean 'name'?)" in problem.message


def test_bad_subject_names_the_schedule_and_step(example_site: Site, example_course: Course) -> None:
    step = dataclasses.replace(example_course.steps[1], subject="Jour 2 — {{ name ")
    with pytest.raises(TemplateError) as caught:
        render_step(example_site, example_course, step)
    [problem] = caught.value.problems
    assert problem.key == f"{step.key}.subject"
    assert problem.file == example_course.schedule_path
    assert problem.message.startswith("template syntax error: ")


# --- pieces --------------------------------------------------------------------------------------


def test_mjml_source_and_sample_values(example_site: Site, example_course: Course) -> None:
    values = sample_values(example_site, example_course, name="Zoé", email="zoe@example.org")
    assert values == {
        "name": "Zoé",
        "email": "zoe@example.org",
        "unsubscribe_url": f"{BASE}/unsubscribe/preview-token",
        "preferences_url": f"{BASE}/preferences/preview-token",
        "view_url": f"{BASE}/view/preview-token",
    }
    source = mjml_source(example_site, example_course, example_course.steps[0])
    assert source.startswith('<mjml lang="fr">')
    assert "Bonjour Camille," in source and MARKER_PREFIX not in source
    assert lint(source) == []
    assert '<mj-style inline="inline">' in source


def test_lint_accepts_html_inside_mj_text_and_checks_mj_attributes() -> None:
    ok = (
        '<mjml><mj-head><mj-attributes><mj-all font-family="Arial" /></mj-attributes></mj-head>'
        "<mj-body><mj-section><mj-column><mj-text><p>Un <b>texte</b><br> libre</p></mj-text>"
        '<mj-image src="x.png" /><mj-divider /></mj-column></mj-section></mj-body></mjml>'
    )
    assert lint(ok) == []
    problems = lint('<mjml><mj-head><mj-attributes><mj-text colr="red" /></mj-attributes></mj-head></mjml>')
    assert [(p.message, p.hint) for p in problems] == [
        ("unknown attribute 'colr' on <mj-text>", "did you mean 'color'?")
    ]
    assert [p.message for p in lint("<mjml><mj-body>\n<mj-section>\n</mj-body></mjml>")] == [
        "closing tag </mj-body> does not match an open tag, expected </mj-section>"
    ]
    assert [str(p) for p in lint("<mjml>\n  <mj-body>")] == [
        "1:1: <mjml> is never closed",
        "2:3: <mj-body> is never closed",
    ]


def test_inline_styles_are_split_out_and_applied() -> None:
    source = (
        '<mjml><mj-head><mj-style inline="inline">.note div { letter-spacing: 2px; }</mj-style>'
        "<mj-style>.keep { color: red; }</mj-style></mj-head>"
        '<mj-body><mj-section><mj-column><mj-text css-class="note">x</mj-text></mj-column></mj-section>'
        "</mj-body></mjml>"
    )
    mjml, css = split_inline_css(source)
    assert css == ".note div { letter-spacing: 2px; }"
    assert "inline=" not in mjml and "<mj-style>.keep" in mjml
    html = to_html(source)
    assert re.search(r'<div style="[^"]*letter-spacing: 2px[^"]*">x</div>', html)
    assert ".keep { color: red; }" in html and ".note div" not in html


def test_text_tidy_keeps_the_signature_separator() -> None:
    assert tidy("\n\nBonjour  \r\n\n\n\nTexte\n-- \nPied   \n\n") == "Bonjour\n\nTexte\n-- \nPied\n"


def _with_section_step(course: Course) -> tuple[Course, Step]:
    """The example course with one more email for the pillar's first article section."""
    section = course.pillar.sections[0]
    articles = tuple(
        Article(url=BASE + link.url, title=link.text, description=None, label=None, minutes=7, date=None)
        for link in section.links
    )
    step = Step(
        key=f"section:{section.slug}",
        kind="section",
        number=len(course.steps) + 1,
        day=course.steps[-1].day + 2,
        subject=f"Thème : {section.title}",
        preheader="Une sélection d'articles",
        section=section,
        section_articles=articles,
    )
    return dataclasses.replace(course, steps=(*course.steps, step)), step


def test_section_email_lists_the_section_articles(example_site: Site, example_course: Course) -> None:
    course, step = _with_section_step(example_course)
    assert step.section is not None
    subject, html, text = render_step(example_site, course, step).personalise(
        sample_values(example_site, course)
    )
    assert subject == f"Thème : {step.section.title}"
    for part in (unescape(html), text):
        assert step.section.title in part
        assert "Une sélection d'articles sur ce thème :" in part
        for article in step.section_articles:
            assert article.title in part
            assert "7 min de lecture" in part.lower()
    hrefs = [h for h in _hrefs(html).hrefs if "/posts/" in h]
    assert hrefs and all("utm_content=section%3Acomprendre-les-roles" in h for h in hrefs)


def test_every_step_speaks_english_when_asked(example_site: Site, example_course: Course) -> None:
    course, _ = _with_section_step(example_course)
    course = _bilingual(course)
    french = [
        CATALOGUES["fr"][k]
        for k in ("unsubscribe", "preferences", "read_article", "sign_off", "welcome_plan")
    ]
    for step in course.steps:
        _, html, text = render_step(example_site, course, step, locale="en").personalise({"name": "Sam"})
        for part in (unescape(html), text):
            assert "Hi Sam," in part and "Unsubscribe" in part, step.key
            assert not [word for word in french if word in part], step.key


def test_an_edited_template_is_picked_up_by_the_next_render(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    theme = _default("theme.j2")
    site = _site_with_templates(example_site, tmp_path, {"theme.j2": theme.replace("#1d4ed8", "#8a1538")})
    assert "#8a1538" in render_step(site, example_course, example_course.steps[1]).personalise({})[1]
    path = tmp_path / "email_templates" / "theme.j2"
    path.write_text(theme.replace("#1d4ed8", "#0b5394"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    html = render_step(site, example_course, example_course.steps[1]).personalise({})[1]
    assert "#0b5394" in html and "#8a1538" not in html


def _luminance(colour: str) -> float:
    channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _colour(theme: jinja2.environment.TemplateModule, name: str) -> str:
    """A colour the theme sets with ``{% set %}``: a template module's names are only known at run time."""
    value = getattr(theme, name)
    assert isinstance(value, str)
    return value


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("folder", [DEFAULTS_DIR, Path(__file__).resolve().parent.parent / "email_templates"])
def test_theme_colours_pass_wcag_aa(folder: Path) -> None:
    """Text on its background: 4.5:1 at least (WCAG 2.1 AA for body text)."""
    theme = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder))).get_template("theme.j2").module
    pairs = {
        "text on card": ("text", "card_bg"),
        "text on highlight": ("text", "highlight_bg"),
        "muted on page": ("muted", "page_bg"),
        "muted on highlight": ("muted", "highlight_bg"),
        "accent links on card": ("accent", "card_bg"),
        "button text": ("accent_text", "accent"),
        "label on highlight": ("label", "highlight_bg"),
    }
    contrasts = {name: _contrast(_colour(theme, fg), _colour(theme, bg)) for name, (fg, bg) in pairs.items()}
    weak = {name: round(ratio, 2) for name, ratio in contrasts.items() if ratio < 4.5}
    assert not weak


@pytest.mark.browser
def test_emails_fit_a_phone_and_read_at_16px(
    browser: Browser, example_site: Site, example_course: Course
) -> None:
    """In a real browser at 600 and 375 px: no sideways scrolling, body text 16px or more, a visible button."""
    course, _ = _with_section_step(example_course)
    values = sample_values(example_site, course)
    pages = {s.key: render_step(example_site, course, s).personalise(values)[1] for s in course.steps}
    for width in (600, 375):
        page = browser.new_page(viewport={"width": width, "height": 800})
        try:
            for key, html in pages.items():
                page.set_content(html)
                assert page.evaluate("document.documentElement.scrollWidth") <= width, (key, width)
                sizes = page.evaluate(
                    """() => [...document.querySelectorAll('.content *')]
                        .filter(e => [...e.childNodes].some(
                            n => n.nodeType === Node.TEXT_NODE && n.textContent.trim().length > 40))
                        .map(e => parseFloat(getComputedStyle(e).fontSize))"""
                )
                assert sizes and min(sizes) >= 16, (key, width, sizes)
                hidden = page.evaluate("getComputedStyle(document.body.firstElementChild).display")
                assert hidden == "none", key  # the preheader
                if key != "deeper":
                    box = (
                        page.locator("a[target=_blank]")
                        .filter(has_text=re.compile("Lire"))
                        .first.bounding_box()
                    )
                    assert box is not None and box["height"] >= 40 and box["x"] + box["width"] <= width
        finally:
            page.close()


def test_missing_included_template_is_located(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    text = _default("article.txt").replace('{{ t("reply_invite") }}', '{% include "signature.txt" %}')
    site = _site_with_templates(example_site, tmp_path, {"article.txt": text})
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[1])
    [problem] = caught.value.problems
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if "signature.txt" in x))
    assert str(problem) == (
        f"{tmp_path}/email_templates/article.txt:{line}: {example_course.steps[1].key}: "
        "template not found: signature.txt"
    )


# --- MJML structure ------------------------------------------------------------------------------


def test_nesting_rules_follow_the_mjml_documentation() -> None:
    from drip.render.mjml import CHILDREN

    assert CHILDREN["mj-body"] == {"mj-wrapper", "mj-section", "mj-hero", "mj-raw"}
    assert CHILDREN["mj-wrapper"] == {"mj-section", "mj-hero", "mj-raw"}
    assert CHILDREN["mj-section"] == {"mj-column", "mj-group", "mj-raw"}
    assert "mj-spacer" in CHILDREN["mj-column"] and "mj-spacer" in CHILDREN["mj-hero"]
    problems = lint("<mjml><mj-body><mj-wrapper>\n<mj-spacer /></mj-wrapper></mj-body></mjml>")
    assert [str(p) for p in problems] == [
        "2:1: <mj-spacer> is not allowed inside <mj-wrapper>; it belongs in <mj-column>, <mj-hero>"
    ]
    assert [p.message for p in lint("<mjml><mj-body><mj-column></mj-column></mj-body></mjml>")] == [
        "<mj-column> is not allowed inside <mj-body>; it belongs in <mj-group>, <mj-section>"
    ]


def test_every_default_template_nests_as_mjml_requires(example_site: Site, example_course: Course) -> None:
    course, _ = _with_section_step(example_course)
    for step in course.steps:
        assert lint(mjml_source(example_site, course, step)) == [], step.key


def test_a_site_template_that_nests_wrongly_is_reported_with_its_file(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    components = _default("components.mjml").replace(
        '<mj-section padding="0">\n  <mj-column>\n    <mj-spacer height="16px" />\n  </mj-column>\n</mj-section>',
        '<mj-spacer height="16px" />',
    )
    site = _site_with_templates(example_site, tmp_path, {"components.mjml": components})
    article = example_course.steps[1]
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, article)
    [problem] = caught.value.problems
    assert problem.file == DEFAULTS_DIR / "article.mjml"
    assert problem.key == article.key
    assert problem.message.startswith(
        "MJML is not valid: <mj-spacer> is not allowed inside <mj-wrapper>; it belongs in <mj-column>, <mj-hero>"
    )


def test_reading_time_reads_in_hours_from_sixty_minutes() -> None:
    assert messages("fr")("reading_time", minutes=60) == "1 h de lecture"
    assert messages("fr")("reading_time", minutes=90) == "1 h 30 de lecture"
    assert messages("en")("reading_time", minutes=90) == "1 h 30 min read"
    assert messages("en")("reading_time", minutes=12) == "12 min read"


def test_every_unknown_variable_of_every_template_is_reported_at_once(
    example_site: Site, example_course: Course, tmp_path: Path
) -> None:
    site = _site_with_templates(
        example_site,
        tmp_path,
        {
            "welcome.mjml": _default("welcome.mjml").replace('{{ t("welcome_plan") }}', "{{ nmae }}"),
            "closing.txt": _default("closing.txt") + "{{ corse.title }} {% if pilar %}x{% endif %}\n",
        },
    )
    with pytest.raises(TemplateError) as caught:
        render_step(site, example_course, example_course.steps[1])  # any step: every template is checked
    folder = tmp_path / "email_templates"
    closing_line = len(_default("closing.txt").splitlines()) + 1
    assert sorted((p.file, p.line, p.message, p.hint) for p in caught.value.problems) == sorted(
        [
            (
                folder / "closing.txt",
                closing_line,
                "unknown variable 'corse' in template closing.txt",
                "did you mean 'course'?",
            ),
            (
                folder / "closing.txt",
                closing_line,
                "unknown variable 'pilar' in template closing.txt",
                "did you mean 'pillar'?",
            ),
            (
                folder / "welcome.mjml",
                12,
                "unknown variable 'nmae' in template welcome.mjml",
                "did you mean 'name'?",
            ),
        ]
    )


def test_subject_names_are_what_a_step_context_holds(example_site: Site, example_course: Course) -> None:
    from drip.course.schedule import SUBJECT_NAMES
    from drip.render.steps import _context, _Linker, course_context
    from drip.render.templates import SlotRecorder, environment

    env = environment(example_site.templates_dir)
    shared = course_context(example_site, example_course, "fr", env)
    step, recorder = example_course.steps[1], SlotRecorder()
    linker = _Linker(example_site, example_course, step, recorder)
    context = _context(example_site, example_course, step, shared, recorder, linker)
    assert set(context) == SUBJECT_NAMES
