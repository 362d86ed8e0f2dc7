"""YAML that would take drip down: alias bombs, self-referring aliases, deep nesting, complex keys.

Every YAML drip reads (drip.yaml, schedules, front matter) goes through one walker that bounds what
aliases may expand to; each bomb is a located error from `drip check`, with memory that stays small
(unbounded, the billion laughs reach gigabytes; the self-referring alias never ends).
"""

from __future__ import annotations

import resource
import shutil
import tracemalloc
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from drip.cli import authoring, cli  # noqa: F401  (modules register their commands)
from drip.inputs.yamlfile import MAX_VALUES, parse_yaml

REPO = Path(__file__).resolve().parents[1]

LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)),
        "bomb: *i",
    ]
)
RECURSIVE = "a: &loop [1, *loop]\n"
DEEP = "a: " + "[" * 5000 + "]" * 5000 + "\n"
COMPLEX_KEY = "? &k [1, 2]\n: value\n"


@pytest.mark.parametrize(
    "text", [LAUGHS, RECURSIVE, DEEP, COMPLEX_KEY], ids=["laughs", "loop", "deep", "key"]
)
def test_the_walker_refuses_each_bomb_in_little_memory(text: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(yaml.YAMLError) as caught:
            parse_yaml(text, Path("x.yaml"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024  # bytes: the bound stops expansion long before gigabytes
    assert "Recursion" not in type(caught.value).__name__


def test_ordinary_aliases_still_work() -> None:
    data, _ = parse_yaml("base: &b {time: '08:30'}\none: *b\ntwo: *b\n")
    assert data == {"base": {"time": "08:30"}, "one": {"time": "08:30"}, "two": {"time": "08:30"}}


def test_an_expansion_just_under_the_bound_is_accepted() -> None:
    items = ",".join(["1"] * 999)
    text = f"a: &a [{items}]\nb: [{','.join(['*a'] * 50)}]\n"
    data, _ = parse_yaml(text)
    assert len(data["b"]) == 50 and len(data["b"][0]) == 999
    assert MAX_VALUES > 50 * 999


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(REPO / "drip.yaml", root / "drip.yaml")
    for folder in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO / folder, root / folder)
    monkeypatch.chdir(root)
    monkeypatch.delenv("DRIP_DATABASE_URL", raising=False)
    return root


def check(site: Path) -> tuple[int, str, int]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = CliRunner().invoke(cli, ["--site", str(site), "check"])
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output, grown


@pytest.mark.parametrize("bomb", [LAUGHS, RECURSIVE, DEEP], ids=["laughs", "loop", "deep"])
def test_a_bomb_in_drip_yaml_is_a_located_error(site: Path, bomb: str) -> None:
    original = (site / "drip.yaml").read_text(encoding="utf-8")
    (site / "drip.yaml").write_text(original + "\nextra:\n  " + bomb.replace("\n", "\n  ") + "\n")
    code, output, grown = check(site)
    assert code == 1
    assert "drip.yaml:" in output and "YAML" in output
    assert "Traceback" not in output
    assert grown < 200_000  # KiB: no gigabytes


@pytest.mark.parametrize("bomb", [LAUGHS, RECURSIVE], ids=["laughs", "loop"])
def test_a_bomb_in_front_matter_is_a_located_error(site: Path, bomb: str) -> None:
    post = next((site / "content" / "posts").glob("*.md"))
    text = post.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    post.write_text("---\n" + bomb + "\n" + text[4:], encoding="utf-8")
    code, output, grown = check(site)
    assert code == 1
    assert f"{post.name}:" in output and "YAML refused" in output
    assert grown < 200_000


def test_a_bomb_in_a_schedule_is_a_located_error(site: Path) -> None:
    schedule = next((site / "schedules").glob("*.yaml"))
    schedule.write_text(schedule.read_text(encoding="utf-8") + "\n" + LAUGHS + "\n", encoding="utf-8")
    code, output, _ = check(site)
    assert code == 1
    assert f"{schedule.name}:" in output and "YAML refused" in output
