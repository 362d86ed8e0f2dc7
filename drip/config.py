"""drip.yaml: the site's typed configuration, validated with every error at once."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drip.errors import ConfigError, InputError, Problem, did_you_mean
from drip.inputs.yamlfile import load_yaml_file, validate

CONFIG_FILE = "drip.yaml"
LOCALES = ("fr", "en")
Backend = Literal["outbox", "smtp", "sendgrid", "memory"]
BACKENDS: tuple[str, ...] = get_args(Backend)  # drip.transports.BACKENDS maps each to its module


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_timezone(value: str) -> str:
    """A valid IANA zone name, or a ValueError suggesting the closest one."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(value, available_timezones())
        raise ValueError(f"unknown time zone {value!r}" + (f" ({hint})" if hint else "")) from None
    return value


def check_locale(value: str) -> str:
    if value not in LOCALES:
        hint = did_you_mean(value, LOCALES)
        raise ValueError(
            f"unsupported locale {value!r}, expected one of {', '.join(LOCALES)}"
            + (f" ({hint})" if hint else "")
        )
    return value


# What a base_url may hold once normalised: URL characters that read the same in a JSON string,
# an HTML attribute and a header (no quote, ampersand, angle bracket, backslash or space).
_BASE_URL = re.compile(
    r"https?://(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?(?:/[A-Za-z0-9\-._~!$()*+,;=:@%/]*)?"
)


def check_base_url(value: str) -> str:
    """The site's address as every link starts with it: a domain in its IDNA (xn--) form, the path
    percent-encoded, no trailing slash. Every link drip signs is this and URL-safe base64, so its
    links can go into JSON, HTML and headers as they are.
    """
    value = value.strip()
    if not value.lower().startswith(("https://", "http://")):
        raise ValueError("base_url must start with https:// or http://")
    parts = urlsplit(value)
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(f"base_url {value!r} has a query or fragment: links are added after its path")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"base_url {value!r} holds a user name or password")
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port
    except (UnicodeError, ValueError):
        raise ValueError(f"base_url {value!r} has no valid domain") from None
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    netloc = host if port is None else f"{host}:{port}"
    url = f"{parts.scheme}://{netloc}{quote(parts.path, safe='/-._~!$()*+,;=:@%')}".rstrip("/")
    if not host or _BASE_URL.fullmatch(url) is None:
        raise ValueError(f"base_url {value!r} has no valid domain")
    return url


def is_base_url(value: str) -> bool:
    """Whether ``value`` is a base_url as :func:`check_base_url` leaves it."""
    return _BASE_URL.fullmatch(value) is not None


class SiteSection(_Strict):
    name: str
    base_url: str
    locale: str = "en"
    timezone: str = "UTC"

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_base_url(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        return check_locale(v)


class SenderSection(_Strict):
    name: str
    email: str
    reply_to: str | None = None


class PathsSection(_Strict):
    content: str = "content"
    schedules: str = "schedules"
    templates: str = "email_templates"
    outbox: str = "outbox"


class SmtpSection(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    timeout: float = Field(default=30.0, gt=0)
    # Credentials never live in this file: names of environment variables only.
    username_env: str = "DRIP_SMTP_USERNAME"
    password_env: str = "DRIP_SMTP_PASSWORD"


class SendgridSection(_Strict):
    sandbox: bool = False
    api_key_env: str = "SENDGRID_API_KEY"
    host: str = "https://api.sendgrid.com"


class TransportSection(_Strict):
    backend: Backend = "outbox"
    smtp: SmtpSection = Field(default_factory=SmtpSection)
    sendgrid: SendgridSection = Field(default_factory=SendgridSection)

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, v: object) -> object:
        """A mistyped name gets the closest backend as a hint; other types are left to the Literal."""
        if isinstance(v, str) and v not in BACKENDS:
            hint = did_you_mean(v, BACKENDS)
            raise ValueError(
                f"unknown transport backend {v!r}, expected one of {', '.join(BACKENDS)}"
                + (f" ({hint})" if hint else "")
            )
        return v


DkimAlgorithm = Literal["rsa-sha256", "ed25519-sha256"]


class DkimSection(_Strict):
    """DKIM signing (SMTP and outbox). The private key is never written here: a file path or the
    name of an environment variable holding it."""

    selector: str
    domain: str | None = None  # default: the sender's domain
    algorithm: DkimAlgorithm = "rsa-sha256"
    key_file: str | None = None  # relative to the site root
    key_env: str = "DRIP_DKIM_PRIVATE_KEY"

    @field_validator("selector", "domain")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c.isspace() or c in ";=" for c in v)):
            raise ValueError(f"{v!r} is not a DNS name")
        return v

    @field_validator("key_file")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and ("-----BEGIN" in v or "\n" in v):
            raise ValueError(
                "key_file is a path to the key, never the key itself: keep the key out of drip.yaml"
            )
        return v


class BouncesSection(_Strict):
    """`drip bounces`: how many soft bounces suppress an address, and the optional return path."""

    soft_limit: int = Field(default=3, ge=1)
    # The SMTP envelope sender (MAIL FROM), e.g. bounces@example.org; with verp, each message gets
    # bounces+alice=example.net@example.org so a bounce names its recipient whatever it says.
    return_path: str | None = None
    verp: bool = False

    @field_validator("return_path")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and (v.count("@") != 1 or v.startswith("@") or v.endswith("@") or " " in v):
            raise ValueError(f"{v!r} is not an email address, e.g. bounces@example.org")
        return v

    @model_validator(mode="after")
    def _verp_needs_a_return_path(self) -> BouncesSection:
        if self.verp and self.return_path is None:
            raise ValueError("verp needs a return_path, e.g. return_path: bounces@example.org")
        return self


class DispatchSection(_Strict):
    # Deliveries one pass leases; None: the transport's own (SendGrid 1,000, outbox 500, SMTP 200).
    batch_size: int | None = Field(default=None, ge=1, le=1000)
    lease_seconds: int = Field(default=300, ge=5)
    tick_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=60.0, gt=0)
    backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)


class WebSection(_Strict):
    """`drip serve`: which proxies may say who the client is, and how much mail one mailbox may ask for."""

    # Addresses or networks (e.g. "127.0.0.1", "10.0.0.0/8") whose X-Forwarded-For/-Proto is
    # believed; empty: the headers are ignored and the client is the connecting address.
    trusted_proxies: tuple[str, ...] = ()
    confirmations_per_day: int = Field(default=3, ge=1)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network, e.g. 10.0.0.0/8") from None
        return v


class UtmSection(_Strict):
    """Which links carry utm_* tags: the site's own by default, every web link with ``external``."""

    external: bool = False


class TrackingSection(_Strict):
    """What drip counts beyond its own sends (README, "What drip counts"): both off by default."""

    clicks: bool = False  # content links go through `drip serve` at /c/<token>
    opens: bool = False  # a 1x1 image at /o/<token>; machine opens are reported apart
    utm: UtmSection = Field(default_factory=UtmSection)


class ConfigModel(_Strict):
    site: SiteSection
    sender: SenderSection
    postal_address: str
    paths: PathsSection = Field(default_factory=PathsSection)
    database: str = "sqlite:///drip.db"
    transport: TransportSection = Field(default_factory=TransportSection)
    dispatch: DispatchSection = Field(default_factory=DispatchSection)
    web: WebSection = Field(default_factory=WebSection)
    dkim: DkimSection | None = None
    bounces: BouncesSection = Field(default_factory=BouncesSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)


@dataclass(frozen=True)
class Site:
    """A site root and its validated configuration, with folders resolved."""

    root: Path
    config: ConfigModel

    @property
    def content_dir(self) -> Path:
        """``paths.content``; by default ``content/<locale>/`` when the site keeps one folder per language."""
        folder = self.root / self.config.paths.content
        if "content" not in self.config.paths.model_fields_set:
            localised = folder / self.config.site.locale
            if localised.is_dir():
                return localised
        return folder

    @property
    def schedules_dir(self) -> Path:
        return self.root / self.config.paths.schedules

    @property
    def templates_dir(self) -> Path:
        return self.root / self.config.paths.templates

    @property
    def outbox_dir(self) -> Path:
        return self.root / self.config.paths.outbox

    @property
    def database_url(self) -> str:
        """DRIP_DATABASE_URL wins; a relative SQLite path is relative to the site root."""
        url = os.environ.get("DRIP_DATABASE_URL") or self.config.database
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            url = prefix + str((self.root / url[len(prefix) :]).resolve())
        return url


def load_site(root: Path | str = ".") -> Site:
    """Read ``drip.yaml`` under ``root``; raise :class:`ConfigError` with every problem."""
    root = Path(root).resolve()
    path = root / CONFIG_FILE
    if path.is_dir():
        raise ConfigError(Problem(f"{CONFIG_FILE} is a folder; it must be a YAML file", file=path))
    if not path.is_file():
        raise ConfigError(
            Problem(f"no {CONFIG_FILE} here; run drip from a site's root or pass --site DIR", file=path)
        )
    try:
        data, pos = load_yaml_file(path)
    except InputError as exc:
        raise ConfigError(exc.problems) from None
    if data is None:
        data = {}  # an empty file: validation names every required key
    if not isinstance(data, dict):
        raise ConfigError(Problem("expected a mapping of settings at the top level", file=path, line=1))
    model, problems = validate(ConfigModel, data, pos)
    problems += pos.repeated
    if model is None or problems:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return Site(root=root, config=model)
