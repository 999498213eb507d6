"""One settings object for the `afep` deployable, read from AFEP_* variables.

Built in `main`/`create_app` and passed down; nothing below `gateway/` reads the
environment. All local state lives under `data_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from processors.sources import SourcePolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AFEP_", extra="forbid")

    data_dir: Path = Field(default=Path(".afep"), description="all local state: event store, read models, artifacts")
    database_url: str | None = Field(default=None, description="postgresql://… for the event store and read models")
    clickhouse_url: str | None = Field(
        default=None, description="http://host:8123 for a ClickHouse server; chdb otherwise"
    )
    kafka_bootstrap: str | None = Field(default=None, description="host:port of the Kafka-protocol broker")
    runtime: Literal["embedded", "kafka"] = Field(
        default="embedded", description="embedded: agents in the API process; kafka: relay + faust workers"
    )
    kafka_partitions: int = Field(default=4, ge=1, description="partitions of each AFEP topic (fixed at creation)")
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AFEP_MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),  # or MLFLOW_TRACKING_URI
        description="an MLflow tracking server (or store) for experiment runs; default: SQLite under the data dir",
    )
    tracking: bool = Field(
        default=True, description="log each completed job to MLflow (AFEP_TRACKING=off: no runs, no MLflow import)"
    )
    secret_key: str | None = Field(default=None, description="HS256 JWT secret and credential-encryption key seed")
    secret_keys_old: str | None = Field(
        default=None,
        description="comma-separated previous AFEP_SECRET_KEYs: they still decrypt connection credentials "
        "until `afep keys rotate-secret` re-encrypts them under the current one",
    )
    jwt_issuer: str = "afep"
    jwt_audience: str = "afep-api"
    jwt_public_key: str | None = Field(default=None, description="PEM for RS256 tokens (OIDC)")
    anthropic_api_key: str | None = Field(
        default=None, description="set: the agents think with Claude (unset: the offline agents, the default)"
    )
    tavily_api_key: str | None = Field(default=None, description="set (with the Anthropic key): web research")
    llm_model_large: str = Field(default="claude-sonnet-5-5", description="reasoning and code review")
    llm_model_small: str = Field(default="claude-haiku-5-5", description="classification (search planning)")
    llm_coders: str = Field(
        default="claude-sonnet-5-5,claude-haiku-5-5", description="comma-separated models competing on code"
    )
    llm_budget_tokens: int = Field(default=400_000, ge=0, description="a job's LLM tokens unless it sets its own")
    llm_budget_usd: float | None = Field(default=None, ge=0, description="a job's LLM dollars unless it sets its own")
    llm_competing_features: int = Field(default=5, ge=0, description="features whose code several models write")
    sandbox_wall_seconds: float = 30.0
    sandbox_cpu_seconds: float = 20.0
    sandbox_memory_bytes: int = 4 * 2**30
    max_request_bytes: int = Field(
        default=2**20, gt=0, description="largest request body the API reads (uploads have their own limit)"
    )
    source_roots: str | None = Field(
        default=None,
        description="comma-separated folders API tenants may read files from, besides their upload area; "
        "'{tenant}' in a path stands for the tenant's folder name",
    )
    source_hosts: str | None = Field(
        default=None,
        description="comma-separated database hosts (host or host:port) API tenants may connect to; none by default",
    )
    max_upload_bytes: int = Field(default=512 * 2**20, gt=0, description="largest file POST /api/v1/uploads takes")
    upload_quota_bytes: int = Field(
        default=10 * 2**30, gt=0, description="most bytes one tenant's upload area may hold, all files together"
    )
    explorer_max_bytes: int = Field(
        default=10 * 2**20, gt=0, description="largest explorer result; longer ones are truncated"
    )
    feast_online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="where approved features are served from: SQLite in the data dir, or Redis"
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="the Redis online store (AFEP_FEAST_ONLINE_STORE=redis)"
    )
    feast_offline_url: str | None = Field(
        default=None,
        description="postgresql://… : approved features' values as PostgreSQL tables (Feast's PostgreSQL offline "
        "source); Parquet files under the data dir otherwise",
    )
    feast_ttl_seconds: int = Field(
        default=7 * 86400,
        ge=0,
        le=10 * 365 * 86400,
        description="how long Feast serves a materialized value (0: forever); default 7 days",
    )
    webhook_max_attempts: int = Field(default=10, ge=1, le=100, description="attempts per webhook delivery at most")
    webhook_backoff_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="wait after a delivery's first failed attempt; doubles each time"
    )
    webhook_backoff_max_seconds: float = Field(
        default=600.0, gt=0, le=86400, description="longest wait between two attempts of a webhook delivery"
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="time a webhook receiver has to answer an attempt"
    )
    webhook_senders: int = Field(default=4, ge=1, le=64, description="webhook requests in flight at once")
    webhook_private_targets: bool = Field(
        default=False,
        description="let webhook URLs reach loopback, private and link-local addresses (receivers on your own "
        "network); off, such targets are refused when subscribing and again when sending",
    )

    @property
    def source_policy(self) -> SourcePolicy:
        """What API tenants may read (the CLI uses `SourcePolicy.local()` instead)."""
        from processors.sources import SourcePolicy

        def items(text: str | None) -> tuple[str, ...]:
            return tuple(x.strip() for x in (text or "").split(",") if x.strip())

        internal: tuple[tuple[str, int, str], ...] = ()
        if self.database_url:
            own = urlsplit(self.database_url)
            internal = ((own.hostname or "localhost", own.port or 5432, own.path.lstrip("/")),)
        return SourcePolicy(
            data_dir=self.data_dir,
            roots=items(self.source_roots),
            hosts=items(self.source_hosts),
            internal_databases=internal,
        )

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def connection_secrets(self) -> list[str]:
        """The current secret, then the previous ones: what connection credentials decrypt with."""
        old = [k.strip() for k in (self.secret_keys_old or "").split(",") if k.strip()]
        return [k for k in (self.secret_key, *old) if k]

    @property
    def event_db_path(self) -> Path:
        return self.data_dir / "events.db"

    @property
    def readmodel_db_path(self) -> Path:
        return self.data_dir / "readmodels.db"

    @property
    def clickhouse_path(self) -> Path:
        return self.data_dir / "clickhouse"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def feature_repo_dir(self) -> Path:
        return self.data_dir / "feature_repo"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def tracking_uri(self) -> str | None:
        """Where the tracking agent logs runs: MLFLOW_TRACKING_URI, else SQLite in the data dir; None when off."""
        if not self.tracking:
            return None
        return self.mlflow_tracking_uri or f"sqlite:///{(self.mlflow_dir / 'mlflow.db').absolute()}"
