"""Settings: the only place that reads the environment."""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from genway.kit.crypto import SecretBox
    from genway.webhooks.targets import TargetPolicy
    from genway.worker.runner import WorkerOptions

SECRET_KEY_FILE = "secret_key"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every `GENWAY_*` setting, with its default (documented in the README)."""

    model_config = SettingsConfigDict(env_prefix="GENWAY_", extra="ignore")

    data_dir: Path = Path(".genway")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None

    embedded_worker: bool = True
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    # How long a process reuses kinds' run times and the queue's demand for job estimates.
    eta_cache_s: float = Field(default=5.0, ge=0)
    lease_s: float = Field(default=30.0, ge=1)
    reaper_interval_s: float = Field(default=5.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    retry_base_s: float = Field(default=1.0, ge=0)
    job_input_max_bytes: int = Field(default=1024 * 1024, ge=1)
    executor_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Idle keep-alive connections outlive the clients' own idle expiry (httpx: 5 s, load
    # balancers: 60 s), so a client never sends on a connection the server is closing.
    http_keep_alive_s: int = Field(default=75, ge=1, le=3600)
    access_token_ttl_s: int = Field(default=15 * 60, ge=10)
    refresh_token_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    password_min_length: int = Field(default=8, ge=1)
    key_last_used_resolution_s: int = Field(default=60, ge=0)
    # With several processes (Redis): how long an API key's principal may be served from a
    # process's cache if news of a revocation were lost; normally it arrives in milliseconds.
    auth_cache_max_age_s: float = Field(default=5.0, ge=0)
    # Open WebSockets and SSE streams: how many one organization may hold (across processes
    # with Redis), and how often each re-checks its credential when no news of auth changes
    # reaches this process (PostgreSQL without Redis).
    max_streams_per_org: int = Field(default=100, ge=1)
    stream_recheck_s: float = Field(default=1.0, gt=0, le=60)

    login_failures_per_minute: int = Field(default=10, ge=1)
    ratelimit_enabled: bool = True
    ratelimit_fail_open: bool = True
    ratelimit_key_prefix: str = "genway-limits"
    events_channel: str = Field(
        default="genway:job-events",
        description="Redis pub/sub channel of job events; distinct per deployment sharing a Redis",
    )
    anonymous_requests_per_minute: int = Field(default=30, ge=1)
    tier_limits: dict[str, dict[str, int | None]] = Field(
        default_factory=dict, description='Per-tier changes, e.g. {"free": {"images_per_day": 20}}'
    )
    usage_flush_interval_s: float = Field(default=5.0, gt=0)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    comfyui_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8188"]
    )
    comfyui_txt2img_template: Path | None = Field(
        default=None,
        description="API-format txt2img workflow for comfy.generate (default: bundled)",
    )
    comfyui_node_policy: Path | None = Field(
        default=None,
        description="JSON file {allow: [...], deny: [...]} of ComfyUI node classes "
        "(custom nodes with file inputs are refused unless allowed)",
    )
    comfyui_health_interval_s: float = Field(default=5.0, gt=0)
    comfyui_backoff_max_s: float = Field(default=30.0, gt=0)
    comfyui_timeout_s: float = Field(default=30.0, gt=0, description="One ComfyUI HTTP request")
    comfyui_poll_interval_s: float = Field(default=1.0, gt=0)
    comfyui_object_info_ttl_s: float = Field(default=300.0, ge=0)
    sync_wait_s: float = Field(default=60.0, ge=0, le=3600)
    upload_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    upload_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    upload_cleanup_interval_s: float = Field(default=600.0, gt=0)
    signed_url_ttl_s: int = Field(default=3600, ge=1)

    encryption_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys for secrets stored encrypted, newest first (older ones still "
        "decrypt); a key derived from SECRET_KEY is always tried last",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook targets on loopback, private, link-local or reserved addresses",
    )
    webhook_allow_http: bool = Field(default=False, description="Allow http:// webhook targets")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_schedule_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 25200.0],
        description="Delay before each retry of a failed delivery (about 24 h in all); an "
        "endpoint still failing after the last one is disabled",
    )
    webhook_concurrency: int = Field(default=32, ge=1, le=1000)
    webhook_poll_s: float = Field(default=1.0, gt=0)
    smtp_url: SecretStr | None = Field(
        default=None,
        description="SMTP server for notification emails, e.g. smtp://user:pass@host:587?"
        "starttls=true or smtps://host:465; unset: notifications are in-app only",
    )
    smtp_from: str = Field(default="genway@localhost", description="From: of notification emails")
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=300)
    email_poll_s: float = Field(default=2.0, gt=0, description="How often the outbox is read")
    email_max_attempts: int = Field(default=5, ge=1, le=20)
    email_retry_base_s: float = Field(
        default=60.0, ge=0, description="Delay before the first retry of an email (x4 each time)"
    )
    key_expiry_scan_interval_s: float = Field(
        default=600.0, gt=0, description="How often keys expiring within 7 days are looked for"
    )

    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    routing_file: Path | None = None
    model_prices_file: Path | None = Field(
        default=None, description="JSON of 'provider:model' to [input, output] $ per 1M tokens"
    )
    llm_timeout_s: float = Field(default=180.0, gt=0, description="Deadline of one model call")
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_retry_base_s: float = Field(default=0.5, ge=0)
    llm_max_tokens: int = Field(default=4096, ge=1)
    agent_timeout_s: float = Field(default=300.0, gt=0, description="Default agent run deadline")
    agent_max_steps: int = Field(
        default=40, ge=1, le=500, description="Model turns an agent run may take before it stops"
    )
    agent_max_run_tokens: int = Field(
        default=400_000, ge=1000, description="Input plus output tokens one agent run may use"
    )
    agent_command_timeout_s: float = Field(
        default=120.0, gt=0, description="Wall-clock limit of one sandboxed command"
    )
    agent_command_memory_mb: int = Field(
        default=2048, ge=64, description="Memory limit of one sandboxed command"
    )
    agent_plan_wait_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="How long a plan waits for confirmation"
    )
    project_file_max_bytes: int = Field(default=512 * 1024, ge=1)
    project_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    git_import_dirs: str = Field(
        default="",
        description="Comma-separated directories whose git repositories a project may be "
        "created from by local path or file:// URL; empty: local import is disabled",
    )

    github_api_url: str = Field(
        default="https://api.github.com",
        description="GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3)",
    )
    github_webhook_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="Largest GitHub webhook delivery accepted"
    )
    validation_timeout_s: float = Field(
        default=1800.0, gt=0, description="Deadline of one PR validation (setup, tests, checks)"
    )

    url: str = Field(default="http://127.0.0.1:8000", description="Where the CLI finds Genway")
    api_key: SecretStr | None = Field(default=None, description="The CLI's API key")

    metrics_token: SecretStr | None = Field(
        default=None, description="When set, /metrics needs 'Authorization: Bearer <token>'"
    )
    log_level: str = "INFO"
    log_json: bool = True

    _split_lists = field_validator(
        "trusted_proxies",
        "comfyui_urls",
        "executor_modules",
        "encryption_keys",
        "webhook_retry_schedule_s",
        mode="before",
    )(_split_csv)

    def worker_options(
        self, concurrency: int | None = None, kinds: list[str] | None = None
    ) -> WorkerOptions:
        from genway.worker.runner import WorkerOptions

        return WorkerOptions(
            concurrency=concurrency or self.worker_concurrency,
            kinds=kinds,
            lease_s=self.lease_s,
            reaper_interval_s=self.reaper_interval_s,
            shutdown_grace_s=self.shutdown_grace_s,
            retry_base_s=self.retry_base_s,
            # PostgreSQL wakes idle workers with NOTIFY, so polling is only a fallback there;
            # a SQLite worker in another process than the API has nothing else to wake it.
            idle_poll_s=1.0 if not self.is_sqlite else 0.1,
        )

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'genway.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def ensure_data_dir(self) -> Path:
        """The data directory, made if missing; the default SQLite file is created readable by
        this user only (like the secret key), and SQLite gives its journal files the same mode."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            with contextlib.suppress(FileExistsError):
                os.close(
                    os.open(
                        self.data_dir / "genway.db", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                    )
                )
        return self.data_dir

    @property
    def webhook_policy(self) -> TargetPolicy:
        from genway.webhooks.targets import TargetPolicy

        return TargetPolicy(self.webhook_allow_private, self.webhook_allow_http)

    @cached_property
    def secret_box(self) -> SecretBox:
        """Encrypts and decrypts stored secrets (`kit/crypto.py`)."""
        from genway.kit.crypto import SecretBox

        return SecretBox.from_secret_key(self.resolved_secret_key, self.encryption_keys)

    @cached_property
    def resolved_secret_key(self) -> str:
        """The signing secret; generated once and kept in the data dir (mode 0600) if unset."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.ensure_data_dir() / SECRET_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key


def get_settings() -> Settings:
    return Settings()
