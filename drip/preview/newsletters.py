"""``drip check`` for newsletters: lists, digests and broadcasts, validated before anyone is mailed.

Lists and digests load with every mistake located; a digest's pillars and folders
must exist. Each broadcast's front matter is checked, its list must exist, its
images must be absolute, described and sized, its links must be absolute as written,
and its rendered links pass the same checks as courses'. A digest is rendered once
with the posts it would offer now, so template mistakes show before the first issue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from drip.config import Site
from drip.content import ContentIndex
from drip.content.broadcasts import Broadcast, read_broadcasts
from drip.course.newsletter import Newsletters, read_newsletters
from drip.course.selection import candidates
from drip.errors import InputError, Problem, did_you_mean
from drip.preview.checks import classify_link, classify_written, extract_links
from drip.render.newsletter import render_broadcast, render_digest


def _digest_problems(found: Newsletters, index: ContentIndex) -> list[Problem]:
    """Pillars and folders a digest filters on must exist, or it would silently offer nothing."""
    problems: list[Problem] = []
    parents = {p.path.parent for p in index.posts.values()}  # few folders, many posts: pathlib once each
    folders = {parent.relative_to(index.root).as_posix() for parent in parents}
    for digest in found.digests.values():
        for slug in digest.posts.pillars:
            if slug not in index.pillars:
                problems.append(
                    Problem(
                        f"no pillar page {slug!r} in content/",
                        file=digest.path,
                        key="posts.pillars",
                        hint=did_you_mean(slug, index.pillars),
                    )
                )
        for folder in digest.posts.sections:
            name = folder.strip("/")
            if not any(f == name or f.startswith(name + "/") for f in folders):
                problems.append(
                    Problem(
                        f"no posts in content/{name}/",
                        file=digest.path,
                        key="posts.sections",
                        hint=did_you_mean(name, folders),
                    )
                )
    return problems


def _sample(site: Site) -> dict[str, str]:
    """drip's own per-reader links, with the placeholder token previews use."""
    base = site.config.site.base_url
    return {f"{page}_url": f"{base}/{page}/preview-token" for page in ("unsubscribe", "preferences", "view")}


def _link_problems(
    site: Site, broadcast: Broadcast, html: str, known: Iterable[str]
) -> tuple[list[Problem], list[Problem]]:
    errors: list[Problem] = []
    warnings: list[Problem] = []
    personal = {
        f"{site.config.site.base_url}/{p}/preview-token" for p in ("unsubscribe", "preferences", "view")
    }
    for href in dict.fromkeys(extract_links(html)):
        if href in personal or "DRIPSLOT" in href:
            continue
        verdict = classify_link(href, base_url=site.config.site.base_url, known=known)
        if verdict.level != "ok":
            problem = Problem(
                f"link {href!r}: {verdict.message}",
                file=broadcast.path,
                key=broadcast.slug,
                hint=verdict.hint,
            )
            (errors if verdict.level == "error" else warnings).append(problem)
    return errors, warnings


def _broadcast(
    site: Site, broadcast: Broadcast, found: Newsletters, known: set[str]
) -> tuple[list[Problem], list[Problem]]:
    mlist = found.lists.get(broadcast.list)
    if mlist is None and not found.lists:  # like "no course yet": a site starting out, not a typo
        message = f"no list {broadcast.list!r} yet: declare it in schedules/ with `kind: list`"
        return [], [broadcast.problem("list", message)]
    if mlist is None:
        hint = did_you_mean(broadcast.list, found.lists)
        return [
            broadcast.problem(
                "list",
                f"no list {broadcast.list!r} in schedules/ (lists: {', '.join(found.lists) or 'none'})",
                hint=hint,
            )
        ], []
    errors = [
        Problem(
            f"link {link.href!r} {verdict.message}",
            file=broadcast.path,
            line=link.line,
            column=link.column,
            hint=verdict.hint,
        )
        for link in _written(site, broadcast)
        if (verdict := classify_written(link.href, known=known)) is not None
    ]
    try:
        rendered = render_broadcast(site, broadcast, mlist)
    except InputError as exc:
        return [*errors, *exc.problems], []
    link_errors, warnings = _link_problems(
        site, broadcast, rendered.html.fill(_sample(site), escape=True), known
    )
    return errors or link_errors, warnings


def _written(site: Site, broadcast: Broadcast) -> list:  # type: ignore[type-arg]
    from drip.render.newsletter import Tracker, broadcast_body

    return [
        link
        for link in broadcast_body(site, broadcast, Tracker(site.config.site.base_url, "", "")).links
        if not link.image
    ]


def check_newsletters(
    site: Site, index: ContentIndex | None, known: set[str]
) -> tuple[list[Problem], list[Problem]]:
    """Every newsletter problem of a site: (errors, warnings). Nothing is sent, nothing is stored."""
    found, errors = read_newsletters(site)
    warnings: list[Problem] = []
    if index is not None:
        errors.extend(_digest_problems(found, index))
        now = dt.datetime.now(dt.UTC)
        for digest in found.digests.values():
            posts = tuple(candidates(digest, index, now)[: digest.max_posts])
            try:
                render_digest(site, digest, found.lists[digest.list], posts, f"{digest.slug}:check")
            except InputError as exc:
                errors.extend(exc.problems)
    broadcasts, problems = read_broadcasts(site.content_dir)
    errors.extend(problems)
    for broadcast in broadcasts:
        more_errors, more_warnings = _broadcast(site, broadcast, found, known)
        errors.extend(more_errors)
        warnings.extend(more_warnings)
    return errors, warnings
