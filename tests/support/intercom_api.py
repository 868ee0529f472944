"""A local stand-in for Intercom's Data Attributes API on 127.0.0.1, for tests.

It follows Intercom's REST API reference (versions 2.11+) as far as these
calls go:

- `Authorization: Bearer <token>`; an unknown token gets 401
  `{"type": "error.list", "errors": [{"code": "unauthorized", "message":
  "Access Token Invalid"}]}`; a known token without write access gets the same
  401 on POST/PUT (the issue's reading of Intercom: 401 also means "lacking the
  permission"), code `token_unauthorized`.
- `Intercom-Version`: a known version is required to get `messenger_writable`
  (added to the model in 2.11); older versions get attributes without it;
  an unknown version is a 400 `intercom_version_invalid`.
- `GET /data_attributes?model=contact&include_archived=true`: `{"type":
  "list", "data": [...]}`, standard and custom attributes, archived ones only
  with include_archived. The endpoint is not paginated in Intercom's
  reference, so neither is this list.
- `POST /data_attributes` (name, model, data_type, description,
  messenger_writable; false by default from 2.11); a duplicate name is a 400
  `parameter_invalid`.
- `PUT /data_attributes/{id}` (archived, description, messenger_writable);
  an unknown id is a 404 `field_not_found`.
- Every answer carries X-RateLimit-Limit/Remaining/Reset; `rate_limit(n,
  reset)` answers the next n requests with 429 and that reset time.

Tests can also make it fail creating named attributes (500, not applied),
stall before answering, or trickle its answer byte by byte.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

VERSIONS = ("1.4", "2.0", "2.5", "2.7", "2.10", "2.11", "2.12", "2.13", "2.14", "Unstable")
MESSENGER_WRITABLE_SINCE = "2.11"
DATA_TYPES = ("string", "integer", "float", "boolean", "date")
RATE_LIMIT = 10000
Mode = Literal["ok", "stall", "trickle"]

# A few of Intercom's standard contact attributes (custom: false, no id).
STANDARD = (
    ("email", "string"), ("name", "string"), ("phone", "string"), ("created_at", "date"),
    ("signed_up_at", "date"), ("last_seen_at", "date"), ("owner_id", "integer"),
)  # fmt: skip


@dataclass
class Seen:
    """One request as the stand-in received it (never the token itself)."""

    method: str
    path: str
    version: str | None
    authorized: bool
    body: dict[str, Any] | None


@dataclass
class IntercomState:
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> {"read", "write"}
    attributes: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 100
    rate_limited: int = 0  # the next n requests get 429
    reset_at: int = 0
    fail_create: set[str] = field(default_factory=set)  # 500 (not applied) creating these
    fail_all: int = 0  # when set, every authorized request gets this status (e.g. 503)
    mode: Mode = "ok"
    stall_seconds: float = 30.0
    requests: list[Seen] = field(default_factory=list)


def _version_at_least(version: str, floor: str) -> bool:
    if version == "Unstable":
        return True
    major, minor = (int(p) for p in version.split("."))
    fmajor, fminor = (int(p) for p in floor.split("."))
    return (major, minor) >= (fmajor, fminor)


class IntercomStandIn:
    """The stand-in server; `base` is its URL, `state` what it holds and has seen."""

    def __init__(self) -> None:
        self.state = IntercomState()
        self.lock = threading.Lock()
        for name, data_type in STANDARD:
            self.state.attributes.append(self._record(name, data_type, custom=False))
        handler = type("Handler", (_Handler,), {"stand_in": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what tests arrange ---------------------------------------------------------

    def add_token(self, token: str, permissions: set[str] | None = None) -> None:
        self.state.tokens[token] = {"read", "write"} if permissions is None else permissions

    def add_cda(
        self,
        name: str,
        data_type: str = "string",
        *,
        messenger_writable: bool = False,
        archived: bool = False,
        description: str = "",
    ) -> dict[str, Any]:
        record = self._record(name, data_type, custom=True, description=description)
        record.update(messenger_writable=messenger_writable, archived=archived)
        self.state.attributes.append(record)
        return record

    def rate_limit(self, requests: int, reset_at: int) -> None:
        self.state.rate_limited, self.state.reset_at = requests, reset_at

    def cda(self, name: str) -> dict[str, Any] | None:
        return next((a for a in self.state.attributes if a["custom"] and a["name"] == name), None)

    def writes(self) -> list[Seen]:
        return [r for r in self.state.requests if r.method in ("POST", "PUT")]

    def _record(
        self, name: str, data_type: str, *, custom: bool, description: str = ""
    ) -> dict[str, Any]:
        now = int(time.time())
        record: dict[str, Any] = {
            "type": "data_attribute",
            "model": "contact",
            "name": name,
            "full_name": f"custom_attributes.{name}" if custom else name,
            "label": name,
            "description": description,
            "data_type": data_type,
            "api_writable": True,
            "ui_writable": True,
            "messenger_writable": not custom,  # standard ones: set by the Messenger as usual
            "custom": custom,
            "archived": False,
        }
        if custom:
            record.update(id=self.state.next_id, admin_id="1", created_at=now, updated_at=now)
            self.state.next_id += 1
        return record

    # -- answering --------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        state = self.state
        parts = urlsplit(target)
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        version = headers.get("Intercom-Version")
        document = json.loads(body) if body else None
        state.requests.append(Seen(method, target, version, token in state.tokens, document))
        if state.rate_limited > 0:
            state.rate_limited -= 1
            return 429, _errors("rate_limit_exceeded", "Exceeded rate limit of 10000 in 10_seconds")
        if token not in state.tokens:
            return 401, _errors("unauthorized", "Access Token Invalid")
        if version is not None and version not in VERSIONS:
            return 400, _errors("intercom_version_invalid", "The requested version is invalid")
        if state.fail_all:
            return state.fail_all, _errors(
                "service_unavailable", "Sorry, the API service is unavailable"
            )
        shown = version or "2.7"  # an app's default version: older than 2.11 here
        if method in ("POST", "PUT") and "write" not in state.tokens[token]:
            return 401, _errors("token_unauthorized", "Not authorized to access resource")
        if method == "GET" and parts.path == "/data_attributes":
            query = parse_qs(parts.query)
            model = query.get("model", ["contact"])[0]
            if model not in ("contact", "company", "conversation"):
                return 400, _errors("parameter_invalid", "model must be contact or company")
            archived = query.get("include_archived", ["false"])[0] == "true"
            data = [
                self._shown(a, shown)
                for a in state.attributes
                if a["model"] == model and (archived or not a["archived"])
            ]
            return 200, {"type": "list", "data": data}
        if method == "POST" and parts.path == "/data_attributes":
            return self._create(document or {}, shown)
        if method == "PUT" and parts.path.startswith("/data_attributes/"):
            return self._update(parts.path.rsplit("/", 1)[1], document or {}, shown)
        return 404, _errors("not_found", "Resource Not Found")

    def _create(self, document: dict[str, Any], version: str) -> tuple[int, dict[str, Any]]:
        name = document.get("name")
        if not isinstance(name, str) or not name:
            return 400, _errors("parameter_not_found", "Name is required")
        if document.get("model") not in ("contact", "company"):
            return 400, _errors(
                "parameter_invalid",
                "The Data Attribute model field must be either contact or company",
            )
        if document.get("data_type") not in DATA_TYPES:
            return 400, _errors("parameter_invalid", "Data Type isn't an option")
        if any(a["name"] == name and a["model"] == "contact" for a in self.state.attributes):
            return 400, _errors(
                "parameter_invalid",
                f"You already have '{name}' in your workspace. Please choose another name.",
            )
        if name in self.state.fail_create:
            return 500, _errors("server_error", "Something went wrong on our end")
        record = self._record(
            name, document["data_type"], custom=True, description=document.get("description", "")
        )
        # From 2.11 a CDA created through the API is not Messenger-writable unless asked.
        record["messenger_writable"] = bool(document.get("messenger_writable", False))
        self.state.attributes.append(record)
        return 200, self._shown(record, version)

    def _update(
        self, raw_id: str, document: dict[str, Any], version: str
    ) -> tuple[int, dict[str, Any]]:
        record = next(
            (
                a
                for a in self.state.attributes
                if a.get("id") is not None and str(a["id"]) == raw_id
            ),
            None,
        )
        if record is None:
            return 404, _errors("field_not_found", "We couldn't find that data attribute to update")
        for key in ("archived", "description", "messenger_writable"):
            if key in document:
                record[key] = document[key]
        record["updated_at"] = int(time.time())
        return 200, self._shown(record, version)

    def _shown(self, record: dict[str, Any], version: str) -> dict[str, Any]:
        if _version_at_least(version, MESSENGER_WRITABLE_SINCE):
            return dict(record)
        return {k: v for k, v in record.items() if k != "messenger_writable"}


def _errors(code: str, message: str) -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": "000standin",
        "errors": [{"code": code, "message": message}],
    }


class _Handler(BaseHTTPRequestHandler):
    stand_in: IntercomStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        stand_in = self.stand_in
        with stand_in.lock:
            status, document = stand_in.answer(self.command, self.path, self.headers, body)
            state = stand_in.state
            mode, stall = state.mode, state.stall_seconds
            reset = state.reset_at or int(time.time()) + 10
        if mode == "stall":
            time.sleep(stall)
        payload = json.dumps(document).encode()
        remaining = 0 if status == 429 else RATE_LIMIT - 1
        head = (
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"X-RateLimit-Limit: {RATE_LIMIT}\r\n"
            f"X-RateLimit-Remaining: {remaining}\r\n"
            f"X-RateLimit-Reset: {reset}\r\n"
            "\r\n"
        ).encode()
        try:
            if mode == "trickle":
                for byte in head + payload:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            else:
                self.wfile.write(head + payload)
        except OSError:
            pass  # the client gave up: what the slow modes are for

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()


@contextmanager
def intercom_stand_in() -> Iterator[IntercomStandIn]:
    stand_in = IntercomStandIn()
    try:
        yield stand_in
    finally:
        stand_in.close()
