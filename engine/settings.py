"""Runtime configuration, read from environment variables and a `.env` file.

Every setting is an upper-case environment variable named like the field (`DATABASE_URL`
for `database_url`); a `.env` file in the working directory is read too, and real
environment variables win over it. Secrets are `SecretStr` so they never show up in a
`repr`, a log line or a traceback: call `.get_secret_value()` where the value is needed.

`get_settings()` is what application code calls; it is cached for the process. Tests build
their own with `load_settings(**overrides)` or swap what `get_settings()` returns for a
block with `settings_override(**overrides)`.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.errors import ConfigError
from engine.language.compliance import DEFAULT_POSTAL_ADDRESS
from engine.signing import GENERATE_SECRET_HINT, MIN_SECRET_BYTES, Keyring

SECRET_FILE_NAME = "secret"


class Settings(BaseSettings):
    """All knobs of the engine, worker, API and mailer, with production-safe defaults."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
    )

    playbook_home: Path = Field(
        default=Path(".playbook"),
        description="Data directory: the SQLite database and the generated signing secret.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store; empty means SQLite in PLAYBOOK_HOME.",
        repr=False,  # may carry a password
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "playbooks"
    task_undo_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="How long a task's completion can be undone; the enrollment acts on it "
        "only then. 0 acts at once and offers no undo.",
    )
    temporal_tls_cert: Path | None = Field(default=None, description="Client cert (PEM) path.")
    temporal_tls_key: Path | None = Field(default=None, description="Client key (PEM) path.")
    temporal_api_key: SecretStr | None = None

    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = Field(
        default="https://api.sendgrid.com",
        description="SendGrid API base URL; tests point it at the local stand-in.",
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None,
        description="Base64 ECDSA public key that signs SendGrid event webhooks.",
    )

    playbook_env: Literal["production", "development"] = Field(
        default="production",
        description="`development` accepts a short SIGNING_SECRET (with a warning), for a "
        "local trial or a demo; `production` refuses one.",
    )
    signing_secret: SecretStr = Field(
        default=SecretStr(""),
        description="The secret every signing key is derived from (sessions, CSRF, flash "
        "messages, unsubscribe links); generated and kept in PLAYBOOK_HOME/secret when not "
        f"set, so links stay valid across restarts. At least {MIN_SECRET_BYTES} bytes.",
    )
    signing_secrets_previous: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Secrets rotated out, comma-separated: still accepted to verify sessions, "
        "forms and unsubscribe links, never to sign. Drop one when its links may expire.",
    )
    public_base_url: str = "http://localhost:8000"
    mail_from_email: str = "success@example.com"
    mail_from_name: str = "Customer Success"
    playbook_postal_address: str = Field(
        default=DEFAULT_POSTAL_ADDRESS,
        min_length=1,
        description="The sender's postal address, shown in every email to a customer contact "
        "(the default is the demo's fictional company: set yours before sending real mail).",
    )

    slack_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack incoming-webhook URL: task events for the team, and `notify` "
        "steps with channel slack. Unset: they are captured, not sent.",
    )
    notify_webhook_url: str | None = Field(
        default=None,
        description="Generic outbound webhook for task events and `notify` steps with "
        "channel webhook (JSON, signed with NOTIFY_WEBHOOK_SECRET).",
    )
    notify_webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of the X-Playbook-Signature header on outbound webhooks.",
    )
    webhook_endpoints: dict[str, str] = Field(
        default_factory=dict,
        description='Named endpoints of `webhook` steps, as JSON: {"crm": "https://..."}.',
    )

    worker_max_concurrent_activities: int = Field(default=100, ge=1)
    worker_sqlite_max_concurrent_activities: int = Field(
        default=8,
        ge=1,
        description="The cap on a worker's concurrent activities when the store is SQLite: "
        "one writer at a time, so more only queue on its lock (a burst of enrollments then "
        "waits in Temporal's task queue instead of failing with 'database is locked').",
    )
    worker_activity_pollers: int | None = Field(
        default=None,
        ge=1,
        description="Activity task polls a worker keeps open (default: a quarter of its "
        "activity slots, from 1 to 5). Each open poll holds one slot; a slot left free lets "
        "an activity start in the reply to the workflow task that scheduled it, without a "
        "trip through Temporal's task queue.",
    )
    render_cpu_seconds: float = Field(
        default=1.0,
        gt=0,
        description="CPU time one template render or expression may take (render budget).",
    )
    render_max_produced: int = Field(
        default=10_000_000,
        ge=1_000,
        description="Characters or items one render may produce in all (render budget).",
    )

    @property
    def activity_slots(self) -> int:
        """How many activities a worker runs at once: `worker_max_concurrent_activities`,
        capped by `worker_sqlite_max_concurrent_activities` on SQLite."""
        if make_url_backend(self.database_url) == "sqlite":
            return min(
                self.worker_max_concurrent_activities,
                self.worker_sqlite_max_concurrent_activities,
            )
        return self.worker_max_concurrent_activities

    @property
    def activity_pollers(self) -> int:
        """How many activity task polls a worker keeps open: `worker_activity_pollers`, or a
        quarter of `activity_slots` (1 to 5), never more than the slots.

        Temporal's worker takes a slot for every open poll before it polls, so the SDK's
        default of 5 polls held 5 of SQLite's 8 slots: with two activities running, the next
        one could not start eagerly and went through the task queue, up to ~55 ms later on
        the dev server (bench/RESULTS.md, "Eager starts and collector pauses").
        """
        slots = self.activity_slots
        if self.worker_activity_pollers is not None:
            return min(self.worker_activity_pollers, slots)
        return max(1, min(5, slots // 4))

    @field_validator("signing_secrets_previous", mode="before")
    @classmethod
    def _split_previous(cls, value: Any) -> Any:
        """`SIGNING_SECRETS_PREVIOUS=old1,old2` (commas or whitespace) as a list."""
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    session_idle_minutes: float = Field(
        default=30, gt=0, description="A web session unused this long ends (idle timeout)."
    )
    session_max_hours: float = Field(
        default=12, gt=0, description="A web session ends this long after its login, used or not."
    )
    login_form_minutes: float = Field(
        default=10, gt=0, description="How long a login form (its single-use nonce) stays valid."
    )
    login_backoff_after: int = Field(
        default=3,
        ge=0,
        description="Failed logins of an account or client address allowed before each next "
        "try must wait (1 s, then doubling up to LOGIN_BACKOFF_MAX_SECONDS).",
    )
    login_backoff_max_seconds: float = Field(default=60, ge=0)
    login_lockout_failures: int = Field(
        default=20, ge=1, description="Failed logins that lock an account out."
    )
    login_client_backoff_after: int = Field(
        default=20,
        ge=0,
        description="Like LOGIN_BACKOFF_AFTER, for one client address (an office shares one).",
    )
    login_client_lockout_failures: int = Field(
        default=100, ge=1, description="Failed logins that lock a client address out."
    )
    login_lockout_minutes: float = Field(
        default=15,
        gt=0,
        description="How long a lockout lasts; failures are also forgotten after this long "
        "without a new one.",
    )

    # Request limits of the HTTP server (docs/deploy.md, "Limits").
    api_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest /api request body (413 past it)."
    )
    webhook_max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest webhook body (SendGrid batches)."
    )
    form_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest body of any other route (UI forms)."
    )
    http_body_timeout: float = Field(
        default=60, gt=0, description="Seconds a client has to send a whole request body (408)."
    )
    http_header_timeout: float = Field(
        default=10, gt=0, description="Seconds a client has to send a request's line and headers."
    )
    http_max_header_bytes: int = Field(
        default=16 * 1024, ge=4096, description="Largest request line plus headers (400)."
    )
    http_keep_alive_timeout: int = Field(
        default=5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    http_limit_concurrency: int = Field(
        default=200, ge=1, description="Connections and requests at once; more are 503."
    )
    api_docs: bool = Field(
        default=True, description="Serve /docs and /redoc (assets are local, never a CDN)."
    )

    @model_validator(mode="after")
    def _fill_derived_defaults(self) -> Settings:
        """Anchor the data dir, derive the database URL and load or create the secret."""
        self.playbook_home = self.playbook_home.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.playbook_home / 'playbook.db'}"
        if not self.signing_secret.get_secret_value():
            self.signing_secret = SecretStr(_load_or_create_secret(self.playbook_home))
        self.public_base_url = self.public_base_url.rstrip("/")
        self.sendgrid_host = self.sendgrid_host.rstrip("/")
        self._check_secret_strength()
        return self

    def _check_secret_strength(self) -> None:
        """Refuse a short signing secret in production: it lets anyone forge a session."""
        named = [("SIGNING_SECRET", self.signing_secret)] + [
            ("SIGNING_SECRETS_PREVIOUS", s) for s in self.signing_secrets_previous
        ]
        for name, secret in named:
            size = len(secret.get_secret_value().encode("utf-8"))
            if size >= MIN_SECRET_BYTES:
                continue
            message = (
                f"{name} has {size} bytes; at least {MIN_SECRET_BYTES} are needed, or "
                f"sessions and unsubscribe links can be forged. Generate one with: "
                f"{GENERATE_SECRET_HINT}"
            )
            if self.playbook_env == "production":
                raise ConfigError(message + " (PLAYBOOK_ENV=development accepts it for a trial)")
            logging.getLogger(__name__).warning("%s (accepted: PLAYBOOK_ENV=development)", message)

    def signing_keys(self) -> Keyring:
        """The keyring every signed value uses: the current secret and the previous ones."""
        return Keyring(
            self.signing_secret.get_secret_value(),
            tuple(s.get_secret_value() for s in self.signing_secrets_previous),
        )


def _load_or_create_secret(home: Path) -> str:
    """Return the secret persisted in `home`, creating it (mode 0600) on first use.

    Creation uses O_EXCL so two processes starting together agree on one secret: the
    loser of the race reads the winner's file.
    """
    path = home / SECRET_FILE_NAME
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
        raise RuntimeError(f"{path} is empty; delete it or set SIGNING_SECRET") from None
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def load_settings(**overrides: Any) -> Settings:
    """Build fresh, uncached settings: environment and `.env`, then `overrides` on top.

    Overrides use field names (`playbook_home=tmp_path`), not environment variable names.
    """
    return Settings(**overrides)


_override: Settings | None = None


@lru_cache(maxsize=1)
def _cached_settings() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The process-wide settings, read once (or the active `settings_override`)."""
    if _override is not None:
        return _override
    return _cached_settings()


@contextmanager
def settings_override(**overrides: Any) -> Iterator[Settings]:
    """Make `get_settings()` return `load_settings(**overrides)` inside the block (tests)."""
    global _override
    previous = _override
    _override = load_settings(**overrides)
    try:
        yield _override
    finally:
        _override = previous


def make_url_backend(url: str) -> str:
    """The backend of a database URL ("sqlite", "postgresql", ...), "sqlite" when empty
    (the default store)."""
    return url.split(":", 1)[0].split("+", 1)[0] if url else "sqlite"
