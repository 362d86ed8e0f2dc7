"""``drip archive --out DIR``: each list's public archive as static files, the pages ``drip serve`` shows."""

from __future__ import annotations

from pathlib import Path

import click

from drip.cli import Context, cli, now_option, plural


@cli.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into: DIR/<list>/index.html, feed.xml and one folder per issue.",
)
@now_option
@click.pass_obj
def archive(obj: Context, out_dir: Path, now: str | None) -> None:
    """Write the past issues of every list with an archive as static pages and an Atom feed."""
    from drip.course.newsletter import load_newsletters
    from drip.errors import InputError, Problem
    from drip.render.archive import archive_files
    from drip.store.issues import list_issues

    moment = obj.at(now)
    lists = [m for m in load_newsletters(obj.site).lists.values() if m.archive]
    files: dict[str, bytes] = {}
    with obj.store() as engine, engine.connect() as conn:
        issues = {m.name: list_issues(conn, m.name) for m in lists}
    for mlist in lists:
        files.update(archive_files(obj.site, mlist, issues[mlist.name], now=moment))
    try:
        for name, data in files.items():
            path = out_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else out_dir
        raise InputError(Problem(f"cannot write: {exc.strerror}", file=where)) from None
    obj.runtime.console.print(
        f"{plural(len(files), 'file')} written to {out_dir} ({plural(len(lists), 'list')})"
    )
