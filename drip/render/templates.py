"""Finding and running email templates: site folder first, then drip's defaults.

A site overrides any default by placing a file of the same name in its own
``email_templates/`` (a Jinja ``ChoiceLoader``). MJML templates (``*.mjml``) are
autoescaped; text templates (``*.txt``) and subjects are plain text.

Per-subscriber fields never reach a template: ``subscriber.name`` or
``subscriber("name", "default")`` returns a slot marker, recorded in a
:class:`SlotRecorder`, so a template compiles once and is personalised later.
Every Jinja or MJML mistake becomes a :class:`~drip.errors.TemplateError`
naming the template file and line.
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes

from drip.course.schedule import SUBJECT_NAMES
from drip.errors import InputError, Problem, TemplateError, did_you_mean
from drip.inputs.stamps import Stamp, stamp
from drip.inputs.textfile import read_text
from drip.render.mjml import lint
from drip.render.slots import Slot, marker

DEFAULTS_DIR = Path(__file__).resolve().parent.parent / "defaults" / "email_templates"

# The fields a subscriber brings; anything else lives under ``attributes.<key>``.
SUBSCRIBER_FIELDS = ("name", "email", "unsubscribe_url", "preferences_url", "view_url")
TEMPLATE_SUFFIXES = (".mjml", ".txt", ".j2")
# What a step's templates see: a subject's names, and the subject and preheader themselves.
TEMPLATE_NAMES = SUBJECT_NAMES | {"subject", "preheader"}
STEP_TEMPLATES = tuple(
    f"{kind}.{ext}" for kind in ("welcome", "article", "section", "closing") for ext in ("mjml", "txt")
)
_MAX_STRINGS = 1024  # compiled subjects kept per environment


class SlotRecorder:
    """Hands out one marker per distinct (field, default) and remembers the slot behind it."""

    def __init__(self) -> None:
        self.slots: list[Slot] = []
        self._index: dict[Slot, int] = {}

    def marker_for(self, name: str, default: str = "") -> str:
        slot = Slot(name, default)
        index = self._index.get(slot)
        if index is None:
            index = self._index[slot] = len(self.slots)
            self.slots.append(slot)
        return marker(index)


class _Attributes:
    """``subscriber.attributes.company`` → the slot ``attributes.company``."""

    def __init__(self, recorder: SlotRecorder) -> None:
        self._recorder = recorder

    def __getattr__(self, key: str) -> str:
        if key.startswith("_"):
            raise AttributeError(key)
        return self._recorder.marker_for(f"attributes.{key}")

    def __getitem__(self, key: str) -> str:
        return self._recorder.marker_for(f"attributes.{key}")


class Subscriber:
    """What templates see as ``subscriber``: attribute access or a call, both yield slot markers."""

    def __init__(self, recorder: SlotRecorder) -> None:
        self._recorder = recorder
        self.attributes = _Attributes(recorder)

    def __call__(self, field: str, default: str = "") -> str:
        if field not in SUBSCRIBER_FIELDS and not field.startswith("attributes."):
            hint = did_you_mean(field, SUBSCRIBER_FIELDS)
            raise jinja2.UndefinedError(
                f"unknown subscriber field {field!r}"
                + (f" ({hint})" if hint else "")
                + "; use one of "
                + ", ".join(SUBSCRIBER_FIELDS)
                + " or attributes.<key>"
            )
        return self._recorder.marker_for(field, str(default))

    # Explicit properties, not __getattr__: Jinja probes callables for attributes
    # (jinja_pass_arg, unsafe_callable…), and an unknown field must stay an error.
    @property
    def name(self) -> str:
        return self("name")

    @property
    def email(self) -> str:
        return self("email")

    @property
    def unsubscribe_url(self) -> str:
        return self("unsubscribe_url")

    @property
    def preferences_url(self) -> str:
        return self("preferences_url")

    @property
    def view_url(self) -> str:
        return self("view_url")


Signature = Stamp


class TemplateEnvironment(jinja2.Environment):
    """A Jinja environment that remembers, for itself, what :func:`check_templates` last found.

    The record lives on the environment, not in the module: whoever holds the
    environment holds its check, and two environments never share one.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.checked: Signature | None = None
        self.check_lock = threading.Lock()
        self.strings: dict[str, jinja2.Template] = {}  # subjects and preheaders, compiled once


def _loader(site_templates: Path) -> jinja2.BaseLoader:
    return jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(str(site_templates)), jinja2.FileSystemLoader(str(DEFAULTS_DIR))]
    )


@functools.lru_cache(maxsize=32)
def environment(site_templates: Path) -> TemplateEnvironment:
    """One Jinja environment per site templates folder (compiled templates are cached in it).

    Not sandboxed: templates and subjects are site source files, as trusted as
    drip.yaml, and subscriber data never passes through Jinja (it fills slots
    afterwards), so there is nothing untrusted to contain; the sandbox would
    double the cost of a render.
    """
    env = TemplateEnvironment(
        loader=_loader(site_templates),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml", "html"), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # check_templates() notices edited files and empties the cache: no stat per lookup.
        auto_reload=False,
    )
    return env


def _template_frame(exc: BaseException) -> tuple[Path, int] | None:
    """The innermost template file and line in an exception's traceback (Jinja rewrites frames)."""
    found: tuple[Path, int] | None = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith(TEMPLATE_SUFFIXES):
            found = (Path(frame.filename), frame.lineno or 0)
    return found


def problem_from(exc: Exception, *, what: str, key: str | None = None, file: Path | None = None) -> Problem:
    """A located Problem for any error raised while loading or rendering a template."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        path = Path(exc.filename) if exc.filename else file
        return Problem(f"template syntax error: {exc.message}", file=path, line=exc.lineno, key=key)
    located = _template_frame(exc)
    if isinstance(exc, jinja2.TemplateNotFound):
        where = located or (file, None)
        return Problem(f"template not found: {exc.name}", file=where[0], line=where[1], key=key)
    message = str(exc) if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {exc}"
    if located is not None:
        return Problem(f"error in {what}: {message}", file=located[0], line=located[1], key=key)
    return Problem(f"error in {what}: {message}", file=file, key=key)


@contextmanager
def template_errors(*, what: str, key: str | None = None, file: Path | None = None) -> Iterator[None]:
    """Turn any template failure inside the block into a TemplateError naming file and line."""
    try:
        yield
    except TemplateError:
        raise
    except Exception as exc:
        raise TemplateError(problem_from(exc, what=what, key=key, file=file)) from None


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any], *, key: str | None = None) -> str:
    """Render one named template; any failure is a TemplateError located in the template."""
    with template_errors(what=f"template {name}", key=key):
        return env.get_template(name).render(context)


def _compiled_string(env: jinja2.Environment, source: str) -> jinja2.Template:
    """``source`` compiled once per environment (emptied with its check when a template changes)."""
    if not isinstance(env, TemplateEnvironment):
        return env.from_string(source)
    compiled = env.strings.get(source)
    if compiled is None:
        if len(env.strings) >= _MAX_STRINGS:
            env.strings.clear()
        compiled = env.strings[source] = env.from_string(source)
    return compiled


def render_string(
    env: jinja2.Environment,
    source: str,
    context: Mapping[str, Any],
    *,
    what: str,
    file: Path | None,
    key: str,
) -> str:
    """Render a Jinja snippet written elsewhere (a subject in a schedule) as plain text."""
    with template_errors(what=what, key=key, file=file):
        return _compiled_string(env, source).render(context)


def _signature(env: jinja2.Environment) -> Signature:
    """Name, mtime and size of every file the environment's loaders can see."""
    loader = env.loader
    loaders = loader.loaders if isinstance(loader, jinja2.ChoiceLoader) else [loader]
    folders = [Path(folder) for sub in loaders for folder in getattr(sub, "searchpath", [])]
    return stamp(folders, TEMPLATE_SUFFIXES)


def _undecodable(env: jinja2.Environment, name: str) -> list[Problem]:
    """The located problem of a template file that is not UTF-8 (the first file the loaders pick)."""
    loader = env.loader
    for sub in loader.loaders if isinstance(loader, jinja2.ChoiceLoader) else [loader]:
        for folder in getattr(sub, "searchpath", []):
            path = Path(folder) / name
            if path.is_file():
                try:
                    read_text(path)
                except InputError as exc:
                    return list(exc.problems)
                return []
    return []  # pragma: no cover - a listed template always has a file


def unused_site_templates(site_templates: Path) -> list[Problem]:
    """Site templates that replace no default and that no template uses: most likely a misspelt name.

    drip renders only the default names, so ``welcom.mjml`` would be ignored
    without a word; a site's own partial is fine as long as a template includes it.
    """
    if not site_templates.is_dir():
        return []
    env = environment(site_templates)
    defaults = {p.name for p in DEFAULTS_DIR.iterdir() if p.name.endswith(TEMPLATE_SUFFIXES)}
    referenced: set[str] = set()
    for name in env.list_templates(extensions=[s.lstrip(".") for s in TEMPLATE_SUFFIXES]):
        try:
            source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
            referenced.update(n for n in jinja2.meta.find_referenced_templates(env.parse(source)) if n)
        except (jinja2.TemplateError, UnicodeDecodeError):
            continue  # check_templates reports it
    problems: list[Problem] = []
    for path in sorted(site_templates.rglob("*")):
        name = path.relative_to(site_templates).as_posix()
        if path.is_file() and name.endswith(TEMPLATE_SUFFIXES) and name not in defaults | referenced:
            problems.append(
                Problem(
                    "replaces no default template and no template includes it, so it is never used",
                    file=path,
                    hint=did_you_mean(name, sorted(defaults)),
                )
            )
    return problems


def check_templates(env: TemplateEnvironment) -> None:
    """Compile every template and lint every MJML one; raise one TemplateError with all problems.

    It catches mistakes in templates no step uses yet. The result is remembered
    (by the environment) until a template file changes, so calling it before each render is cheap.
    """
    signature = _signature(env)
    with env.check_lock:
        if env.checked == signature:
            return
        if env.cache is not None:
            env.cache.clear()  # a template changed since last time: compile afresh
        env.strings.clear()
    _raise_problems(env)
    with env.check_lock:
        env.checked = signature


def _raise_problems(env: jinja2.Environment) -> None:
    """Every template compiled and every MJML one linted; one TemplateError with all problems."""
    problems: list[Problem] = []
    for name in sorted(env.list_templates(extensions=[s.lstrip(".") for s in TEMPLATE_SUFFIXES])):
        try:
            source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:  # listed by one loader, shadowed oddly: skip
            continue
        except UnicodeDecodeError:
            problems.extend(_undecodable(env, name))
            continue
        file = Path(filename) if filename else None
        try:
            env.get_template(name)
        except Exception as exc:
            problems.append(problem_from(exc, what=f"template {name}", file=file))
            continue
        if name.endswith(".mjml"):
            problems.extend(lint(source, file))
    problems.extend(unknown_names(env))
    if problems:
        raise TemplateError(problems)


def _step_templates(env: jinja2.Environment) -> dict[str, tuple[str | None, jinja2.nodes.Template]]:
    """The step templates and every template they extend, import or include, transitively.

    Each is parsed once here (file name and tree): parsing is most of what checking costs.
    """
    seen: dict[str, tuple[str | None, jinja2.nodes.Template]] = {}
    queue = list(STEP_TEMPLATES)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        try:
            source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
            tree = env.parse(source)
        except (jinja2.TemplateError, UnicodeDecodeError):
            continue  # reported by the compile step
        seen[name] = (filename, tree)
        queue.extend(n for n in jinja2.meta.find_referenced_templates(tree) if n)
    return seen


def _template_wide(tree: jinja2.nodes.Template) -> set[str]:
    """Names a template binds outside its blocks (imports, macros, ``set``), which its blocks can use."""
    names: set[str] = set()
    for node in tree.find_all((jinja2.nodes.FromImport, jinja2.nodes.Import, jinja2.nodes.Macro)):
        if isinstance(node, jinja2.nodes.FromImport):
            names.update(n if isinstance(n, str) else n[1] for n in node.names)
        elif isinstance(node, jinja2.nodes.Import):
            names.add(node.target)
        elif isinstance(node, jinja2.nodes.Macro):
            names.add(node.name)
    for assign in tree.find_all(jinja2.nodes.Assign):
        names.update(n.name for n in assign.find_all(jinja2.nodes.Name) if n.ctx == "store")
    return names


def unknown_names(env: jinja2.Environment) -> list[Problem]:
    """Variables the step templates use that no step provides: every one, at its line, before any render.

    Rendering would stop at the first with StrictUndefined; this reports them all at once.
    """
    known = TEMPLATE_NAMES | set(env.globals)
    problems: list[Problem] = []
    for name, (filename, tree) in _step_templates(env).items():
        unknown = jinja2.meta.find_undeclared_variables(tree) - known - _template_wide(tree)
        for node in tree.find_all(jinja2.nodes.Name):
            if node.name in unknown and node.ctx == "load":
                problems.append(
                    Problem(
                        f"unknown variable {node.name!r} in template {name}",
                        file=Path(filename) if filename else None,
                        line=node.lineno,
                        hint=did_you_mean(node.name, known),
                    )
                )
    return problems
