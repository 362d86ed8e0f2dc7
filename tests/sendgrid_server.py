"""A loopback stand-in for SendGrid's ``POST /v3/mail/send`` that checks bodies against SendGrid's own schema.

Every request body the official client sends is validated with jsonschema
against ``components.requestBodies.PostMailSend`` of SendGrid's OpenAPI 3.1
description (tests/sendgrid_openapi/tsg_mail_v3.json, with its MIT licence; JSON Schema 2020-12, $refs
resolved within the document). Replies are 202 with an X-Message-Id, unless a
test queued another one (400, 429 with Retry-After, 500…), set one for every
request (``down``, an outage), or named addresses to refuse the way SendGrid does
(400 with the personalization's field path). Every request is recorded for
assertions; :func:`deliver` tells what SendGrid makes of one personalization.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).resolve().parent / "sendgrid_openapi" / "tsg_mail_v3.json"
SPEC_URI = "urn:sendgrid:tsg_mail_v3"
BODY_POINTER = "/components/requestBodies/PostMailSend/content/application~1json/schema"
API_KEY = "SG.test-key.loopback"


@cache
def mail_send_validator() -> Draft202012Validator:
    """The validator for a mail/send body, built once; fails loudly when the spec is missing."""
    if not SPEC.is_file():
        raise FileNotFoundError(f"SendGrid's OpenAPI description is missing: expected it at {SPEC}")
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec))
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": SPEC_URI + "#" + BODY_POINTER,
    }
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())


def schema_errors(body: Any) -> list[str]:
    """Every way ``body`` breaks the schema, as ``path: message`` lines (empty when valid).

    Adds the documented rules the schema leaves out: custom_args and header values
    are strings, and a personalization's substitutions total at most 10,000 bytes.
    """
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<body>'}: {e.message}"
        for e in mail_send_validator().iter_errors(body)
    ]
    if isinstance(body, dict) and isinstance(body.get("personalizations"), list):
        for i, p in enumerate(body["personalizations"]):
            for key in ("custom_args", "headers"):
                for name, value in (p.get(key) or {}).items():
                    if not isinstance(value, str):
                        errors.append(f"personalizations.{i}.{key}.{name}: {value!r} is not a string")
            size = sum(len(k.encode()) + len(v.encode()) for k, v in (p.get("substitutions") or {}).items())
            if size > 10_000:
                errors.append(f"personalizations.{i}.substitutions: {size} bytes, more than 10000")
    return sorted(errors)


def deliver(body: dict[str, Any], p: dict[str, Any]) -> tuple[str, str, str]:
    """What SendGrid makes of one personalization: each tag replaced, in one pass, in subject and content.

    Subject, text and HTML, in that order.
    """
    subs: dict[str, str] = p.get("substitutions", {})

    def fill(text: str) -> str:
        if not subs:
            return text
        pattern = "|".join(re.escape(k) for k in sorted(subs, key=len, reverse=True))
        return re.sub(pattern, lambda m: subs[m.group(0)], text)

    content = {c["type"]: c["value"] for c in body["content"]}
    return fill(body["subject"]), fill(content["text/plain"]), fill(content["text/html"])


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Recorded:
    headers: dict[str, str]
    body: Any
    errors: list[str]  # schema errors (empty when valid or when validation is off)
    status: int


class SendgridServer:
    def __init__(self, *, validate: bool = True, answer_first: bool = False) -> None:
        self.validate = validate
        self.answer_first = answer_first  # benchmarks: 202 first, then parse and record
        self.requests: list[Recorded] = []
        self.replies: deque[Reply] = deque()  # answered first, one per request
        self.refuse: set[str] = set()  # addresses answered with SendGrid's 400 for an invalid address
        self.down: Reply | None = None  # the answer to every request while set (503: an outage)
        self.lock = threading.Lock()
        self.url = ""

    @property
    def schema_errors(self) -> list[str]:
        return [e for r in self.requests for e in r.errors]

    @property
    def accepted(self) -> list[Recorded]:
        return [r for r in self.requests if r.status == 202]

    def answer(self, headers: dict[str, str], raw: bytes) -> Reply:
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            return Reply(401, body={"errors": [{"message": "The provided authorization grant is invalid."}]})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._record(headers, None, ["<body>: not JSON"], Reply(400))
        errors = schema_errors(body) if self.validate else []
        if errors:
            reply = Reply(400, body={"errors": [{"message": e, "field": None} for e in errors]})
            return self._record(headers, body, errors, reply)
        with self.lock:
            queued = self.replies.popleft() if self.replies else self.down
        if queued is not None:
            return self._record(headers, body, [], queued)
        refused = [
            {"message": "Does not contain a valid address.", "field": f"personalizations.{i}.to.{j}.email"}
            for i, p in enumerate(body["personalizations"])
            for j, to in enumerate(p["to"])
            if to["email"] in self.refuse
        ]
        if refused:
            return self._record(headers, body, [], Reply(400, body={"errors": refused}))
        return self._record(
            headers, body, [], Reply(202, headers={"X-Message-Id": secrets.token_urlsafe(16)})
        )

    def _record(self, headers: dict[str, str], body: Any, errors: list[str], reply: Reply) -> Reply:
        with self.lock:
            self.requests.append(Recorded(headers, body, errors, reply.status))
        return reply

    def can_answer_first(self, headers: dict[str, str]) -> bool:
        """True when the reply cannot depend on the body: no schema check, nothing queued or refused."""
        with self.lock:
            return (
                self.answer_first
                and not self.validate
                and not self.replies
                and self.down is None
                and not self.refuse
                and headers.get("Authorization") == f"Bearer {API_KEY}"
            )

    def stats(self) -> dict[str, Any]:
        """What a benchmark checks from another process: what was received, and the CPU this process used."""
        with self.lock:
            statuses: dict[str, int] = {}
            for r in self.requests:
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            return {
                "requests": len(self.requests),
                "personalizations": sum(
                    len(r.body["personalizations"]) for r in self.requests if r.status == 202
                ),
                "statuses": statuses,
                "cpu_seconds": time.process_time(),
            }


def _handler(state: SendgridServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/stats":
                self._reply(Reply(200, body=state.stats()))
            else:
                self._reply(Reply(404, body={"errors": [{"message": f"no route {self.path}"}]}))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = dict(self.headers.items())
            if self.path != "/v3/mail/send":
                self._reply(Reply(404, body={"errors": [{"message": f"no route {self.path}"}]}))
            elif state.can_answer_first(headers):
                # The reply is 202 whatever the body: send it, then parse and record while the
                # client builds its next request, as SendGrid's own work is not the client's.
                self._reply(Reply(202, headers={"X-Message-Id": secrets.token_urlsafe(16)}))
                self.wfile.flush()
                state.answer(headers, raw)  # recorded with the status it would have had
            else:
                self._reply(state.answer(headers, raw))

        def _reply(self, reply: Reply) -> None:
            payload = json.dumps(reply.body).encode() if reply.body is not None else b""
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            if payload:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def sendgrid_server(*, validate: bool = True, answer_first: bool = False) -> Iterator[SendgridServer]:
    """Serve on 127.0.0.1 (a free port) for the ``with`` block.

    ``validate=False`` and ``answer_first=True`` are for benchmarks only: the server
    then stays off the client's path, and ``GET /stats`` tells what it received.
    """
    state = SendgridServer(validate=validate, answer_first=answer_first)
    if validate:
        mail_send_validator()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
