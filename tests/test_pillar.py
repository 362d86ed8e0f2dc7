"""Pillar pages read into Pillar: the seed page, several page shapes, and located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from drip.content import read_pillar
from drip.content.duration import label_and_minutes
from drip.content.models import Link
from drip.errors import ContentError, Problem

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "content" / "le-role-du-cto.md"
PILLARS = Path(__file__).resolve().parent / "fixtures" / "pillars"


def write(tmp_path: Path, text: str, name: str = "pilier.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, heading: str | None = None) -> list[Problem]:
    with pytest.raises(ContentError) as caught:
        read_pillar(path, heading=heading)
    return caught.value.problems


# --- the seed pillar ---------------------------------------------------------------------------


def test_seed_pillar_reading_path() -> None:
    pillar = read_pillar(SEED)
    assert pillar.slug == "le-role-du-cto"
    assert pillar.url == "/le-role-du-cto/"
    assert pillar.title == "Le rôle du CTO"
    assert pillar.description == "Comprendre ce que ce rôle implique vraiment, au-delà du titre."
    assert pillar.intro.startswith("Tu portes ou vises le rôle de CTO.")
    assert pillar.intro.endswith("les défis, et les chemins possibles.")
    assert pillar.reading_path_heading == "Par où commencer"
    assert [(i.url, i.label, i.minutes) for i in pillar.reading_path] == [
        ("/posts/cto-vs-lead-dev-vp-engineering-differences-role/", "Fondamental", 10),
        ("/posts/premiers-jours-cto-reussir-prise-de-poste/", "Posture", 15),
        ("/posts/vision-technique-roadmap-cto-strategy/", "Terrain", 20),
    ]
    first = pillar.reading_path[0]
    assert first.title == "CTO vs Lead Dev vs VP Engineering : Comprendre les différences"
    assert first.group == "Si tu découvres ce sujet :"
    assert first.notes == ()
    # Line numbers are the file's, front matter included.
    lines = SEED.read_text(encoding="utf-8").splitlines()
    for item in pillar.reading_path:
        assert item.line is not None
        assert item.url in lines[item.line - 1]


def test_seed_pillar_sections_deeper_and_other_pillars() -> None:
    pillar = read_pillar(SEED)
    assert [(s.title, s.slug, s.level) for s in pillar.sections] == [
        ("Comprendre les rôles", "comprendre-les-roles", 3),
        ("Les premiers pas", "les-premiers-pas", 3),
        ("Recruter et construire son équipe", "recruter-et-construire-son-equipe", 3),
    ]
    assert [link.url for link in pillar.sections[1].links] == [
        "/posts/premiers-jours-cto-reussir-prise-de-poste/",
        "/posts/vision-technique-roadmap-cto-strategy/",
    ]
    assert pillar.sections[2].links == (
        Link(
            "/posts/recruter-equipe-technique-cto-hiring-strategies/",
            "Recruter une équipe technique : Stratégies de hiring pour CTO",
        ),
    )
    assert [link.url for link in pillar.deeper] == [
        "/guides-livres/etre-ou-ne-pas-etre-cto/",
        "/guides-livres/",
    ]
    assert pillar.deeper[0].text == "Être ou ne pas être CTO"
    assert pillar.deeper_text.startswith("Le livre Être ou ne pas être CTO explore en profondeur")
    assert pillar.other_pillars == (
        Link(
            "/gouvernance-decision/",
            "Gouvernance & décision",
            "Prendre des décisions qui tiennent la route dans le temps",
        ),
        Link(
            "/culture-management/",
            "Culture & management",
            "Construire une culture d'équipe qui fait grandir, pas qui épuise",
        ),
        Link(
            "/trouver-sa-place/",
            "Trouver sa place",
            "Des repères pour s'orienter sans se raconter d'histoires",
        ),
    )
    assert pillar.front_matter["title"] == "Le rôle du CTO"


# --- page shapes -------------------------------------------------------------------------------


def test_start_here_in_english_at_level_two() -> None:
    pillar = read_pillar(PILLARS / "start-here.md")
    assert pillar.url == "/leadership/"  # front matter url wins
    assert pillar.reading_path_heading == "Start here"
    assert [(i.title, i.label, i.minutes) for i in pillar.reading_path] == [
        ("Your first 1:1s", "Practice", 8),
        ("Writing a team charter", None, 12),
        ("Delegation without abdication", None, 45),
    ]
    assert [i.line for i in pillar.reading_path] == [17, 18, 19]
    assert pillar.intro == (
        "You manage engineers, or you are about to.\n\nThis page gathers what helps most in the first year."
    )
    # The bold resource is the main one, even when written second.
    assert [link.url for link in pillar.deeper] == ["/books/leadership/", "/guides/handbook/"]
    assert pillar.other_pillars == (
        Link("/hiring/", "Hiring", "Build a team on purpose"),
        Link("/culture/", "Culture", "Values people can see"),
    )


def test_par_ou_commencer_at_level_four_with_hours_and_no_time() -> None:
    pillar = read_pillar(PILLARS / "par-ou-commencer-h4.md")
    assert pillar.title == "Architecture au quotidien"  # no front matter: the first heading
    assert pillar.url == "/par-ou-commencer-h4/"
    assert pillar.description == "Des repères pour décider de l'architecture sans tout figer."
    assert pillar.reading_path_heading == "Par où commencer ?"
    assert [(i.label, i.minutes) for i in pillar.reading_path] == [(None, 60), (None, None), ("Atelier", 90)]
    (decider,) = pillar.sections
    assert decider.text == "Comment trancher sans regretter."
    assert decider.links == (Link("/posts/adr-en-pratique/", "Les ADR en pratique", "un format court"),)
    assert [(s.title, s.level, s.links[0].url) for s in decider.subsections] == [
        ("Outils", 4, "/posts/modele-adr/")
    ]


def test_nested_sub_items_are_notes_and_lead_ins_are_groups() -> None:
    pillar = read_pillar(PILLARS / "nested-notes.md")
    first, second, third = pillar.reading_path
    assert first.notes == (
        "Prépare trois questions ouvertes",
        "Écoute plus que tu ne parles",
        "Note ce que tu promets",
    )
    assert (first.minutes, second.notes) == (10, ())
    assert third.notes == ("Un cas réel, étape par étape.",)
    assert [i.group for i in pillar.reading_path] == [
        "Si tu débutes :",
        "Si tu débutes :",
        "Si tu es déjà en poste :",
    ]
    assert pillar.intro == ""  # the lead-ins belong to the reading path, not the intro


def test_external_absolute_links_are_kept_as_written() -> None:
    pillar = read_pillar(PILLARS / "external-links.md")
    assert [i.url for i in pillar.reading_path] == [
        "https://teamtopologies.com/key-concepts",
        "https://example.com/posts/premier-post/?ref=pillar#debut",
        "https://martinfowler.com/architecture/",
    ]
    assert [(i.label, i.minutes) for i in pillar.reading_path] == [
        ("Fondamental", 15),
        ("Pratique", 5),
        (None, 30),
    ]


def test_front_matter_reading_path_wins_over_the_body() -> None:
    pillar = read_pillar(PILLARS / "front-matter-path.md")
    assert pillar.reading_path_heading == "reading_path"
    assert [i.url for i in pillar.reading_path] == [
        "/posts/premier-post/",
        "/posts/absent/",
        "/posts/second-post/",
    ]
    first, second, third = pillar.reading_path
    # No title in front matter: the body's link text for the same URL.
    assert (first.title, first.label, first.minutes, first.line) == (
        "Le premier post, vu du pilier",
        "Fondamental",
        10,
        4,
    )
    assert (second.title, second.minutes, second.notes, second.group) == (
        "Un article à venir",
        90,
        ("Lire avant l'atelier",),
        "Pour aller vite",
    )
    assert (third.title, third.minutes, third.line) == ("/posts/second-post/", None, 12)


def test_explicit_heading_wins_over_front_matter() -> None:
    pillar = read_pillar(PILLARS / "front-matter-path.md", heading="Par où commencer")
    assert [i.url for i in pillar.reading_path] == ["/posts/ignore/"]


def test_links_to_missing_posts_are_still_items() -> None:
    pillar = read_pillar(PILLARS / "missing-posts.md")
    assert [(i.title, i.label, i.minutes) for i in pillar.reading_path] == [
        ("Un article qui existe", "Fondamental", None),
        ("Un article jamais écrit", "Terrain", 20),
        ("Un autre absent", None, None),
    ]


def test_custom_heading_name() -> None:
    path = PILLARS / "custom-heading.md"
    pillar = read_pillar(path, heading="mon parcours conseille")  # case and accents do not matter
    assert pillar.reading_path_heading == "Mon parcours conseillé"
    assert [(i.url, i.label, i.minutes) for i in pillar.reading_path] == [
        ("/posts/etape-une/", "Découverte", 5),
        ("/posts/etape-deux/", "Approfondissement", 25),
    ]
    assert pillar.intro == "Une page qui nomme son parcours autrement."
    # The default names do not find it.
    (problem,) = problems_of(path)
    assert problem.message.startswith("no reading path: no heading 'Par où commencer'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("— Fondamental (10 min)", ("Fondamental", 10)),
        ("— Practice, 8 min", ("Practice", 8)),
        ("~12 min read", (None, 12)),
        ("(1 h)", (None, 60)),
        ("(1 h 30)", (None, 90)),
        ("(1h30)", (None, 90)),
        ("(45 minutes)", (None, 45)),
        ("— Terrain (20 min de lecture)", ("Terrain", 20)),
        ("— Top 5 des erreurs", ("Top 5 des erreurs", None)),
        ("", (None, None)),
    ],
)
def test_label_and_minutes_shapes(text: str, expected: tuple[str | None, int | None]) -> None:
    assert label_and_minutes(text) == expected


# --- errors ------------------------------------------------------------------------------------


def test_broken_yaml_front_matter_is_located_in_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, '---\ntitle: "Le rôle\ndescription: x\n---\n\n## Par où commencer\n\n1. [A](/a/)\n'
    )
    (problem,) = problems_of(path)
    assert str(problem) == (
        f"{path}:4:1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar) "
        "(it starts at line 2, column 8)"
    )


def test_yaml_error_inside_front_matter_points_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "---\ntitle: Pilier\ndescription: un: deux\n---\n\n## Start here\n\n- [A](/a/)\n")
    (problem,) = problems_of(path)
    assert (problem.line, problem.column) == (3, 16)  # the second colon
    assert problem.message == "invalid YAML: mapping values are not allowed here"


def test_front_matter_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "---\n- un\n- deux\n---\n\n## Par où commencer\n\n1. [A](/a/)\n")
    (problem,) = problems_of(path)
    assert str(problem) == f"{path}:2:1: front matter must be a mapping of keys (title: …), got a list"


def test_scalar_front_matter_is_not_a_mapping_either(tmp_path: Path) -> None:
    path = write(tmp_path, "---\n\nle rôle du CTO\n---\n\n## Par où commencer\n\n1. [A](/a/)\n")
    (problem,) = problems_of(path)
    assert (problem.line, problem.message) == (
        3,
        "front matter must be a mapping of keys (title: …), got a string",
    )


def test_heading_not_found_lists_headings_and_suggests_the_closest(tmp_path: Path) -> None:
    path = write(
        tmp_path, "---\ntitle: T\n---\n\n## Le sujet\n\nTexte.\n\n## Par ou comencer\n\n1. [A](/a/)\n"
    )
    (problem,) = problems_of(path)
    assert str(problem) == (
        f"{path}:9:1: no reading path: no heading 'Par où commencer' or 'Commencer ici' or 'Start here' "
        "or 'Where to start', and no reading_path in front matter; "
        "headings in this file: 'Le sujet', 'Par ou comencer' (did you mean 'Par ou comencer'?)"
    )


def test_named_heading_not_found(tmp_path: Path) -> None:
    path = write(tmp_path, "# Pilier\n\n## Mon parcours conseillé\n\n- [A](/a/)\n")
    (problem,) = problems_of(path, heading="Mon parcour conseille")
    # Folded forms differ by one letter: suggested, not silently accepted.
    assert problem.message == (
        "no heading 'Mon parcour conseille' for the reading path; "
        "headings in this file: 'Pilier', 'Mon parcours conseillé'"
    )
    assert (problem.line, problem.hint) == (3, "did you mean 'Mon parcours conseillé'?")


def test_empty_reading_path(tmp_path: Path) -> None:
    path = write(tmp_path, "---\ntitle: T\n---\n\n## Start here\n\nNothing yet.\n\n## Articles\n")
    (problem,) = problems_of(path)
    assert (
        str(problem)
        == f"{path}:5:1: reading path under heading 'Start here' is empty: add a list of links below it"
    )


def test_item_without_a_link(tmp_path: Path) -> None:
    path = write(tmp_path, "## Par où commencer\n\n1. [A](/a/)\n2. Rien à lire\n3. [B](/b/)\n")
    (problem,) = problems_of(path)
    assert str(problem) == f"{path}:4:1: reading path item 'Rien à lire' has no link"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '---\ntitle: "x\n---\n\n## Ailleurs\n\n1. Pas de lien\n')
    problems = problems_of(path)
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (3, "invalid YAML"),
        (5, "no reading path"),
    ]


def test_front_matter_reading_path_is_validated_with_locations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "---\nreading_path:\n  - url: /a/\n    minuts: 5\n  - url: /b/\n    minutes: bientôt\n  - 42\n---\n",
    )
    problems = problems_of(path)
    assert [str(p) for p in problems] == [
        f"{path}:4:5: reading_path.0.minuts: unknown key (did you mean 'minutes'?)",
        f"{path}:6:14: reading_path.1.minutes: expected a number of minutes or a duration like '10 min', "
        "got 'bientôt'",
        f"{path}:7:5: reading_path.2: expected a URL or a mapping with url (or ref), title, label, minutes, notes, group; "
        "got 42",
    ]


def test_front_matter_minutes_take_the_spellings_posts_take(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '---\nreading_path:\n  - url: /a/\n    minutes: "12"\n  - url: /b/\n    minutes: 1 h 30\n'
        "  - url: /c/\n    minutes: 7\n---\n",
    )
    assert [item.minutes for item in read_pillar(path).reading_path] == [12, 90, 7]


def test_empty_front_matter_reading_path(tmp_path: Path) -> None:
    path = write(tmp_path, "---\nreading_path: []\n---\n\n## Par où commencer\n\n1. [A](/a/)\n")
    (problem,) = problems_of(path)
    assert str(problem) == f"{path}:2:15: reading_path: reading path is empty: list at least one link"


def test_unclosed_front_matter(tmp_path: Path) -> None:
    path = write(tmp_path, "---\ntitle: x\n\n## Par où commencer\n\n1. [A](/a/)\n")
    (problem,) = problems_of(path)
    assert str(problem) == f"{path}:1:1: front matter opened with '---' is never closed"


def test_a_front_matter_key_written_twice_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "pillar.md"
    page.write_text(
        "---\ntitle: Premier titre\ndescription: x\ntitle: Second titre\n---\n\n"
        "## Par où commencer\n\n1. **[A](/posts/a/)** — Fondamental (5 min)\n",
        encoding="utf-8",
    )
    with pytest.raises(ContentError) as caught:
        read_pillar(page)
    assert [str(p) for p in caught.value.problems] == [
        f"{page}:4:1: title: appears twice (first on line 2); merge both into one"
    ]
