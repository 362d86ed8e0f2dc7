"""Schedules: the short YAML file a marketer writes to turn a pillar page into a course.

One file per course, ``schedules/<course>.yaml``; the course slug is the file
stem. Everything but the pillar has a default, and the pillar itself defaults to
the course slug::

    pillar: le-role-du-cto
    title: "Comprendre le rôle du CTO"
    send_window: {time: "08:30", days: weekdays}
    cadence: 2
    articles:
      /posts/premiers-jours-cto-reussir-prise-de-poste/: {subject: "…", day: 5}
    sections: [comprendre-les-roles]
    closing: false

This module checks the file on its own (types, unknown keys, times, day names,
zones, locales) and keeps every key's position, so the compiler can point back
into the file when something does not match the pillar.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drip.config import Site, check_locale, check_timezone
from drip.course.models import Sender, SendWindow, WhenAdded
from drip.course.timing import parse_time, parse_weekdays
from drip.errors import InputError, Problem, ScheduleError, did_you_mean
from drip.inputs.yamlfile import KeyPath, Positions, load_yaml_file, validate

SCHEDULE_SUFFIXES = (".yaml", ".yml")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_:]*")


def _one_line(value: str | None) -> str | None:
    """Subjects, names and addresses end up in headers: one line, never empty."""
    if value is None:
        return None
    if "\n" in value or "\r" in value:
        raise ValueError("must fit on one line")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_SYNTAX = jinja2.Environment(autoescape=True)  # parses subjects, never renders them

# What a subject or preheader may name: the render context of a step (a render test keeps the two equal).
SUBJECT_NAMES = frozenset(
    {
        "article",
        "cadence",
        "course",
        "deeper",
        "deeper_paragraphs",
        "links",
        "locale",
        "name",
        "others",
        "pillar",
        "plan",
        "section",
        "site",
        "step",
        "subscriber",
        "t",
        "theme",
    }
)


def check_jinja(value: str) -> str:
    """Syntax and variable names, checked here where the line is known; rendering would only know the snippet's."""
    try:
        parsed = _SYNTAX.parse(value)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error: {exc.message}") from None
    known = SUBJECT_NAMES | set(_SYNTAX.globals)
    unknown = sorted(jinja2.meta.find_undeclared_variables(parsed) - known)
    if unknown:
        named = ", ".join(repr(n) for n in unknown)
        hints = [h for h in (did_you_mean(n, known) for n in unknown) if h]
        raise ValueError(f"unknown variable {named}" + (f" ({'; '.join(hints)})" if hints else ""))
    return value


Localised = str | dict[str, str]  # one text in the course's locale, or one per locale: {fr: …, en: …}


def _localised(value: Any, check: Callable[[str], str]) -> Any:
    """A text, or a mapping of supported locale to text; each text passed through ``check``."""
    if value is None or isinstance(value, str):
        return None if value is None else check(value)
    if not isinstance(value, dict) or not value:
        raise ValueError(
            f"expected a text, or a mapping of locale to text like {{fr: …, en: …}}, got {value!r}"
        )
    out: dict[str, str] = {}
    for locale, text in value.items():
        try:
            code = check_locale(str(locale))
            if not isinstance(text, str):
                raise ValueError(f"expected a text, got {text!r}")
            out[code] = check(text)
        except ValueError as exc:
            raise ValueError(f"{locale}: {exc}") from None
    return out


def _one_line_text(value: str) -> str:
    checked = _one_line(value)
    assert checked is not None  # a str in, a str out
    return checked


def _message_text(value: str) -> str:
    return check_jinja(_one_line_text(value))


class MessageModel(_Strict):
    """Subject and preheader overrides (Jinja source; may use subscriber fields like ``{{ name }}``).

    Each may be one text, in the course's locale, or one per locale (``{fr: …, en: …}``).
    """

    subject: Localised | None = None
    preheader: Localised | None = None

    _text = field_validator("subject", "preheader", mode="before")(
        classmethod(lambda cls, v: _localised(v, _message_text))
    )


class TimedMessageModel(MessageModel):
    """A message override that may also move its email to another day after enrollment."""

    day: int | None = Field(default=None, ge=0, le=3650)
    when_added: WhenAdded | None = None  # readers already past this step when it is added or moved


class SenderModel(_Strict):
    name: str | None = None
    email: str | None = None
    reply_to: str | None = None

    _text = field_validator("name", "email", "reply_to")(classmethod(lambda cls, v: _one_line(v)))

    @field_validator("email", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from email_validator import EmailNotValidError, validate_email  # ~30 ms: only for a sender override

        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"not a valid email address: {exc}") from None


class WindowModel(_Strict):
    time: dt.time = dt.time(8, 30)
    days: frozenset[int] = frozenset(range(5))

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        return parse_time(value) if isinstance(value, str) else value

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return parse_weekdays(value)
        raise ValueError('expected day names, e.g. [mon, tue, wed, thu, fri], or "weekdays" / "every day"')


def _on_off(value: Any) -> Any:
    """``false`` drops an optional email, ``true`` or an empty value keeps its defaults."""
    if value is False:
        return None
    if value is True or value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected false, or a mapping of subject/preheader overrides, got {value!r}")
    return value


def _overrides(value: Any) -> Any:
    """A list of names means "these, with default settings"; a mapping may override each."""
    if isinstance(value, list):
        return {str(name): {} for name in value}  # repeats are reported by load_schedule, at the item
    if isinstance(value, dict):
        return {k: ({} if v is None else v) for k, v in value.items()}
    raise ValueError(
        f"expected a list of names, or a mapping of name to subject/preheader/day, got {value!r}"
    )


def _course_kind(value: Any) -> Any:
    """``kind: course`` may be written; lists and digests never reach the course loader."""
    if value is not None and value != "course":
        hint = did_you_mean(str(value), ("course", "list", "digest"))
        raise ValueError(
            f"unknown kind {value!r}, expected course, list or digest" + (f" ({hint})" if hint else "")
        )
    return value


class ScheduleModel(_Strict):
    """The schema of a schedule file; every key optional but the pillar defaults to the course slug."""

    kind: str | None = None
    pillar: str | None = None
    title: Localised | None = None
    locale: str | None = None
    timezone: str | None = None
    sender: SenderModel | None = None
    reading_path: str | None = None
    other_pillars: str | None = None
    send_window: WindowModel = Field(default_factory=WindowModel)
    cadence: int = Field(default=2, ge=1, le=365)
    when_added: WhenAdded | None = None  # the course's default for its steps (unset: skip)
    welcome: MessageModel | None = Field(default_factory=MessageModel)
    articles: dict[str, TimedMessageModel] = Field(default_factory=dict)
    sections: dict[str, TimedMessageModel] = Field(default_factory=dict)
    closing: TimedMessageModel | None = Field(default_factory=TimedMessageModel)

    _text = field_validator("pillar", "reading_path", "other_pillars")(
        classmethod(lambda cls, v: _one_line(v))
    )
    _title = field_validator("title", mode="before")(
        classmethod(lambda cls, v: _localised(v, _one_line_text))
    )
    _tz = field_validator("timezone")(classmethod(lambda cls, v: None if v is None else check_timezone(v)))
    _locale = field_validator("locale")(classmethod(lambda cls, v: None if v is None else check_locale(v)))
    _kind = field_validator("kind", mode="before")(classmethod(lambda cls, v: _course_kind(v)))
    _toggle = field_validator("welcome", "closing", mode="before")(classmethod(lambda cls, v: _on_off(v)))
    _lists = field_validator("articles", "sections", mode="before")(classmethod(lambda cls, v: _overrides(v)))


@dataclass(frozen=True)
class Schedule:
    """A schedule file checked on its own, with site defaults filled in and key positions kept."""

    slug: str
    path: Path
    model: ScheduleModel
    positions: Positions
    pillar: str  # content file stem, or a path relative to content/
    locale: str
    timezone: str
    sender: Sender
    window: SendWindow
    entries: Mapping[tuple[str, str], KeyPath]

    def problem(self, path: KeyPath, message: str, *, hint: str | None = None, key: bool = False) -> Problem:
        """A problem located at ``path`` in this file (at the key itself when ``key``)."""
        return self.positions.problem(path, message, hint=hint, key=key)

    def entry_problem(self, field: str, name: str, message: str, *, hint: str | None = None) -> Problem:
        """A problem about the ``articles``/``sections`` entry ``name``, at the spot it was written."""
        path = self.entries.get((field, name), (field,))
        return self.problem(path, message, hint=hint, key=isinstance(path[-1], str))


def _entry_paths(data: dict[str, Any]) -> dict[tuple[str, str], KeyPath]:
    """Where each ``articles``/``sections`` entry was written: a mapping key or a list item."""
    out: dict[tuple[str, str], KeyPath] = {}
    for field in ("articles", "sections"):
        raw = data.get(field)
        if isinstance(raw, list):
            out.update({(field, str(v)): (field, i) for i, v in enumerate(raw)})
        elif isinstance(raw, dict):
            out.update({(field, str(k)): (field, str(k)) for k in raw})
    return out


def _repeated_entries(data: dict[str, Any], pos: Positions) -> list[Problem]:
    """An article or section listed twice would be two emails with one key."""
    problems: list[Problem] = []
    for field in ("articles", "sections"):
        raw = data.get(field)
        if not isinstance(raw, list):
            continue
        seen: dict[str, int] = {}
        for i, name in enumerate(raw):
            if str(name) in seen:
                where = pos.find((field, seen[str(name)]))
                line = f" (line {where[0]})" if where else ""
                problems.append(pos.problem((field, i), f"{name!r} is already listed{line}"))
            seen.setdefault(str(name), i)
    return problems


def _recover_sexagesimal(data: dict[str, Any], pos: Positions) -> None:
    """YAML 1.1 reads an unquoted ``8:30`` as the number 510: take the text back as written."""
    window = data.get("send_window")
    if not isinstance(window, dict) or not isinstance(window.get("time"), int) or pos.file is None:
        return
    where = pos.nodes.get(("send_window", "time"))
    if where is None:
        return
    line = pos.file.read_text(encoding="utf-8").splitlines()[where[0] - 1]
    written = _SEXAGESIMAL.match(line, where[1] - 1)
    if written:
        window["time"] = written.group(0)


def schedule_files(schedules_dir: Path) -> dict[str, Path]:
    """Every schedule under ``schedules_dir``, by course slug (file stem), sorted."""
    if not schedules_dir.is_dir():
        return {}
    found = {p.stem: p for p in schedules_dir.iterdir() if p.suffix in SCHEDULE_SUFFIXES and p.is_file()}
    return dict(sorted(found.items()))


def load_schedule(path: Path, site: Site) -> Schedule:
    """Read and check one schedule file; :class:`ScheduleError` carries every problem in it."""
    schedule, problems = read_schedule(path, site)
    if schedule is None or problems:
        raise ScheduleError(problems)
    return schedule


def read_schedule(path: Path, site: Site) -> tuple[Schedule | None, list[Problem]]:
    """The file's problems, and a schedule built from its valid parts when there is enough of one.

    The partial schedule lets the compiler also check article URLs and section
    names in a file that has other mistakes, so a user sees every error at once.
    """
    try:
        data, pos = load_yaml_file(path)
    except InputError as exc:
        return None, list(exc.problems)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [pos.problem((), "expected a mapping of schedule settings at the top level")]
    _recover_sexagesimal(data, pos)
    model, problems = validate(ScheduleModel, data, pos)
    problems = [_entry_key_hint(p) for p in problems]
    problems.extend(_repeated_entries(data, pos))
    problems.extend(pos.repeated)
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if model is None:
        model = _valid_part(data, pos, problems)
    if model is None:
        return None, problems
    cfg = site.config
    given = model.sender or SenderModel()
    schedule = Schedule(
        slug=path.stem,
        path=path,
        model=model,
        positions=pos,
        pillar=model.pillar or path.stem,
        locale=model.locale or cfg.site.locale,
        timezone=model.timezone or cfg.site.timezone,
        sender=Sender(
            name=given.name or cfg.sender.name,
            email=given.email or cfg.sender.email,
            reply_to=given.reply_to or cfg.sender.reply_to,
        ),
        window=SendWindow(time=model.send_window.time, weekdays=model.send_window.days),
        entries=_entry_paths(data),
    )
    return schedule, problems


def _entry_key_hint(problem: Problem) -> Problem:
    """Suggest the closest key inside an ``articles``/``sections`` entry, whose names are URLs or slugs."""
    key = problem.key or ""
    if problem.hint or problem.message != "unknown key" or not key.startswith(("articles.", "sections.")):
        return problem
    hint = did_you_mean(key.rsplit(".", 1)[-1], TimedMessageModel.model_fields)
    return dataclasses.replace(problem, hint=hint)


def _valid_part(data: dict[str, Any], pos: Positions, problems: list[Problem]) -> ScheduleModel | None:
    """The schedule without the settings that failed (single bad entries of articles/sections dropped)."""
    bad = [p.key for p in problems if p.key]
    if any(key.split(".", 1)[0] in ("pillar", "reading_path", "other_pillars") for key in bad):
        return None  # checking against the wrong page would only add noise
    kept = dict(data)
    for field in ("articles", "sections"):
        entries = kept.get(field)
        if isinstance(entries, dict) and field not in bad:
            kept[field] = {
                name: value
                for name, value in entries.items()
                if not any(key == f"{field}.{name}" or key.startswith(f"{field}.{name}.") for key in bad)
            }
    for key in bad:
        top = key.split(".", 1)[0]
        if top not in ("articles", "sections") or key == top:
            kept.pop(top, None)
    model, _ = validate(ScheduleModel, kept, pos)
    return model
