"""What the fuzz suites share: settings, malformed-input strategies and a digest of the store.

Every strategy starts from a real file of the example site (or a real request body) and breaks it the
way people and programs do: characters and lines inserted, deleted, replaced or repeated; values of
the wrong type, unknown keys, huge numbers; unicode, NUL, lone surrogates, bytes that are not UTF-8,
byte order marks, CRLF line ends. Random text and bytes are mixed in too.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from drip.errors import InputError, Problem

EXAMPLES = int(os.environ.get("DRIP_FUZZ_EXAMPLES", "1000"))

# Deterministic (the same examples on every run, no example database) so CI is stable.
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)

# Fragments that break parsers: YAML/TOML/JSON syntax, anchors and tags, odd characters.
FRAGMENTS = (
    "\x00",
    "\ufeff",
    "\u2028",
    "\ud800",
    "\udfff",
    "\r",
    "\r\n",
    "\t",
    "é",
    "😀",
    "ﬁ",
    "а",  # Cyrillic a
    "---",
    "+++",
    "...",
    "{",
    "}",
    "[",
    "]",
    "'",
    '"',
    ":",
    ": ",
    "- ",
    "#",
    "&a ",
    "*a",
    "!!python/object:os.system ",
    "!!binary ",
    "!!int ",
    "? ",
    "|",
    ">",
    "%YAML 1.1",
    "<<: *a",
    "~",
    "null",
    "true",
    "1e999",
    "-0",
    "99999999999999999999999999999999",
    "0x7fffffffffffffff",
    "8:30",
    "25:61",
    "=cmd|' /C calc'!A0",
    "{{ name }",
    "{% if %}",
    "@",
    ",",
    ";",
    "\\",
    "%FF",
    "%ED%A0%80",
    "&",
    "=",
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(FRAGMENTS),
    st.text(st.characters(codec="utf-8"), min_size=200, max_size=400),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)
KEYS = st.one_of(st.text(max_size=16), st.sampled_from(FRAGMENTS), st.integers().map(str))


def _text_edit(draw: st.DrawFn, text: str) -> str:
    """One character-level or line-level edit of ``text``."""
    n = len(text)
    at = draw(st.integers(0, n))
    span = draw(st.integers(0, 40))
    piece = draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)))
    lines = text.split("\n")
    line = draw(st.integers(0, max(len(lines) - 1, 0)))
    kind = draw(
        st.sampled_from(("insert", "delete", "replace", "drop_line", "repeat_line", "swap", "indent"))
    )
    if kind == "insert":
        return text[:at] + piece + text[at:]
    if kind == "delete":
        return text[:at] + text[at + span :]
    if kind == "replace":
        return text[:at] + piece + text[at + span :]
    if kind == "drop_line":
        return "\n".join(lines[:line] + lines[line + 1 :])
    if kind == "repeat_line":
        return "\n".join(lines[: line + 1] + lines[line:])
    if kind == "swap":
        other = draw(st.integers(0, max(len(lines) - 1, 0)))
        lines[line], lines[other] = lines[other], lines[line]
        return "\n".join(lines)
    lines[line] = draw(st.sampled_from(("  ", "\t", " "))) + lines[line]
    return "\n".join(lines)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _structure_edit(draw: st.DrawFn, data: Any) -> Any:
    """Replace a value with one of another type, drop a key, or add an unknown one."""
    paths = _paths(data)
    path = draw(st.sampled_from(paths))
    value = draw(VALUES)
    if not path:
        return value if draw(st.booleans()) else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    kind = draw(st.sampled_from(("replace", "drop", "add")))
    if kind == "replace":
        parent[path[-1]] = value
    elif kind == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(KEYS)] = value
    elif isinstance(parent, list):
        parent.append(value)
    return data


def _encode(draw: st.DrawFn, text: str) -> bytes:
    """The text as bytes, sometimes with a BOM, CRLF ends, or bytes that are not UTF-8."""
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8", errors="surrogatepass")
    kind = draw(st.sampled_from(("plain", "plain", "bom", "bad_byte", "latin1", "utf16")))
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "bad_byte":
        at = draw(st.integers(0, len(data)))
        bad = draw(st.sampled_from((b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\x00")))
        return data[:at] + bad + data[at:]
    if kind == "latin1":
        return text.encode("latin-1", errors="replace")
    if kind == "utf16":
        return text.encode("utf-16", errors="surrogatepass")
    return data


@st.composite
def mutated_text(draw: st.DrawFn, base: str, *, structured: bool = True) -> str:
    """``base`` broken by a few edits; YAML bases also get their values and keys changed."""
    text = base
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.text(max_size=300))
    if structured and choice <= 3:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if data is not None:
            for _ in range(draw(st.integers(1, 3))):
                data = _structure_edit(draw, data)
            text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()), sort_keys=False)
    for _ in range(draw(st.integers(0 if choice <= 3 else 1, 4))):
        text = _text_edit(draw, text)
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, base: str, *, structured: bool = True) -> bytes:
    """A mutated file as its bytes on disk (random bytes now and then)."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=300))
    return _encode(draw, draw(mutated_text(base, structured=structured)))


def assert_located(exc: InputError, expected_file: Any) -> None:
    """A clear error: at least one problem, each with a message and naming the file at fault."""
    assert exc.problems, "an InputError without problems"
    for problem in exc.problems:
        assert_problem(problem, expected_file)


def assert_problem(problem: Problem, expected_file: Any) -> None:
    assert problem.message.strip(), problem
    assert problem.file == expected_file, f"{problem!r} does not name {expected_file}"
    if problem.message.startswith(("invalid YAML", "not UTF-8")):
        assert problem.line is not None, f"{problem!r} has no line"
    str(problem)  # printable


def digest(engine: sa.Engine) -> str:
    """Row counts and a digest of every table's rows, sorted: equal before and after means unchanged.

    Read through the driver's own connection (SQLite): thousands of digests a run must stay cheap.
    """
    hasher = hashlib.sha256()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        for (name,) in cursor.fetchall():
            cursor.execute(f'SELECT * FROM "{name}"')
            rows = sorted(repr(row) for row in cursor.fetchall())
            hasher.update(f"{name}:{len(rows)}\n".encode())
            for row in rows:
                hasher.update(row.encode("utf-8", errors="surrogatepass") + b"\n")
        cursor.close()
    finally:
        raw.close()
    return hasher.hexdigest()


class Tally:
    """How many examples ran and how each ended, printed for the record (``pytest -s``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.outcomes: Counter[str] = Counter()

    def __call__(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def report(self) -> None:
        parts = ", ".join(f"{count} {name}" for name, count in sorted(self.outcomes.items()))
        print(f"\nfuzz {self.kind}: {self.total} examples ({parts})")


def run(tally: Tally, test: Callable[[], None]) -> None:
    """Run a Hypothesis test and print its tally; fewer than the examples asked means Hypothesis ran out."""
    test()
    tally.report()
    assert tally.total > 0
