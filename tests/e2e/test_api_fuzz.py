"""Property-based fuzzing of the OpenAPI spec: no operation answers 5xx, whatever the input.

Schemathesis generates valid and invalid requests for every operation of
/api/v1/openapi.json and sends them in-process to the ASGI app (real SQLite
store and read models, real chdb). An Admin of the platform tenant is injected,
so the calls get past authentication and reach the handlers. A project, a job
with an analysed dataset, a selected feature and a connection are seeded, and a
third of the cases aim their path parameters at them, so the handlers behind
the 404s are fuzzed too. Generated strings may hold NUL (`allow_x00`, set
explicitly) and any UTF-8 character, negative cases break the schema's length
limits, and a sixth of the body cases put a hostile string (NUL, control
characters, 70 kB, 200 kB, over the 1 MiB body limit) into one field of a valid
body. One more test keeps the generated credentials to fuzz authentication itself.

Each operation is its own pytest item driven by Hypothesis directly: the
schemathesis pytest plugin (`from_fixture(...).parametrize()`) does not run on
pytest 9.2 (it reads the removed `Node._nodeid`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case as GenericCase
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema

from commands.recorder_store import SqliteEventStore
from commands.unit_of_work import Trace, execute
from domain import feature, job
from domain.envelope import Context
from gateway.app import create_app
from gateway.auth import PLATFORM_TENANT, create_api_key, readmodel_db
from gateway.settings import Settings
from projections import directory

Case = GenericCase[Any]

pytestmark = [pytest.mark.clickhouse, pytest.mark.filterwarnings("ignore:Generating overly large repr")]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ in the working tree
    suppress_health_check=list(HealthCheck),
)
CREDENTIAL_HEADERS = ("authorization", "x-api-key")
# Path parameters that name seeded resources. No tenant: a DELETE would drop the caller's own tenant.
SEEDED = {"project_id": "p1", "job_id": "j1", "feature_id": "f1", "connection_id": "c1"}
HOSTILE_STRINGS = ("Sta\x00tus", "\x00", "a\x1b[2Jb", "line\r\nbreak", "x" * 70_000, "y" * 200_000, "z" * (2**20 + 1))
# The spec is built without opening anything (create_app does no I/O until its lifespan starts).
# DELETEs go last, so the seeded resources are still there for every other operation.
OPERATIONS = sorted(
    (
        (method.upper(), path)
        for path, item in create_app(Settings(data_dir=Path("unused"))).openapi()["paths"].items()
        for method in item
    ),
    key=lambda operation: operation[0] == "DELETE",
)


@dataclass(frozen=True)
class Target:
    schema: BaseSchema
    admin_key: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One app for the module (chdb: one data folder per process), shut down after the last operation."""
    config = Settings(data_dir=tmp_path_factory.mktemp("fuzz"), secret_key="fuzz-secret-key-long-enough-for-hs256!")
    db = readmodel_db(config)
    try:
        directory.create_tables(db)
        # enterprise: 10,000 requests/hour, so the rate limiter does not turn the run into 429s
        directory.create_tenant(db, PLATFORM_TENANT, "Platform", PLATFORM_TENANT, "enterprise", datetime.now(UTC))
        key = create_api_key(config, PLATFORM_TENANT, "admin", db=db)
        at = datetime.now(UTC)
        dataset = config.data_dir / "data.csv"
        dataset.write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n")
        directory.create_project(db, PLATFORM_TENANT, SEEDED["project_id"], "Fuzz", "", None, at)
        directory.create_connection(
            db,
            str(config.secret_key),
            PLATFORM_TENANT,
            SEEDED["connection_id"],
            "csv",
            str(dataset),
            None,
            at,
            kind="csv",
            location=str(dataset),
        )
    finally:
        db.close()
    store = SqliteEventStore(config.event_db_path)
    seed_events(store, SEEDED["job_id"], SEEDED["feature_id"], str(dataset))
    app = create_app(config, store=store)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    schema.config.generation.update(allow_x00=True, codec="utf-8")  # NUL and any character in strings
    try:
        yield Target(schema, key)
    finally:
        asgi.shutdown_lifespans()  # runs the app's lifespan shutdown: closes chdb and the read models
        store.close()


def seed_events(store: SqliteEventStore, job_id: str, feature_id: str, dataset: str) -> None:
    """What the agents would append: a job with an analysed dataset, a trace and a selected feature."""
    at = Context(at=datetime.now(UTC), actor="schema", tenant_id=PLATFORM_TENANT, causation_id="seed")
    execute(
        store,
        [
            (job.RequestJob(job_id, SEEDED["project_id"], dataset, None, "y", "auto", 60.0, 0, 1, 5), at),
            (job.RecordSchemaAnalysis(job_id, 1, dataset, "sha", 3, 3, "classification", "auc", "1", "{}", (), ()), at),
            (Trace(job_id, "schema", "thought", "seeded"), at),
            (feature.ProposeFeature(feature_id, job_id, 1, "a_b", "a/b", "why", "{}", ("a", "b"), 0.1, "x", ()), at),
            (feature.RecordCode(feature_id, "code", "polars", "h", None, None, False), at),
            (feature.RecordExecution(feature_id, True, None, None, 1.0, None, 0.0, 3), at),
            (feature.RecordEvaluation(feature_id, 1, "confirm", "auc", 0.1, 0.02, 0.01, 0.03, 0.01, 1, "ok"), at),
            (feature.SelectFeature(feature_id, 1, "significant"), at),
        ],
    )


def cases(target: Target, method: str, path: str) -> st.SearchStrategy[Case]:
    operation = target.schema[path][method]
    known = {name: value for name, value in SEEDED.items() if f"{{{name}}}" in path}
    strategies = [operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    if known:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
    if method in ("POST", "PUT", "PATCH"):
        valid = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known or None)
        strategies.append(
            st.tuples(valid, st.integers(0, 20), st.sampled_from(HOSTILE_STRINGS)).map(lambda t: poison(*t))
        )
    if path.startswith("/api/v1/explorer/") and method == "POST":
        # the explorer names its source in the body: aim a third of the cases at the seeded connection or job
        aimed = st.tuples(operation.as_strategy(GenerationMode.POSITIVE), st.sampled_from(["connection_id", "job_id"]))
        strategies.append(aimed.map(lambda pair: aim(*pair)))
    return st.one_of(strategies)


def poison(case: Case, which: int, value: str) -> Case:
    """`case` with one string field of its JSON body (or a new `name` field) set to `value`."""
    if isinstance(case.body, dict):
        strings = [key for key, item in case.body.items() if isinstance(item, str) or item is None] or ["name"]
        case.body = {**case.body, strings[which % len(strings)]: value}
    return case


def aim(case: Case, field: str) -> Case:
    if isinstance(case.body, dict):
        case.body = {**case.body, "connection_id": None, "job_id": None, field: SEEDED[field]}
    return case


def send(case: Case, headers: dict[str, str] | None = None) -> None:
    # An SSE feed never ends: the transport keeps what it got by the timeout, so keep that short there.
    timeout = 0.5 if case.path.endswith("/events") else 15
    case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=timeout)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_operation_answers_5xx_to_an_admin(target: Target, method: str, path: str) -> None:
    @FUZZ
    @given(case=cases(target, method, path))
    def run(case: Case) -> None:
        if case.headers:
            for name in [n for n in case.headers if n.lower() in CREDENTIAL_HEADERS]:
                del case.headers[name]
        send(case, {"Authorization": f"Bearer {target.admin_key}"})

    run()


def test_authentication_never_answers_5xx(target: Target) -> None:
    @settings(FUZZ, max_examples=60)
    @given(case=cases(target, "GET", "/api/v1/jobs"))
    def run(case: Case) -> None:
        send(case)

    run()
