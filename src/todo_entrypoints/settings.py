"""Typed settings from the environment and an optional .env file, validated once at start."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from todo_adapters.ratelimit import parse_limit
from todo_adapters.sql import DatabaseConfig, normalise_url

__all__ = ["Environment", "Settings"]

MIN_SECRET_BYTES = 32


class ListShape(enum.StrEnum):
    """The body of `GET /api/tasks` (LIST_RESPONSE_SHAPE, SPEC §21): a bare array, or the
    envelope an existing frontend expects; paging headers come with every shape."""

    ARRAY = "array"
    TASKS = "tasks"  # {"tasks": [...], "total": n}
    ITEMS = "items"  # {"items": [...], "total": n}
    DATA = "data"  # {"data": [...], "count": n}


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every knob of the service. Names are the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    environment: Environment = Environment.DEVELOPMENT

    # -- database ---------------------------------------------------------------------------
    database_url: SecretStr = SecretStr("sqlite:///./todo.db")
    auto_migrate: bool | None = Field(
        default=None, description="default: on for SQLite and outside production"
    )
    db_pool_size: int = Field(10, ge=1, validation_alias=_alias("db_pool_size", "sqlalchemy_pool_size"))
    db_max_overflow: int = Field(
        20, ge=0, validation_alias=_alias("db_max_overflow", "sqlalchemy_max_overflow")
    )
    db_pool_timeout: float = Field(
        30.0, gt=0, validation_alias=_alias("db_pool_timeout", "sqlalchemy_pool_timeout")
    )
    db_pool_recycle: int = Field(1800, validation_alias=_alias("db_pool_recycle", "sqlalchemy_pool_recycle"))
    db_statement_timeout_ms: int = Field(10_000, ge=0)
    db_pgbouncer: bool = False
    database_schema: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="PostgreSQL schema holding every table (created by the first migration)",
    )

    # -- auth --------------------------------------------------------------------------------
    auth_jwt_secret: SecretStr | None = Field(
        default=None, validation_alias=_alias("auth_jwt_secret", "better_auth_secret", "jwt_secret")
    )
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway_seconds: int = Field(30, ge=0, le=600)
    auth_session_database_url: SecretStr | None = Field(
        default=None, description="Better Auth's database, for bearer session tokens"
    )
    auth_session_table: str = "session"
    auth_session_token_column: str = "token"
    auth_session_user_column: str = "userId"
    auth_session_expires_column: str = "expiresAt"
    auth_session_allow_unsigned: bool = False
    auth_jwks_timeout_seconds: float = Field(3.0, gt=0, le=30)
    dev_secret_file: Path | None = Field(
        default=None, description="where the development secret lives; default: beside the SQLite file"
    )

    # -- sync and retries -------------------------------------------------------------------
    tombstone_retention_days: int = Field(30, ge=1, le=3650)
    idempotency_retention_hours: int = Field(24, ge=24, le=24 * 365)

    # -- what production exposes (SPEC §13) ----------------------------------------------------
    docs_enabled: bool | None = Field(
        None, description="/docs and /openapi.json; default: on outside production"
    )
    metrics_token: SecretStr | None = None
    forwarded_allow_ips: str = Field(
        "", description="proxies whose X-Forwarded-For/-Proto are trusted (comma-separated; '' = none)"
    )

    # -- AI agents (SPEC §14) ------------------------------------------------------------------
    mcp_enabled: bool = True
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="where clients reach this service; names the MCP resource in its RFC 9728 metadata",
    )

    # -- live stream (SPEC §15) ----------------------------------------------------------------
    stream_max_per_user: int = Field(
        5, ge=1, le=1000, description="open event streams per user (across instances with REDIS_URL)"
    )
    stream_heartbeat_seconds: float = Field(
        15.0, gt=0, le=300, description="a comment line this often; each stream also re-reads the feed then"
    )
    stream_ticket_secret: SecretStr | None = Field(
        default=None,
        description="signs stream tickets (any instance with it accepts them); default: AUTH_JWT_SECRET, "
        "or the development secret outside production",
    )
    database_listen_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL: a direct connection for LISTEN (needed behind PgBouncer); default: "
        "DATABASE_URL, with a Neon -pooler host made direct",
    )

    # -- events out and reminders: `todo-api worker` (SPEC §16) -------------------------------
    events_source: str = Field("todo-service", min_length=1, description="CloudEvents `source`")
    events_nats_url: str | None = Field(None, description="NATS with JetStream, e.g. nats://127.0.0.1:4222")
    events_nats_stream: str = Field("TODO_EVENTS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    events_nats_subject_prefix: str = Field("todo.events", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    events_redis_url: SecretStr | None = Field(None, description="Redis for the Redis Streams sink")
    events_redis_stream: str = Field("todo:events", min_length=1)
    events_redis_maxlen: int = Field(1_000_000, ge=1000, description="approximate MAXLEN of the stream")
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated endpoints, signed with WEBHOOK_SECRET"
    )
    webhook_secret: SecretStr | None = Field(None, description="Standard Webhooks secret: whsec_<base64>")
    webhook_retry_hours: float = Field(24.0, gt=0, le=24 * 30)
    events_retention_hours: float = Field(72.0, gt=0, description="published events are purged after")
    reminder_max_lateness_hours: float = Field(24.0, ge=0, le=24 * 30)
    worker_metrics_port: int | None = Field(None, ge=1, le=65535, description="Prometheus /metrics")
    worker_metrics_host: str = Field("127.0.0.1", description="address the worker's metrics listen on")
    worker_batch_size: int = Field(500, ge=1, le=5000)
    worker_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="the worker looks this often even when nothing woke it"
    )

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split_webhooks(cls, value: object) -> object:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _check_webhooks(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URLs must be http:// or https:// ({url!r})")
        return value

    # -- plugging in an existing frontend (SPEC §21) ------------------------------------------
    list_response_shape: ListShape = ListShape.ARRAY

    # -- rate limits ------------------------------------------------------------------------
    rate_limit_enabled: bool = True
    rate_limit_read: str = "100/minute"
    rate_limit_write: str = "30/minute"
    rate_limit_batch_commands: str = Field("10000/hour", description="commands in batches, per user")
    rate_limit_fail_closed: bool = False
    rate_limit_key_prefix: str = "todo"
    redis_url: SecretStr | None = None

    @field_validator("rate_limit_read", "rate_limit_write", "rate_limit_batch_commands")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        parse_limit(value)
        return value

    # -- HTTP -------------------------------------------------------------------------------
    max_body_bytes: int = Field(262_144, ge=1024)
    # slow clients (SPEC §13.6), honoured by `todo-api serve`
    http_header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    http_body_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    http_max_connections: int = Field(1000, ge=1, description="open connections per worker")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    bench_endpoint: bool = Field(
        default=False, description="mount GET /_bench/hello (no auth, no database) for bench/run.py"
    )
    log_level: str = "INFO"
    log_format: str | None = Field(default=None, description="json | text; default: json in production")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.cors_origins and self.environment is not Environment.PRODUCTION:
            self.cors_origins = ["http://localhost:3000", "http://127.0.0.1:3000"]
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS must list origins; '*' is refused (credentials are allowed)")
        secret = self.auth_jwt_secret
        weak = secret is not None and len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES
        if weak and self.environment is Environment.PRODUCTION:
            raise ValueError(f"AUTH_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes in production")
        if self.auth_session_database_url is not None and self.auth_jwt_secret is None:
            raise ValueError("AUTH_SESSION_DATABASE_URL needs BETTER_AUTH_SECRET to check token signatures")
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("WEBHOOK_URLS needs WEBHOOK_SECRET (whsec_<base64>) to sign deliveries")
        if self.environment is Environment.PRODUCTION and not self.has_verifier:
            raise ValueError(
                "ENVIRONMENT=production needs a token verifier: "
                "set AUTH_JWKS_URL, AUTH_JWT_SECRET or AUTH_SESSION_DATABASE_URL"
            )
        return self

    @property
    def has_verifier(self) -> bool:
        return any(
            v is not None for v in (self.auth_jwt_secret, self.auth_jwks_url, self.auth_session_database_url)
        )

    @property
    def serves_docs(self) -> bool:
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.environment is not Environment.PRODUCTION

    @property
    def is_memory(self) -> bool:
        return self.database_url.get_secret_value().strip() == "memory://"

    @property
    def is_sqlite(self) -> bool:
        """Decided as the SQL adapter decides it (normalise_url), never by a second rule."""
        if self.is_memory:
            return False
        try:
            return normalise_url(self.database_url.get_secret_value()).is_sqlite
        except ValueError:
            return False  # the store refuses the URL itself, with its own message

    @property
    def should_migrate(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.is_sqlite or self.environment is not Environment.PRODUCTION

    @property
    def database(self) -> DatabaseConfig:
        return DatabaseConfig(
            url=self.database_url.get_secret_value(),
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            pool_timeout=self.db_pool_timeout,
            pool_recycle=self.db_pool_recycle,
            statement_timeout_ms=self.db_statement_timeout_ms,
            pgbouncer=self.db_pgbouncer,
            schema=self.database_schema,
        )

    @property
    def secret_file(self) -> Path:
        """The development secret: beside the SQLite file, else in the working directory."""
        if self.dev_secret_file is not None:
            return self.dev_secret_file
        if self.is_sqlite:
            database = normalise_url(self.database_url.get_secret_value()).url.database
            if database and database != ":memory:":
                return Path(database).expanduser().resolve().parent / ".todo-dev-secret"
        return Path.cwd() / ".todo-dev-secret"
