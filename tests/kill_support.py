"""Real `drip run` worker processes for the SIGKILL tests: start, kill, stop, and watch them progress."""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from delivery_fixtures import real_site, start_worker, unfinished

from drip.config import Site
from drip.store.claims import in_flight
from drip.store.schema import deliveries

BATCH = 20
LEASE = 5  # seconds; the shortest drip.yaml allows
DELIVERY_HEADER = re.compile(rb"^X-Drip-Delivery: (\d+)\r$", re.MULTILINE)


def wait_while_progressing(engine: sa.Engine, *, stall: float = 3 * LEASE + 30) -> None:
    """Until nothing is left, or nothing was sent for ``stall`` seconds (longer than a lease can hold)."""
    left, moved = unfinished(engine), time.monotonic()
    while left:
        time.sleep(0.2)
        now_left = unfinished(engine)
        if now_left < left:
            left, moved = now_left, time.monotonic()
        elif time.monotonic() - moved > stall:
            return


def holders(engine: sa.Engine) -> set[str]:
    """Workers holding a live lease right now (the worker name starts the lease token)."""
    now = dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        tokens = conn.execute(sa.select(deliveries.c.lease_token).where(in_flight(now))).scalars()
        return {t.split(":", 1)[0] for t in tokens if t}


@dataclass
class Workers:
    """The `drip run` processes alive now, named w1, w2… in the order they were started."""

    site: Site
    logs: Path
    env: dict[str, str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    generation: int = 0

    def start(self) -> None:
        self.generation += 1
        name = f"w{self.generation}"
        self.running[name] = start_worker(self.site, name, self.logs, self.env)

    def kill(self, name: str) -> None:
        self.running[name].send_signal(signal.SIGKILL)
        self.running.pop(name).wait(timeout=10)

    def stop(self) -> dict[str, int]:
        """SIGTERM to each: the batch in flight is finished and recorded, then a clean exit."""
        for proc in self.running.values():
            proc.send_signal(signal.SIGTERM)
        return {name: proc.wait(timeout=20) for name, proc in self.running.items()}

    def log_tail(self, name: str) -> str:
        return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-20:])


def smtp_site(tmp_path: Path, port: int, *, batch_size: int = BATCH) -> Site:
    """The example course sent over SMTP to ``port`` on 127.0.0.1, with short leases."""
    return real_site(
        tmp_path / "site",
        database=f"sqlite:///{tmp_path / 'drip.db'}",
        transport=(
            "transport:\n  backend: smtp\n  smtp:\n"
            f"    host: 127.0.0.1\n    port: {port}\n    security: none\n    timeout: 10\n"
        ),
        batch_size=batch_size,
        lease_seconds=LEASE,
    )
