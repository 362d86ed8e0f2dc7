"""A site's files are UTF-8 text; one that is not is a located input mistake, not a crash."""

from __future__ import annotations

from pathlib import Path

from drip.errors import InputError, Problem


def decode_problem(path: Path, data: bytes, exc: UnicodeDecodeError, advice: str) -> Problem:
    """Where the first byte that is not UTF-8 sits (1-based line and byte column)."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    return Problem(
        f"not UTF-8 text (byte 0x{data[exc.start]:02x}): {advice}",
        file=path,
        line=data.count(b"\n", 0, exc.start) + 1,
        column=exc.start - line_start + 1,
    )


def read_text(path: Path, *, advice: str = "save the file as UTF-8") -> str:
    """The text of ``path`` (a UTF-8 byte order mark dropped), or an InputError naming the file.

    Editors on some systems still save Latin-1 or UTF-16 by default; the user then
    needs the line and column of the first bad byte, and ``advice`` on what to do.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(Problem(f"cannot read file: {exc.strerror}", file=path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(decode_problem(path, data, exc, advice)) from None
