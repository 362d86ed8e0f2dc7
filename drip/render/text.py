"""The text/plain part: tidy what the text templates produce.

Templates are easier to read with generous blank lines and indentation; mail
clients show text parts as they are. Trailing spaces go (except the ``-- ``
signature separator, RFC 3676), runs of blank lines shrink to one, and the
part ends with exactly one newline.
"""

from __future__ import annotations

import re

_BLANK_RUNS = re.compile(r"\n{3,}")
SIGNATURE_SEPARATOR = "-- "


def tidy(text: str) -> str:
    """Normalise line endings and whitespace of a rendered text part."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cleaned = [line if line == SIGNATURE_SEPARATOR else line.rstrip() for line in lines]
    joined = _BLANK_RUNS.sub("\n\n", "\n".join(cleaned))
    return joined.strip("\n") + "\n"
