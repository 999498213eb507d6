"""compose.yml, checked without a container engine: every service the settings need, with consistent variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from gateway.cli import app
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
AFEP_SERVICES = ("api", "relay", "worker", "projector")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yml").read_text())  # type: ignore[no-any-return]


def test_every_service_of_the_distributed_runtime_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"kafka", "postgres", "clickhouse", "otel-collector", *AFEP_SERVICES}
    for name, service in services.items():
        if name != "otel-collector":  # a distroless image: nothing to run a check with
            assert "healthcheck" in service, f"{name} has no healthcheck"
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None}
    for name in AFEP_SERVICES:
        assert services[name]["command"][1] in commands, name
        assert services[name]["volumes"] == ["afep:/var/lib/afep"], f"{name} must share artifacts with the workers"


def test_the_afep_services_share_one_environment_that_matches_the_other_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [services[name]["environment"] for name in AFEP_SERVICES]
    assert all(env == envs[0] for env in envs)
    env = envs[0]
    fields = set(Settings.model_fields)
    for key in env:
        if key.startswith("AFEP_"):
            assert key.removeprefix("AFEP_").lower() in fields, f"{key} is not a setting"
    assert env["AFEP_RUNTIME"] == "kafka"

    kafka_host, kafka_port = env["AFEP_KAFKA_BOOTSTRAP"].split(":")
    assert (
        kafka_host == "kafka"
        and f"PLAINTEXT://{kafka_host}:{kafka_port}" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"

    pg, pg_env = urlparse(env["AFEP_DATABASE_URL"]), services["postgres"]["environment"]
    assert (pg.hostname, pg.username, pg.password, pg.path.lstrip("/")) == (
        "postgres",
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    ch, ch_env = urlparse(env["AFEP_CLICKHOUSE_URL"]), services["clickhouse"]["environment"]
    assert (ch.hostname, ch.username, ch.password, ch.path.lstrip("/")) == (
        "clickhouse",
        ch_env["CLICKHOUSE_USER"],
        ch_env["CLICKHOUSE_PASSWORD"],
        ch_env["CLICKHOUSE_DB"],
    )

    otlp = urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    collector = yaml.safe_load((REPO / "ops" / "otel-collector.yaml").read_text())
    assert otlp.hostname == "otel-collector"
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(f":{otlp.port}")
    for name in AFEP_SERVICES:
        depends = services[name]["depends_on"]
        assert {"postgres", "clickhouse", "kafka"} <= set(depends), name
