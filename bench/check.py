"""How long ``drip check`` takes on a 1,000-page Hugo-style site, against parsing the same files alone.

The generated site has sections (``_index.md``), page bundles, TOML and YAML front
matter, ``ref``/``relref`` links and one pillar with a course. The baseline is what
no checker can avoid: python-frontmatter loading every file. ``drip check`` runs
first with no cache (``.drip_cache/`` removed before each run), then with the cache
its last run left; every page has its own body, as on a real site. Figures are CPU
seconds of this process, the best of ``--runs``; targets: no cache at most 1.5 s,
the cache up to date at most 40 % of that.

    .venv/bin/python bench/check.py [--pages 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import frontmatter

from drip.config import load_site
from drip.content.cache import CACHE_DIR
from drip.preview.checks import check_site

SECTIONS = 20


def generate(root: Path, pages: int) -> Path:
    """A site with ``pages`` content files spread over sections, and a course on its first section."""
    (root / "schedules").mkdir(parents=True)
    (root / "drip.yaml").write_text(
        'site: {name: Docs, base_url: "https://docs.example.org", locale: en}\n'
        "sender: {name: Docs, email: news@docs.example.org}\n"
        'postal_address: "Docs, 1 Main Street, Springfield"\n',
        encoding="utf-8",
    )
    (root / "schedules" / "section-0.yaml").write_text("cadence: 1\n", encoding="utf-8")
    content = root / "content"
    per_section = max(1, (pages - SECTIONS) // SECTIONS)
    for s in range(SECTIONS):
        section = content / f"section-{s}"
        section.mkdir(parents=True)
        items = "\n".join(
            f'{i + 1}. [Page {i}]({{{{< ref "section-{s}/page-{i}" >}}}}) — {i + 3} min' for i in range(5)
        )
        start = (
            f"## Start here\n\n{items}\n\n## Go deeper\n\n- [Reference](https://example.org/)\n"
            if s == 0
            else ""
        )
        (section / "_index.md").write_text(
            f'+++\ntitle = "Section {s}"\n+++\n\nSection {s} of the docs.\n\n{start}', encoding="utf-8"
        )
        for i in range(per_section):
            body = _body(s, i)
            if i % 3 == 0:
                (section / f"page-{i}").mkdir()
                path = section / f"page-{i}" / "index.md"
                path.write_text(
                    f'+++\ntitle = "Page {s}.{i}"\ndate = 2024-01-01\n+++\n\n{body}', encoding="utf-8"
                )
            else:
                path = section / f"page-{i}.md"
                path.write_text(f"---\ntitle: Page {s}.{i}\ntags: [docs]\n---\n\n{body}", encoding="utf-8")
    return root


def _body(section: int, page: int) -> str:
    paragraph = (
        f"Hugo reads content file {section}.{page} and renders it with templates into a static site. " * 12
    )
    return (
        f"## Overview\n\n{paragraph}\n\n"
        f'See [the next page]({{{{< relref "page-{page + 1}" >}}}}).\n\n'
        f"## Details\n\n{paragraph}\n\n```toml\n[module]\n  path = 'x'\n```\n\n{{{{< note >}}}}A note.{{{{< /note >}}}}\n"
    )


def cpu(action: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        action()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "site", args.pages)
        files = sorted((root / "content").rglob("*.md"))
        site = load_site(root)
        report = check_site(site)
        if not report.ok:
            raise SystemExit("\n".join(str(p) for p in report.errors))
        baseline = cpu(lambda: [frontmatter.load(str(f)) for f in files], args.runs)

        def cold_run() -> None:
            shutil.rmtree(root / CACHE_DIR, ignore_errors=True)
            check_site(load_site(root))

        cold = cpu(cold_run, args.runs)
        warm = cpu(lambda: check_site(load_site(root)), args.runs)
    print(f"{len(files)} content files, {report.summary()}")
    print(f"python-frontmatter alone:                {baseline:.2f} s CPU")
    print(f"drip check, first run (cold cache):      {cold:.2f} s CPU (target: at most 1.50 s)")
    print(f"drip check, second run (warm cache):     {warm:.2f} s CPU")
    print(f"warm / cold:                             {warm / cold:.0%} (target: at most 40%)")


if __name__ == "__main__":
    main()
