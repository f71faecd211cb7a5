"""A local stand-in for SendGrid's v3 Mail API that enforces SendGrid's published contract.

The test suite points the *real* ``sendgrid`` client at this server instead of
``api.sendgrid.com``, so every email the engine would send is checked against the request-body
schema of ``POST /v3/mail/send`` in SendGrid's own OpenAPI description, as carried in the
project (``tests/helpers/sendgrid_contract.json``, an unchanged extract of the official
``tsg_mail_v3.json``, checked against that file wherever it is present: see
:mod:`tests.helpers.sendgrid_contract`). A body that does not validate is answered the
way SendGrid answers it: ``400`` with an ``ErrorResponse`` body whose ``field`` names the
offending path (``personalizations.0.to``, ``from``, ``content``...). A valid body gets ``202``,
an empty body and a unique ``X-Message-Id`` header, and is recorded in
:attr:`SendGridStandIn.requests` for the test to inspect.

Reliability tests can queue answers the real service gives under load: ``429`` with SendGrid's
``X-RateLimit-*`` headers, ``500``, or a response that only comes after a delay (to drive the
client into its timeout). See :meth:`SendGridStandIn.fail_next` and
:meth:`SendGridStandIn.hang_next`.

Usage with the real client (``host`` is the base URL; the client appends ``/v3/mail/send``)::

    with SendGridStandIn() as sg:
        client = sendgrid.SendGridAPIClient(api_key=sg.api_key, host=sg.url)
        response = client.send(Mail(...))
        assert response.status_code == 202
        assert sg.requests[0].message_id == response.headers["X-Message-Id"]

The server runs in a background thread, so async tests use it the same way (call the blocking
``sendgrid`` client through ``asyncio.to_thread``, or talk to :attr:`SendGridStandIn.url` with
``httpx.AsyncClient``).

Note on the contract (the spec is used unchanged): it declares the *top-level*
``custom_args`` as a string, while ``sendgrid.helpers.mail.Mail`` serialises a global
``CustomArg`` as an object there. The stand-in follows the spec and rejects that, so code under
test should put custom args on a personalization (``CustomArg(key, value, p=0)``), where the
spec declares an object.
"""

from __future__ import annotations

import base64
import copy
import http
import json
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.helpers.sendgrid_contract import CONTRACT_PATH, MAIL_SEND_PATH

MAIL_BATCH_PATH = "/v3/mail/batch"

DEFAULT_MAX_BODY_BYTES = 30 * 1024 * 1024
"""SendGrid refuses mail-send bodies over 30 MB with ``413``."""

DEFAULT_RATE_LIMIT = 600
"""Value of ``X-RateLimit-Limit`` on injected ``429`` answers unless the test picks another."""

MAX_REPORTED_ERRORS = 50
"""Cap on validation errors per answer, so a huge bad body cannot produce a huge answer."""

MAX_MESSAGE_CHARS = 400
"""Cap on one error message: jsonschema quotes the offending value, which may be megabytes."""

DOCS_URL = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send"

# Messages SendGrid uses for answers that are not about one field (the spec's examples where it
# has one, the live service's wording otherwise).
_DEFAULT_MESSAGES: dict[int, str] = {
    400: "invalid request",
    401: "authorization required",
    403: "access forbidden",
    404: "not found",
    405: "method not allowed",
    413: "content too large",
    429: "too many requests",
    500: "internal server error",
}
_INVALID_KEY_MESSAGE = "The provided authorization grant is invalid, expired, or revoked"


# --------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------


def _json_pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _honour_nullable(node: Any) -> Any:
    """Rewrite OpenAPI 3.0's ``nullable: true`` into JSON Schema's ``type: [T, "null"]``.

    The spec is OpenAPI 3.1 (plain JSON Schema 2020-12, where ``nullable`` means nothing), but
    ``ErrorResponse.field`` still carries the 3.0 idiom; SendGrid does answer ``"field": null``,
    so the author's intent is honoured rather than flagging SendGrid's own answers as invalid.
    """
    if isinstance(node, list):
        return [_honour_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: _honour_nullable(value) for key, value in node.items()}
    if rewritten.pop("nullable", False) is True and isinstance(rewritten.get("type"), str):
        rewritten["type"] = [rewritten["type"], "null"]
    return rewritten


class MailSendContract:
    """The parts of SendGrid's OpenAPI description the stand-in enforces.

    Built from a whole OpenAPI document (the committed extract, or the official file it was
    cut from: both hold the operation and its components at the same places), so that
    ``$ref``s such as ``#/components/schemas/MailTo`` resolve inside it; validation uses JSON
    Schema 2020-12, as OpenAPI 3.1 prescribes, with format assertion on (SendGrid rejects
    malformed addresses, so ``format: email`` counts).
    """

    def __init__(self, document: Mapping[str, Any], uri: str) -> None:
        """Compile validators for the mail-send request body and the ``ErrorResponse`` shape."""
        self.uri = uri
        self.document: dict[str, Any] = _honour_nullable(copy.deepcopy(dict(document)))
        resource = DRAFT202012.create_resource(self.document)
        registry: Registry[Any] = Registry().with_resource(uri, resource)
        resolver = registry.resolver(base_uri=uri)

        operation = self.document["paths"][MAIL_SEND_PATH]["post"]
        self.operation_id: str = operation.get("operationId", "")
        body_pointer = "#/paths/" + _json_pointer_escape(MAIL_SEND_PATH) + "/post/requestBody"
        request_body = operation["requestBody"]
        if "$ref" in request_body:  # an OpenAPI Reference Object, not a schema
            body_pointer = request_body["$ref"]
            request_body = resolver.lookup(body_pointer).contents
        if "application/json" not in request_body.get("content", {}):
            raise ValueError(f"{uri}: {MAIL_SEND_PATH} takes no application/json body")
        schema_pointer = f"{body_pointer}/content/application~1json/schema"
        self.mail_send_schema: dict[str, Any] = resolver.lookup(schema_pointer).contents
        self.examples: dict[str, Any] = {
            name: example["value"]
            for name, example in request_body["content"]["application/json"]
            .get("examples", {})
            .items()
            if "value" in example
        }
        self._mail_send = Draft202012Validator(
            {"$ref": uri + schema_pointer},
            registry=registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        self._error_response = Draft202012Validator(
            {"$ref": uri + "#/components/schemas/ErrorResponse"}, registry=registry
        )
        # Validators are meant to be shareable, but a lock costs nothing next to HTTP and rules
        # out surprises from lazily-populated resolver caches when requests arrive concurrently.
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path | str | None = None) -> MailSendContract:
        """Load the contract from ``path`` (default: the committed extract), cached per file."""
        resolved = Path(path) if path is not None else CONTRACT_PATH
        return _load_contract(resolved.resolve())

    def mail_send_errors(self, body: Any) -> list[dict[str, Any]]:
        """Return ``ErrorResponse`` entries for everything wrong with a mail-send body.

        An empty list means the body validates. Each entry names the offending field as a dotted
        path (``personalizations.0.to.0.email``); for a missing property the path ends in the
        property's name, which is what a developer needs to fix the request.
        """
        with self._lock:
            errors = sorted(
                self._mail_send.iter_errors(body),
                key=lambda e: ([str(p) for p in e.absolute_path], e.message),
            )
        entries: list[dict[str, Any]] = []
        seen: set[tuple[str | None, str]] = set()
        for error in errors:
            field_path = _field_path(error)
            message = _truncate(error.message)
            if (field_path, message) in seen:
                continue
            seen.add((field_path, message))
            entries.append(
                {
                    "message": f"{field_path}: {message}" if field_path else message,
                    "field": field_path,
                    "help": {
                        "validator": str(error.validator),
                        "schema_path": "/".join(str(p) for p in error.absolute_schema_path),
                        "docs": DOCS_URL,
                    },
                }
            )
            if len(entries) >= MAX_REPORTED_ERRORS:
                break
        return entries

    def error_response_problems(self, body: Any) -> list[str]:
        """Return why ``body`` is not a valid ``ErrorResponse`` (empty list if it is)."""
        with self._lock:
            return [e.message for e in self._error_response.iter_errors(body)]


@lru_cache(maxsize=8)
def _load_contract(path: Path) -> MailSendContract:
    document = json.loads(path.read_text(encoding="utf-8"))
    return MailSendContract(document, path.as_uri())


def _field_path(error: ValidationError) -> str | None:
    """Dotted path of the field an error is about, or ``None`` for the body as a whole."""
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        # jsonschema reports one error per missing property, naming it only in the message.
        missing = [
            name
            for name in error.validator_value
            if name not in error.instance and repr(name) in error.message
        ]
        if missing:
            parts.append(str(missing[0]))
    return ".".join(parts) or None


def _truncate(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 3] + "..."


def _error_body(message: str, field_path: str | None = None) -> dict[str, Any]:
    """SendGrid's ``ErrorResponse`` for an answer about one field or about no field (null)."""
    return {"errors": [{"message": message, "field": field_path}]}


# --------------------------------------------------------------------------------------------
# What the stand-in records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    """A mail-send request the stand-in accepted (answered ``202``).

    ``headers`` are the HTTP request headers with lower-cased names; ``body`` is the parsed
    JSON exactly as sent; ``received_at`` is a Unix timestamp.
    """

    message_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float
    path: str = MAIL_SEND_PATH

    @property
    def personalizations(self) -> list[dict[str, Any]]:
        """The ``personalizations`` array (always present: the schema requires it)."""
        return list(self.body.get("personalizations", []))

    @property
    def recipients(self) -> list[str]:
        """Every ``to`` address across personalizations, in order (cc/bcc excluded)."""
        return [to["email"] for p in self.personalizations for to in p.get("to", [])]

    @property
    def subject(self) -> str | None:
        """Subject of the first personalization, falling back to the message-level subject."""
        for personalization in self.personalizations:
            if "subject" in personalization:
                return personalization["subject"]
        return self.body.get("subject")

    def has_custom_arg(self, key: str, value: Any) -> bool:
        """Whether any personalization (or the message level) carries ``custom_args[key]``."""
        scopes = [p.get("custom_args") for p in self.personalizations]
        scopes.append(self.body.get("custom_args"))
        return any(isinstance(s, dict) and key in s and s[key] == value for s in scopes)


@dataclass(frozen=True)
class RejectedRequest:
    """A request the stand-in refused on its own account (bad auth, path, size, body).

    ``body`` is the parsed JSON when the request had any, else ``None``; ``errors`` is the
    ``errors`` array the client was sent.
    """

    status: int
    errors: list[dict[str, Any]]
    body: Any
    headers: dict[str, str]
    method: str
    path: str
    received_at: float

    @property
    def fields(self) -> list[str | None]:
        """The ``field`` of every error, for terse assertions."""
        return [error.get("field") for error in self.errors]


@dataclass(frozen=True)
class InjectedFailure:
    """A request answered with a failure queued by :meth:`SendGridStandIn.fail_next`."""

    status: int
    body: Any
    response_headers: dict[str, str]
    method: str
    path: str
    received_at: float


@dataclass(frozen=True)
class _Fault:
    kind: Literal["fail", "hang"]
    status: int = 500
    message: str | None = None
    reset_after_seconds: float = 60.0
    rate_limit: int = DEFAULT_RATE_LIMIT
    seconds: float = 0.0


@dataclass(frozen=True)
class _Incoming:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    too_large: bool
    received_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class _Outgoing:
    status: int
    payload: Any = None  # None: empty body
    headers: dict[str, str] = field(default_factory=dict)


def _new_message_id() -> str:
    """22 URL-safe characters, the shape of SendGrid's ``X-Message-Id``."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")


def _parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 only and no ``NaN``/``Infinity``, which Python would let through."""

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(raw.decode("utf-8"), parse_constant=reject_constant)


# --------------------------------------------------------------------------------------------
# The stand-in
# --------------------------------------------------------------------------------------------


class SendGridStandIn:
    """A real HTTP server on ``127.0.0.1`` that answers like SendGrid's v3 Mail API.

    Serves ``POST /v3/mail/send``, ``POST /v3/mail/batch`` and ``GET /v3/mail/batch/{id}``
    from a background thread (one thread per connection), so it works the same from sync and
    async tests. All public methods are thread-safe; the recorded lists are returned as copies.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        spec_path: Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        """Prepare (not start) a stand-in.

        ``api_key`` is the only key accepted as ``Authorization: Bearer <key>`` (a random
        ``SG.``-style key if omitted); ``spec_path`` is the OpenAPI document to enforce (the
        committed extract if omitted); ``port=0`` picks a free port; ``max_body_bytes`` is the
        size above which a body gets ``413``.
        """
        self.api_key: str = api_key or f"SG.standin-{uuid.uuid4().hex}"
        self.contract = MailSendContract.from_file(spec_path)
        self.max_body_bytes = max_body_bytes
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._faults: deque[_Fault] = deque()
        self._requests: list[ReceivedMail] = []
        self._rejected: list[RejectedRequest] = []
        self._injected: list[InjectedFailure] = []
        self._batch_ids: list[str] = []
        self._server: _StandInHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve in a daemon thread; returns ``self`` for chaining."""
        if self._server is not None:
            raise RuntimeError("SendGridStandIn is already running")
        self._stopping.clear()
        server = _StandInHTTPServer(self._bind, _Handler, self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sendgrid-standin:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Pending hangs end without an answer. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        """Start the server for the duration of a ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server, whatever happened in the block."""
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._server is None:
            raise RuntimeError("SendGridStandIn is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to hand to ``SendGridAPIClient(host=...)``, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self._bind[0]}:{self.port}"

    # -- what was received -----------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedMail]:
        """Accepted mail-send requests, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def rejected(self) -> list[RejectedRequest]:
        """Requests refused with 400/401/404/405/413 by the stand-in itself (a snapshot)."""
        with self._lock:
            return list(self._rejected)

    @property
    def injected(self) -> list[InjectedFailure]:
        """Requests answered with a failure queued by :meth:`fail_next` (a snapshot)."""
        with self._lock:
            return list(self._injected)

    @property
    def batch_ids(self) -> list[str]:
        """Batch ids created through ``POST /v3/mail/batch``."""
        with self._lock:
            return list(self._batch_ids)

    def messages_for(self, custom_arg_key: str, value: Any) -> list[ReceivedMail]:
        """Accepted messages whose ``custom_args[custom_arg_key] == value`` (any personalization).

        The engine tags each email with custom args (run id, step id...), so this is how a test
        finds "the email this workflow step sent" among everything else.
        """
        return [m for m in self.requests if m.has_custom_arg(custom_arg_key, value)]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least ``count`` messages were accepted; return them all.

        For tests where the send happens on another thread or in a worker. Raises
        ``TimeoutError`` naming what did arrive, so a failure explains itself. From async code
        call it through ``asyncio.to_thread``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} accepted message(s) within {timeout}s, got "
                        f"{len(self._requests)}; rejected: {len(self._rejected)}, "
                        f"injected failures: {len(self._injected)}"
                    )
                self._changed.wait(remaining)
            return list(self._requests)

    def reset(self) -> None:
        """Forget everything received and drop queued faults (e.g. between test cases)."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._rejected.clear()
            self._injected.clear()

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        message: str | None = None,
        reset_after_seconds: float = 60.0,
        rate_limit: int = DEFAULT_RATE_LIMIT,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` and an ``ErrorResponse`` body.

        The requests are not checked or recorded as mail (they land in :attr:`injected`).
        ``429`` answers carry ``X-RateLimit-Limit: rate_limit``, ``X-RateLimit-Remaining: 0``
        and ``X-RateLimit-Reset``: the Unix time ``reset_after_seconds`` after the answer,
        as SendGrid sends them. Faults queued by this method and :meth:`hang_next` are used
        in the order they were queued, one per request.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be a 4xx or 5xx code, not {status}")
        fault = _Fault(
            "fail",
            status=status,
            message=message,
            reset_after_seconds=reset_after_seconds,
            rate_limit=rate_limit,
        )
        with self._lock:
            self._faults.extend([fault] * n)

    def hang_next(self, n: int = 1, seconds: float = 5.0) -> None:
        """Hold each of the next ``n`` requests for ``seconds`` before handling it normally.

        A client with a shorter timeout gives up; the stand-in still handles the request after
        the delay, so a valid message is then accepted and recorded, just as SendGrid may
        deliver an email whose answer the client never saw (the duplicate-send hazard that
        retries must cope with). :meth:`stop` cuts pending delays short, answering nothing.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._faults.extend([_Fault("hang", seconds=seconds)] * n)

    @property
    def pending_faults(self) -> int:
        """How many queued faults have not been used yet."""
        with self._lock:
            return len(self._faults)

    # -- request handling (called from server threads) -------------------------------------

    def _dispatch(self, request: _Incoming) -> _Outgoing | None:
        """Decide the answer to one request; ``None`` means close without answering."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "hang":
            if self._stopping.wait(fault.seconds):
                return None
        elif fault is not None:
            return self._inject(request, fault)

        path = urlsplit(request.path).path.rstrip("/") or "/"
        route = self._route(path)
        if route is None:
            return self._reject(request, 404, _error_body(_DEFAULT_MESSAGES[404]))
        allowed_method, handle = route
        if request.method != allowed_method:
            return self._reject(
                request,
                405,
                _error_body(_DEFAULT_MESSAGES[405]),
                headers={"Allow": allowed_method},
            )
        denial = self._check_auth(request)
        if denial is not None:
            return denial
        return handle(request, path)

    def _route(self, path: str) -> tuple[str, Callable[[_Incoming, str], _Outgoing]] | None:
        if path == MAIL_SEND_PATH:
            return "POST", self._mail_send
        if path == MAIL_BATCH_PATH:
            return "POST", self._create_batch
        prefix = MAIL_BATCH_PATH + "/"
        if path.startswith(prefix) and "/" not in path[len(prefix) :]:
            return "GET", self._get_batch
        return None

    def _check_auth(self, request: _Incoming) -> _Outgoing | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return self._reject(request, 401, _error_body(_DEFAULT_MESSAGES[401]))
        if key.strip() != self.api_key:
            return self._reject(request, 401, _error_body(_INVALID_KEY_MESSAGE))
        return None

    def _mail_send(self, request: _Incoming, path: str) -> _Outgoing:
        if request.too_large:
            return self._reject(request, 413, _error_body(_DEFAULT_MESSAGES[413]))
        raw = request.body
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            if encoding != "gzip":
                message = f"Content-Encoding {encoding!r} is not supported; use gzip"
                return self._reject(request, 400, _error_body(message, "Content-Encoding"))
            inflater = zlib.decompressobj(wbits=31)  # 31: gzip container
            try:
                raw = inflater.decompress(raw, self.max_body_bytes + 1)
            except zlib.error as exc:
                message = f"body is not valid gzip: {exc}"
                return self._reject(request, 400, _error_body(message, "Content-Encoding"))
            if len(raw) > self.max_body_bytes or inflater.unconsumed_tail:
                return self._reject(request, 413, _error_body(_DEFAULT_MESSAGES[413]))
        try:
            body = _parse_json(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            message = f"Bad Request: the body must be a JSON object ({_truncate(str(exc))})"
            return self._reject(request, 400, _error_body(message))
        errors = self.contract.mail_send_errors(body)
        if errors:
            return self._reject(request, 400, {"errors": errors}, body=body)
        mail = ReceivedMail(
            message_id=_new_message_id(),
            body=body,
            headers=request.headers,
            received_at=request.received_at,
            path=path,
        )
        with self._changed:
            self._requests.append(mail)
            self._changed.notify_all()
        return _Outgoing(202, None, {"X-Message-Id": mail.message_id})

    def _create_batch(self, request: _Incoming, path: str) -> _Outgoing:
        batch_id = _new_message_id() + _new_message_id()
        with self._lock:
            self._batch_ids.append(batch_id)
        return _Outgoing(201, {"batch_id": batch_id})

    def _get_batch(self, request: _Incoming, path: str) -> _Outgoing:
        batch_id = path.rsplit("/", 1)[1]
        with self._lock:
            known = batch_id in self._batch_ids
        if not known:
            return self._reject(request, 400, _error_body("invalid batch id", "batch_id"))
        return _Outgoing(200, {"batch_id": batch_id})

    def _reject(
        self,
        request: _Incoming,
        status: int,
        payload: dict[str, Any],
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> _Outgoing:
        if body is None and request.body and not request.too_large:
            try:
                body = _parse_json(request.body)
            except (UnicodeDecodeError, ValueError):
                body = None
        record = RejectedRequest(
            status=status,
            errors=payload["errors"],
            body=body,
            headers=request.headers,
            method=request.method,
            path=request.path,
            received_at=request.received_at,
        )
        with self._changed:
            self._rejected.append(record)
            self._changed.notify_all()
        return _Outgoing(status, payload, headers or {})

    def _inject(self, request: _Incoming, fault: _Fault) -> _Outgoing:
        message = fault.message or _DEFAULT_MESSAGES.get(
            fault.status, http.HTTPStatus(fault.status).phrase.lower()
        )
        payload = _error_body(message)
        headers: dict[str, str] = {}
        if fault.status == 429:
            headers = {
                "X-RateLimit-Limit": str(fault.rate_limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time() + fault.reset_after_seconds)),
            }
        try:
            body = _parse_json(request.body) if request.body else None
        except (UnicodeDecodeError, ValueError):
            body = None
        record = InjectedFailure(
            status=fault.status,
            body=body,
            response_headers=headers,
            method=request.method,
            path=request.path,
            received_at=request.received_at,
        )
        with self._changed:
            self._injected.append(record)
            self._changed.notify_all()
        return _Outgoing(fault.status, payload, headers)


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _BadFraming(Exception):
    """The request's length or chunk framing is unreadable; answer 400 and close."""


class _StandInHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` that knows its stand-in and never blocks shutdown on clients."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        standin: SendGridStandIn,
    ) -> None:
        self.standin = standin
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP/1.1 requests into :class:`_Incoming` and answers with :class:`_Outgoing`."""

    server: _StandInHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "SendGridStandIn/1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections give their thread back eventually

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests assert on :attr:`SendGridStandIn.requests`, not on stderr."""

    def _handle(self) -> None:
        standin = self.server.standin
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body, too_large = self._read_body(standin.max_body_bytes)
        except _BadFraming as exc:
            self.close_connection = True
            self._write(_Outgoing(400, _error_body(f"Bad Request: {exc}")))
            return
        request = _Incoming(self.command, self.path, headers, body, too_large)
        outgoing = standin._dispatch(request)
        if outgoing is None:
            self.close_connection = True
            return
        self._write(outgoing)

    def _read_body(self, limit: int) -> tuple[bytes, bool]:
        """Read the whole body, keeping at most ``limit`` bytes; report whether it was over.

        Oversized bodies are still drained, so the client gets the 413 rather than a reset
        connection while it is still sending.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b"", False
        try:
            length = int(declared)
        except ValueError:
            raise _BadFraming(f"invalid Content-Length {declared!r}") from None
        if length < 0:
            raise _BadFraming(f"invalid Content-Length {declared!r}")
        if length <= limit:
            return self.rfile.read(length), False
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        return b"", True

    def _read_chunked(self, limit: int) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        size_so_far = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadFraming("invalid chunk size") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            chunk = self.rfile.read(size)
            self.rfile.readline(1024)  # CRLF after the chunk
            size_so_far += len(chunk)
            if size_so_far <= limit:
                parts.append(chunk)
        if size_so_far > limit:
            return b"", True
        return b"".join(parts), False

    def _write(self, outgoing: _Outgoing) -> None:
        data = b"" if outgoing.payload is None else json.dumps(outgoing.payload).encode()
        try:
            self.send_response(outgoing.status)
            if outgoing.payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in outgoing.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout fired during a hang); nothing to answer.
            self.close_connection = True
