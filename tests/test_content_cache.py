"""The content cache: a second run reads what the first parsed, and never trusts a bad entry."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from hugo_support import NOW, copy_hugo_site

from drip.config import load_site
from drip.content import cache as content_cache
from drip.content import load_content, source
from drip.content.cache import CACHE_DIR, ContentCache, decode, encode
from drip.content.source import read_source
from drip.preview.checks import check_site


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return copy_hugo_site(tmp_path)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files whose text was parsed (not taken from the cache), in order."""
    seen: list[Path] = []
    original = source._parse

    def counting(path: Path, text: str) -> source.Source:
        seen.append(path)
        return original(path, text)

    monkeypatch.setattr(source, "_parse", counting)
    return seen


def cache_file(root: Path) -> Path:
    (found,) = (root / CACHE_DIR).glob("content-*.json")
    return found


def report_lines(root: Path) -> list[str]:
    report = check_site(load_site(root), now=NOW)
    return [report.summary(), *map(str, report.errors), *map(str, report.warnings)]


def test_a_warm_cache_gives_what_a_cold_run_gives(site: Path, parses: list[Path]) -> None:
    content = site / "content" / "en"
    cold = load_content(content, now=NOW, cache_dir=site / CACHE_DIR)
    cold_parses = len(parses)
    warm = load_content(content, now=NOW, cache_dir=site / CACHE_DIR)
    assert warm == cold
    assert cold_parses > 0 and len(parses) == cold_parses  # nothing parsed again
    first = report_lines(site)
    assert report_lines(site) == first
    shutil.rmtree(site / CACHE_DIR)
    assert report_lines(site) == first


def test_front_matter_values_and_positions_come_back_equal(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "---\ntitle: T\ndate: 2026-01-02\nwhen: 2026-01-02T10:00:00+02:00\n"
        "nested: {a: [1, 2.5, true, null], b: {c: x}}\n---\nBody\n",
        encoding="utf-8",
    )
    cache = ContentCache.load(tmp_path / CACHE_DIR)
    cold = read_source(page, cache)
    cache.save()
    warm = read_source(page, ContentCache.load(tmp_path / CACHE_DIR))
    assert (warm.meta, warm.body, warm.body_line, warm.digest) == (
        cold.meta,
        cold.body,
        cold.body_line,
        cold.digest,
    )
    assert (warm.positions.nodes, warm.positions.keys) == (cold.positions.nodes, cold.positions.keys)
    assert warm.meta["date"] == dt.date(2026, 1, 2)
    assert warm.positions.find(("nested", "b", "c")) == cold.positions.find(("nested", "b", "c"))


def test_editing_one_file_parses_only_that_file_again(site: Path, parses: list[Path]) -> None:
    content = site / "content" / "en"
    load_content(content, now=NOW, cache_dir=site / CACHE_DIR)
    before = json.loads(cache_file(site).read_text(encoding="utf-8"))["entries"]
    edited = content / "about.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    parses.clear()
    index = load_content(content, now=NOW, cache_dir=site / CACHE_DIR)
    assert parses == [edited]
    after = json.loads(cache_file(site).read_text(encoding="utf-8"))["entries"]
    assert len(set(before) - set(after)) == 1 and len(set(after) - set(before)) == 1  # only its entry
    assert all(after[key] == before[key] for key in set(before) & set(after))
    assert index == load_content(content, now=NOW)  # the edit is read, not the stale entry


@pytest.mark.parametrize(
    "corrupt",
    [
        "{not json",
        "",
        '{"format": 1, "entries": {}}',  # an older format
        "[1, 2, 3]",
    ],
)
def test_a_corrupt_or_old_cache_file_is_ignored_and_rebuilt(site: Path, corrupt: str) -> None:
    first = report_lines(site)
    cache_file(site).write_text(corrupt, encoding="utf-8")
    assert report_lines(site) == first
    assert json.loads(cache_file(site).read_text(encoding="utf-8"))["format"] == content_cache.FORMAT


def test_a_cache_that_cannot_be_read_or_written_is_no_cache(site: Path) -> None:
    first = report_lines(site)
    shutil.rmtree(site / CACHE_DIR)
    (site / CACHE_DIR).write_text("not a folder", encoding="utf-8")
    assert report_lines(site) == first
    shutil.rmtree(site / CACHE_DIR, ignore_errors=True)
    (site / CACHE_DIR).unlink()
    report_lines(site)
    cache_file(site).write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")  # too deep for json
    assert report_lines(site) == first


def test_corrupt_entries_are_misses_never_a_traceback(site: Path, parses: list[Path]) -> None:
    first = report_lines(site)
    path = cache_file(site)
    data = json.loads(path.read_text(encoding="utf-8"))
    bad_values = [
        {"s": [1, 2]},
        {"s": [{"t": "not a date"}, [], [], 0, 0, 0]},
        {"s": [{"m": {}}, [["a", "b"]], [], 0, 0, 0], "f": ["t", "d", "ten"]},
        {"s": [{"m": {"title": {"x": 1}}}, [], [], 0, 0, 0]},
        {"s": [{"m": {}}, [], [], True, 0, 0]},
        "garbage",
    ]
    for key, bad in zip(data["entries"], bad_values * len(data["entries"]), strict=False):
        data["entries"][key] = bad
    path.write_text(json.dumps(data), encoding="utf-8")
    parses.clear()
    assert report_lines(site) == first
    assert parses  # the bad entries were parsed again


def test_values_json_cannot_hold_are_not_cached(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("---\ntitle: T\nlogo: !!binary aGVsbG8=\n---\nBody\n", encoding="utf-8")
    cache = ContentCache.load(tmp_path / CACHE_DIR)
    src = read_source(page, cache)
    assert src.meta["logo"] == b"hello"
    assert cache.split(src.digest) is None


@pytest.mark.parametrize(
    "value",
    [
        {"m": "not a tag"},
        {"m": {"a": 1}, "d": "2026-01-01"},
        {"x": "2026-01-01"},
        {"d": 20260101},
    ],
)
def test_a_mapping_a_site_writes_never_passes_for_a_tag(value: object) -> None:
    assert decode(encode(value)) == value
    with pytest.raises((ValueError, TypeError)):
        decode(value)
