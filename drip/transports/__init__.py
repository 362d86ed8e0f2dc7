"""Transports: outbox (default), smtp, sendgrid, memory — one module each behind one interface.

Each provider module exposes ``from_site(site) -> Transport``. Modules are
imported only when chosen, so a site using the outbox never loads the SendGrid
client. Adding a provider means one module and one line in :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import cast

from drip.config import Site
from drip.errors import ConfigError, Problem, did_you_mean
from drip.inputs.yamlfile import load_yaml_file
from drip.transports.base import Transport

BACKENDS: dict[str, str] = {
    "outbox": "drip.transports.outbox",
    "smtp": "drip.transports.smtp",
    "sendgrid": "drip.transports.sendgrid",
    "memory": "drip.transports.memory",
}


def get_transport(site: Site) -> Transport:
    """The transport named by ``transport.backend`` in drip.yaml, configured from the site."""
    backend = site.config.transport.backend
    module_name = BACKENDS.get(backend)
    if module_name is None:
        raise ConfigError(
            Problem(
                f"unknown transport backend {backend!r}",
                file=site.root / "drip.yaml",
                key="transport.backend",
                hint=did_you_mean(backend, BACKENDS),
            )
        )
    module = importlib.import_module(module_name)
    try:
        return cast(Transport, module.from_site(site))
    except ConfigError as exc:
        raise ConfigError([_in_config_file(site, p) for p in exc.problems]) from None


def _in_config_file(site: Site, problem: Problem) -> Problem:
    """Locate a transport's setting problem in drip.yaml (at the key, or the nearest one written)."""
    if problem.file is not None or not problem.key:
        return problem
    path = site.root / "drip.yaml"
    _, positions = load_yaml_file(path)
    where = positions.find(tuple(problem.key.split(".")))
    return replace(problem, file=path, line=where[0] if where else None, column=where[1] if where else None)
