"""Reading times: the words after a reading-path link, and the word count of a post.

The regular expression only ever looks at one already-extracted string, such as
"— Fondamental (10 min)" or "~12 min read"; structure comes from markdown-it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

WORDS_PER_MINUTE = 200

_NOT_LETTER = r"(?![^\W\d_])"
_HOURS = rf"(?:hours?|hrs?|heures?|h){_NOT_LETTER}"
_MINUTES = rf"(?:minutes?|mins?|mn|m){_NOT_LETTER}"
_DURATION = re.compile(
    rf"""
    [~≈]?\s*\(?\s*[~≈]?\s*
    (?:
        (?P<hours>\d+)\s*{_HOURS}(?:\s*(?P<and_minutes>\d+)(?:\s*{_MINUTES})?)?
      | (?P<minutes>\d+)\s*{_MINUTES}
    )
    (?:\s*(?:de\s+lecture|reading|read|lecture){_NOT_LETTER})?
    \s*\)?
    """,
    re.IGNORECASE | re.VERBOSE,
)
_LABEL_EDGES = " \t—–-:,;·|~"


def parse_duration(text: str) -> int | None:
    """Minutes in "10 min", "(1 h 30)", "~12 min read", "45 minutes"; None when absent."""
    match = _last(text)
    return _minutes(match) if match else None


def minutes_field(value: Any) -> Any:
    """A front-matter reading time: "12" and "10 min" become minutes; other types are left to the field.

    Pillar and post metadata both take it, so the two accept the same spellings.
    """
    if not isinstance(value, str):
        return value
    minutes = int(value) if value.strip().isdigit() else parse_duration(value)
    if minutes is None:
        raise ValueError(f"expected a number of minutes or a duration like '10 min', got {value!r}")
    return minutes


def label_and_minutes(text: str) -> tuple[str | None, int | None]:
    """Split "— Practice, 8 min" into ("Practice", 8); either part may be absent."""
    match = _last(text)
    if match is None:
        rest, minutes = text, None
    else:
        rest, minutes = f"{text[: match.start()]} {text[match.end() :]}", _minutes(match)
    label = " ".join(rest.split()).strip(_LABEL_EDGES)
    return (label or None), minutes


def minutes_for_words(words: int) -> int:
    """About 200 words a minute, and never less than one minute."""
    return max(1, round(words / WORDS_PER_MINUTE))


def _last(text: str) -> re.Match[str] | None:
    matches = list(_DURATION.finditer(text))
    return matches[-1] if matches else None


def _minutes(match: re.Match[str]) -> int:
    if match["hours"] is not None:
        return int(match["hours"]) * 60 + int(match["and_minutes"] or 0)
    return int(match["minutes"])


_GRACE = re.compile(r"\s*(\d+)\s*([mhd])\s*")
_GRACE_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
DEFAULT_GRACE = "6h"


def check_grace(value: str) -> str:
    """A grace period as written in a schedule or a broadcast (``90m``, ``6h``, ``2d``), or ValueError."""
    if _GRACE.fullmatch(value) is None:
        raise ValueError("grace is a duration like 90m, 6h or 2d")
    return value


def grace_delta(value: str) -> dt.timedelta:
    """``6h`` as a timedelta (the model checked the spelling)."""
    match = _GRACE.fullmatch(value)
    assert match is not None
    return dt.timedelta(**{_GRACE_UNITS[match[2]]: int(match[1])})


def format_minutes(minutes: int, locale: str) -> str:
    """A reading time as readers write it: "45 min", then hours from 60 on ("1 h", "1 h 30" / "1 h 30 min").

    French writes the minutes after the hours bare and on two digits ("1 h 05"); English keeps "min".
    """
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if not rest:
        return f"{hours} h"
    if locale.split("-", 1)[0].lower() == "fr":
        return f"{hours} h {rest:02d}"
    return f"{hours} h {rest} min"
