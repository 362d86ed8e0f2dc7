"""``drip init``: start from an existing (Hugo-style) site in one command, never overwriting a file.

Site name, base URL and language come from Hugo's config (``hugo.toml``, ``hugo.yaml``, ``config.toml``…)
when there is one; the sender, postal address and time zone from flags, or questions on a terminal. Each
pillar page with a reading path gets a commented schedule. A broken Hugo config is a located error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from drip.cli import Context, cli
from drip.errors import InputError, Problem

if TYPE_CHECKING:
    from drip.config import Site

HUGO_CONFIGS = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json", "config.toml", "config.yaml", "config.yml")
LOCALES = ("fr", "en")
FC = TypeVar("FC", bound=Callable[..., Any])


@dataclass(frozen=True)
class HugoSite:
    """What drip takes from Hugo's config: all optional."""

    path: Path | None = None
    title: str | None = None
    base_url: str | None = None
    language: str | None = None
    content_dir: str | None = None  # contentDir, the default language's own if it has one


def read_hugo_config(root: Path) -> HugoSite:
    """The first Hugo config found at ``root``; a located error when it cannot be read."""
    for name in HUGO_CONFIGS:
        path = root / name
        if path.is_file():
            data = _parse(path)
            # The content's language is defaultContentLanguage; languageCode is only the feeds' tag.
            lang = _text(data.get("defaultContentLanguage")) or _text(data.get("languageCode"))
            return HugoSite(
                path,
                _text(data.get("title")),
                _text(data.get("baseURL") or data.get("baseurl")),
                lang,
                _language_setting(data, lang, "contentDir") or _text(data.get("contentDir")),
            )
    return HugoSite()


def _parse(path: Path) -> Mapping[str, Any]:
    import json

    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data: object = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Problem(f"cannot read Hugo's config: {exc}", file=path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(Problem(f"not valid TOML: {exc}", file=path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(Problem(f"not valid JSON: {exc.msg}", file=path, line=exc.lineno)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            Problem(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=path, line=line)
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(Problem("Hugo's config must be a mapping of settings", file=path))
    return data


def _language_setting(data: Mapping[str, Any], lang: str | None, key: str) -> str | None:
    """``[languages.<lang>] key = …``: a setting Hugo lets each language override."""
    languages = data.get("languages")
    own = languages.get(lang) if isinstance(languages, dict) and lang is not None else None
    return _text(own.get(key)) if isinstance(own, dict) else None


def content_path(root: Path, hugo: HugoSite, locale: str) -> str | None:
    """``paths.content`` for drip.yaml: Hugo's contentDir, in its ``<locale>/`` folder when it has one;
    None when it is drip's default (``content/``, whose language folder drip finds on its own)."""
    folder = (hugo.content_dir or "content").strip("/") or "content"
    if folder == "content":
        return None
    localised = f"{folder}/{locale}"
    return localised if (root / localised).is_dir() else folder


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def drip_yaml(values: Mapping[str, str | None]) -> str:
    """drip.yaml for these answers; every value quoted so YAML reads it back as written."""
    import json

    q = {k: json.dumps(v, ensure_ascii=False) for k, v in values.items() if v is not None}
    return f"""# drip.yaml, written by `drip init`: see the README for every setting.
site:
  name: {q["name"]}
  base_url: {q["base_url"]}
  locale: {q["locale"]}                 # fr | en
  timezone: {q["timezone"]}    # for subscribers without one
sender:
  name: {q["sender_name"]}
  email: {q["sender_email"]}
postal_address: {q["postal_address"]}
{_paths(values.get("content"))}database: "sqlite:///drip.db"   # or postgresql+psycopg://…; DRIP_DATABASE_URL wins
transport:
  backend: outbox               # outbox | smtp | sendgrid
"""


def _paths(content: str | None) -> str:
    import json

    if content is None:
        return ""
    return f"paths:\n  content: {json.dumps(content, ensure_ascii=False)}   # Hugo's contentDir\n"


def schedule_yaml(pillar: str, title: str, *, closing: bool) -> str:
    """A commented schedule for one pillar page: the defaults spelt out, ready to edit."""
    import json

    return f"""# Course compiled from the pillar page {pillar}: a welcome email, one email per
# article of its reading path, in order{", then the go-deeper resource" if closing else ""}.
pillar: {json.dumps(pillar, ensure_ascii=False)}
title: {json.dumps(title, ensure_ascii=False)}
send_window:
  time: "08:30"       # in each subscriber's time zone
  days: weekdays      # or [mon, wed, fri], "every day"
cadence: 2            # days between emails
# when_added: skip    # readers already past a step added later: skip | catch_up | append
# articles:           # per-article overrides, by URL
#   /posts/example/: {{subject: "…", day: 5}}
{"" if closing else "closing: false       # the page has no go-deeper resource nor other pillars" + chr(10)}"""


def newsletter_yaml(site_name: str, list_name: str) -> dict[str, str]:
    """A list and its weekly digest, commented, for schedules/: every Monday at 09:00 in the site's zone."""
    import json

    title = json.dumps(f"{site_name}: the newsletter", ensure_ascii=False)
    return {
        f"{list_name}.yaml": f"""# A mailing list, written by `drip init`: readers join it on its own or alongside a course.
kind: list
title: {title}
archive: true              # past issues at /archive/{list_name}/ and in an Atom feed
hold_during_course: wait   # readers in a course get the next issue once it is over (wait | skip | false)
no_repeat_days: 30         # never a post their course sent in the last 30 days, or will send
""",
        f"{list_name}-weekly.yaml": f"""# The weekly digest of the list `{list_name}`: the posts published since the last issue.
kind: digest
list: {list_name}
cron: "0 9 * * mon"        # every Monday at 09:00 in drip.yaml's time zone (or set timezone:)
posts: all                 # or pillars: […], sections: […], tags: […]
max_posts: 5
min_posts: 1               # no new post, no issue
""",
    }


def _list_name(content_dir: Path) -> str:
    """The list the site's broadcasts already name (content/newsletters/), else ``newsletter``."""
    from drip.content.broadcasts import read_broadcasts

    found, _problems = read_broadcasts(content_dir)
    named = sorted({b.list for b in found})
    return named[0] if len(named) == 1 else "newsletter"


def _ask(given: str | None, prompt: str, default: str | None, *, yes: bool) -> str:
    """A flag's value, else the default with --yes, else a question."""
    if given is not None:
        return given
    if yes:
        if default is None:
            raise click.UsageError(f"--yes needs a value for {prompt.lower()}: give it as a flag")
        return default
    return str(click.prompt(prompt, default=default))


def _answers(root: Path, hugo: HugoSite, flags: Mapping[str, str | None], yes: bool) -> dict[str, str | None]:
    lang = (hugo.language or "").split("-")[0].lower()
    base = _ask(flags["base_url"], "Base URL", hugo.base_url, yes=yes).rstrip("/")
    name = _ask(flags["name"], "Site name", hugo.title or root.resolve().name, yes=yes)
    host = urlsplit(base).hostname or "example.org"
    locale = _ask(flags["locale"], "Language (fr or en)", lang if lang in LOCALES else "en", yes=yes)
    return {
        "name": name,
        "base_url": base,
        "locale": locale,
        "content": content_path(root, hugo, locale),
        "timezone": _ask(flags["timezone"], "Time zone", "UTC", yes=yes),
        "sender_name": _ask(flags["sender_name"], "Sender name", name, yes=yes),
        "sender_email": _ask(flags["sender_email"], "Sender email", f"newsletter@{host}", yes=yes),
        "postal_address": _ask(
            flags["postal_address"], "Postal address (required in every email)", None, yes=yes
        ),
    }


def _pillar_schedules(site: Site) -> dict[str, str]:
    """Schedule file name → text, for every pillar page with a reading path: the content read as
    `drip check` reads it (drip.yaml's content folder and locale), so each schedule compiles there."""
    from drip.content.cache import CACHE_DIR
    from drip.content.pillar import read_pillar
    from drip.content.posts import load_content

    content = site.content_dir
    if not content.is_dir():
        return {}
    index = load_content(content, cache_dir=site.root / CACHE_DIR, locale=site.config.site.locale)
    out: dict[str, str] = {}
    for slug, path in sorted(index.pillars.items()):
        try:
            pillar = read_pillar(path, content=index)
        except InputError:
            continue  # no reading path, or broken: `drip check` says why once it is scheduled
        if not pillar.reading_path:
            continue
        ref = slug if path.parent == content else path.relative_to(content).as_posix()
        closing = bool(pillar.deeper or pillar.other_pillars)
        out[f"{slug.replace('/', '-')}.yaml"] = schedule_yaml(ref, pillar.title, closing=closing)
    return out


def _write_new(path: Path, text: str) -> bool:
    """Write ``path`` unless it exists: re-running init never overwrites a file."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _option(name: str, text: str) -> Callable[[FC], FC]:
    return click.option(f"--{name}", name.replace("-", "_"), metavar="TEXT", help=text)


@cli.command()
@click.option("--yes", "-y", is_flag=True, help="Ask nothing: Hugo's config, flags and defaults only.")
@_option("name", "Site name (default: Hugo's title).")
@_option("base-url", "Base URL (default: Hugo's baseURL).")
@_option("locale", "fr or en (default: Hugo's languageCode).")
@_option("timezone", "IANA zone for subscribers without one (default: UTC).")
@_option("sender-name", "Sender name (default: the site name).")
@_option("sender-email", "Sender address (default: newsletter@ the site's host).")
@_option("postal-address", "Postal address shown in every email (required).")
@click.pass_obj
def init(obj: Context, /, yes: bool, **flags: str | None) -> None:
    """Start drip in an existing site: drip.yaml, one schedule per pillar page with a reading path, and a
    newsletter list with its weekly digest (unless the site has lists already).

    Reads the site name, base URL and language from Hugo's config when present; asks
    for the rest (or takes flags, with --yes). An existing file is never overwritten.
    """
    from drip.config import load_site
    from drip.course.kinds import schedule_kind as kind_of

    root = obj.site_dir
    hugo = read_hugo_config(root)
    echo = obj.runtime.console.print
    config = root / "drip.yaml"
    if config.exists():
        echo("kept drip.yaml (it exists)", markup=False)
    else:
        if hugo.path is not None:
            echo(f"reading {hugo.path.name}", markup=False)
        _write_new(config, drip_yaml(_answers(root, hugo, flags, yes)))
        load_site(root)  # a value the answers got wrong is a located error now, not at the first send
        echo("wrote drip.yaml", markup=False)
    site = load_site(root)
    for name, text in _pillar_schedules(site).items():
        done = _write_new(root / "schedules" / name, text)
        echo(f"{'wrote' if done else 'kept'} schedules/{name}{'' if done else ' (it exists)'}", markup=False)
    (root / "schedules").mkdir(exist_ok=True)
    if not any(kind_of(path) in ("list", "digest") for path in (root / "schedules").glob("*.yaml")):
        for name, text in newsletter_yaml(site.config.site.name, _list_name(site.content_dir)).items():
            done = _write_new(root / "schedules" / name, text)
            echo(
                f"{'wrote' if done else 'kept'} schedules/{name}{'' if done else ' (it exists)'}",
                markup=False,
            )
    echo("next: drip check", markup=False)
