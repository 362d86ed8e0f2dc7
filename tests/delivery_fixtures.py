"""What the delivery tests put in a store and send through: seeded rows, sites, courses, a transport, workers.

The stores themselves (the ``store``, ``engine`` and ``db_url`` fixtures, ``sqlite_store``,
``pg_schema``) are in :mod:`dbfixtures`.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from dbfixtures import pg_schema  # noqa: F401  (re-exported for the web tests that import it from here)

from drip.config import Site, load_site
from drip.content.models import Pillar
from drip.course.compile import compile_course
from drip.course.models import Course, Sender, SendWindow, Step
from drip.errors import TransportError
from drip.render.rendered import RenderedStep
from drip.render.slots import Slot, marker, split
from drip.store.enrollments import enroll_many as store_enroll_many
from drip.store.schema import deliveries, enrollments, subscribers
from drip.transports.base import OutgoingMessage, SendResult, TransportBase

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def _subscriber_rows(count: int, domain: str, now: dt.datetime) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "email": f"lecteur{i}@{domain}",
            "name": f"Lecteur {i}",
            "status": "active",
            "attributes": {"entreprise": f"Société {i}"},
            "created_at": now,
            "updated_at": now,
            "confirmed_at": now,
        }
        for i in range(1, count + 1)
    ]


def seed(
    engine: sa.Engine,
    *,
    subscribers_count: int,
    steps: list[tuple[str, dt.datetime]],
    course: str = "cours",
    now: dt.datetime = T0,
    domain: str = "example.org",
    started_at: dt.datetime | None = None,
) -> None:
    """Active subscribers enrolled in ``course``, one pending delivery per (step key, due time)."""
    started = started_at or now
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), _subscriber_rows(subscribers_count, domain, now))
        conn.execute(
            enrollments.insert(),
            [
                {
                    "id": i,
                    "subscriber_id": i,
                    "course": course,
                    "state": "active",
                    "started_at": started,
                    "updated_at": now,
                }
                for i in range(1, subscribers_count + 1)
            ],
        )
        conn.execute(
            deliveries.insert(),
            [
                {
                    "enrollment_id": i,
                    "subscriber_id": i,
                    "course": course,
                    "step_key": key,
                    "due_at": due,
                    "status": "pending",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(1, subscribers_count + 1)
                for key, due in steps
            ],
        )
    if engine.dialect.name == "postgresql":
        _advance_sequences(engine)


def _advance_sequences(engine: sa.Engine) -> None:
    """Explicit ids were inserted: move PostgreSQL's sequences past them."""
    with engine.begin() as conn:
        for table in ("subscribers", "enrollments"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )


def rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    """Every delivery, with the columns the store has at its revision (migration tests go back)."""
    present = {column["name"] for column in sa.inspect(engine).get_columns("deliveries")}
    columns = [column for column in deliveries.c if column.name in present]
    with engine.connect() as conn:
        return list(conn.execute(sa.select(*columns).order_by(deliveries.c.id)))


SITE_YAML = """\
site:
  name: Le métier de CTO
  base_url: https://cto.example.org
  locale: fr
  timezone: Europe/Paris
sender:
  name: Le métier de CTO
  email: lettre@cto.example.org
postal_address: 12 rue des Lilas, 69003 Lyon, France
database: {database}
transport:
  backend: {backend}
dispatch:
  batch_size: {batch_size}
  lease_seconds: {lease_seconds}
  tick_seconds: {tick_seconds}
  max_attempts: {max_attempts}
  backoff_base_seconds: 60
  backoff_max_seconds: 3600
"""


def make_site(
    root: Path,
    *,
    database: str = "sqlite:///drip.db",
    backend: str = "outbox",
    batch_size: int = 50,
    lease_seconds: int = 300,
    tick_seconds: float = 30.0,
    max_attempts: int = 3,
) -> Site:
    """A site folder with its own drip.yaml (dispatch settings chosen by the test)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "drip.yaml").write_text(
        SITE_YAML.format(
            database=database,
            backend=backend,
            batch_size=batch_size,
            lease_seconds=lease_seconds,
            tick_seconds=tick_seconds,
            max_attempts=max_attempts,
        ),
        encoding="utf-8",
    )
    return load_site(root)


def make_course(slug: str = "cours", steps: list[tuple[str, int]] | None = None) -> Course:
    """A compiled course with the given (step key, day) list; content is not needed to dispatch."""
    steps = steps if steps is not None else [("welcome", 0), ("article:/a/", 2), ("article:/b/", 4)]
    pillar = Pillar(
        path=Path("content/le-role-du-cto.md"),
        slug="le-role-du-cto",
        url="/le-role-du-cto/",
        title="Le rôle du CTO",
        description="",
        intro="",
        reading_path_heading="Par où commencer",
        reading_path=(),
    )
    return Course(
        slug=slug,
        title="Le rôle du CTO",
        locale="fr",
        timezone="Europe/Paris",
        window=SendWindow(time=dt.time(8, 30), weekdays=frozenset(range(7))),
        sender=Sender(name="Le métier de CTO", email="lettre@cto.example.org"),
        pillar=pillar,
        steps=tuple(
            Step(
                key=key,
                kind="welcome" if key == "welcome" else "article",
                number=n,
                day=day,
                subject=f"Étape {n}",
                preheader="",
                immediate=key == "welcome",
            )
            for n, (key, day) in enumerate(steps, start=1)
        ),
    )


SLOTS = (Slot("name", "lecteur"), Slot("unsubscribe_url"), Slot("attributes.entreprise"))


def simple_render(course: Course, step: Step, locale: str) -> RenderedStep:
    """A small real renderer: compiled text with slot markers, cut by :func:`split`."""
    subject = f"{step.subject} pour {marker(0)}"
    body = f'<p>Bonjour {marker(0)} de {marker(2)}</p><a href="{marker(1)}">désinscription</a>'
    text = f"Bonjour {marker(0)}\n{step.key}\nSe désinscrire : {marker(1)}\n"
    return RenderedStep(
        course=course.slug,
        step_key=step.key,
        locale=locale,
        subject=split(subject, SLOTS),
        preheader="",
        html=split(body, SLOTS),
        text=split(text, SLOTS),
    )


@dataclass
class RecordingTransport(TransportBase):
    """A transport that keeps what it is given; chosen addresses fail with a chosen error.

    Unlike :class:`drip.transports.memory.MemoryTransport` it counts batches, fails an address
    with any given error (a ``retry_after``, a provider's text) and takes the name a test needs.
    """

    name: str = "recording"
    handoff_size: int = 1000
    failures: dict[str, TransportError] = field(default_factory=dict)
    sent: list[OutgoingMessage] = field(default_factory=list)
    batches: int = 0

    def send_batch(
        self, messages: Sequence[OutgoingMessage], *, now: dt.datetime | None = None
    ) -> list[SendResult]:
        self.batches += 1
        results = []
        for m in messages:
            error = self.failures.get(m.to_email)
            if error is None:
                self.sent.append(m)
                results.append(SendResult(m.delivery_id, provider_id=f"<{m.delivery_id}@recording>"))
            else:
                results.append(SendResult(m.delivery_id, error=error))
        return results


REPO = Path(__file__).resolve().parents[1]
COURSE = "le-role-du-cto"


def real_site(
    root: Path,
    *,
    database: str,
    transport: str,
    batch_size: int = 20,
    lease_seconds: int = 5,
    tick_seconds: float = 0.2,
    max_attempts: int = 50,
) -> Site:
    """A copy of the repository's example site (its real course and templates) with chosen settings."""
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO / folder, root / folder)
    make_site(
        root,
        database=database,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        tick_seconds=tick_seconds,
        max_attempts=max_attempts,
    )
    yaml_text = (root / "drip.yaml").read_text(encoding="utf-8")
    yaml_text = yaml_text.replace("transport:\n  backend: outbox\n", transport)
    (root / "drip.yaml").write_text(yaml_text, encoding="utf-8")
    return load_site(root)


def enroll_many(engine: sa.Engine, site: Site, count: int, *, started: dt.datetime) -> int:
    """``count`` active subscribers enrolled in the example course at ``started``; returns deliveries made."""
    course = compile_course(site, COURSE)
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "email": f"lecteur{i}@example.org",
                    "name": f"Lecteur {i}",
                    "timezone": "Europe/Paris",
                    "status": "active",
                    "attributes": {},
                    "created_at": started,
                    "updated_at": started,
                }
                for i in range(count)
            ],
        )
        ids = list(conn.execute(sa.select(subscribers.c.id).order_by(subscribers.c.id)).scalars())
        enrolled = store_enroll_many(conn, ids, course, now=started)
        assert len(enrolled.new) == count
        return int(conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one())


def start_worker(site: Site, name: str, logs: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A real `drip run` worker process (python -m drip), its output kept in ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "drip", "--site", str(site.root), "run", "--worker", name],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )


def unfinished(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
            ).scalar_one()
        )
