"""What tells a long-running process that the files it read have changed: names, mtimes, sizes.

A worker reads templates, schedules and broadcast files again only when their stamp
differs from the one it read them under; a stamp costs a stat per file, reading and
parsing them costs far more (a site with a hundred broadcasts: milliseconds a pass).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from stat import S_ISREG

Stamp = tuple[tuple[str, int, int], ...]


def stamp(folders: Iterable[Path], suffixes: tuple[str, ...]) -> Stamp:
    """Path, mtime (ns) and size of every file under ``folders`` whose name ends with ``suffixes``.

    A folder that does not exist adds nothing; a file removed between listing and stat is left out.
    """
    entries: list[tuple[str, int, int]] = []
    for root in folders:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.name.endswith(suffixes):
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            if S_ISREG(info.st_mode):
                entries.append((str(path), info.st_mtime_ns, info.st_size))
    return tuple(entries)
