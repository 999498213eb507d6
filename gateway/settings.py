"""One settings object for the `afep` deployable, read from AFEP_* variables.

Built in `main`/`create_app` and passed down; nothing below `gateway/` reads the
environment. All local state lives under `data_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    mlflow_tracking_uri: str | None = None
    secret_key: str | None = Field(default=None, description="HS256 JWT secret and credential-encryption key seed")
    jwt_issuer: str = "afep"
    jwt_audience: str = "afep-api"
    jwt_public_key: str | None = Field(default=None, description="PEM for RS256 tokens (OIDC)")
    anthropic_api_key: str | None = None
    tavily_api_key: str | None = None
    sandbox_wall_seconds: float = 30.0
    sandbox_cpu_seconds: float = 20.0
    sandbox_memory_bytes: int = 4 * 2**30

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
