"""The feature store's pure parts: names, the versioning plan, generated definitions, configuration,
the domain rule for unregistrable features and the read model's block."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from commands.memory_store import InMemoryEventStore
from commands.store import Tracking
from commands.unit_of_work import execute, load_feature
from domain import feature as f
from domain.envelope import Context
from domain.errors import InvalidTransition
from domain.job import RecordSchemaAnalysis, RequestJob
from processors import reaction
from processors.agents import feature_store
from processors.featurestore import naming
from processors.featurestore.catalog import owned_job
from processors.featurestore.config import (
    ConfigError,
    FeatureStoreConfig,
    postgres_options,
    redis_connection,
    store_options,
    yaml_text,
)
from processors.featurestore.definitions import FieldSpec, ViewSpec, definitions_text
from processors.featurestore.plan import Candidate, KeyColumn, Registration, definition_hash, plan_view
from processors.featurestore.values import ValuesProblem, key_column
from processors.sources import snapshot
from processors.workbench import Workbench
from projections.registrations import block, ttl_text

REPO = Path(__file__).resolve().parents[2]
KEY = KeyColumn("customer_id", "int64")
TTL = 7 * 86400

# ------------------------------------------------------------------ names


def test_repository_folders_are_safe_path_components_for_any_valid_id(tmp_path: Path) -> None:
    assert naming.repo_dir(tmp_path, "acme", "risk") == tmp_path / "acme" / "risk"
    for tenant, project in ((".", ".."), ("a:b@c", "x.y"), ("..", "-x")):
        path = naming.repo_dir(tmp_path, tenant, project)
        assert path.resolve().is_relative_to(tmp_path.resolve()) and path.parent.parent == tmp_path
        assert ".." not in path.parts[-2:] and "." not in path.parts[-2:]
    assert naming.repo_dir(tmp_path, "a.b", "p") != naming.repo_dir(tmp_path, "a_b", "p")


def test_feast_project_names_are_valid_and_distinct_per_tenant_and_project() -> None:
    names = {naming.feast_project(t, p) for t, p in (("acme", "risk"), ("acme-", "risk"), ("acme", "risk-"))}
    assert len(names) == 3
    for name in names:
        assert name.replace("_", "").isalnum() and not name.startswith("_") and "-" not in name


@pytest.mark.parametrize(
    ("source", "table", "expected"),
    [
        ("/data/credit.csv", None, "credit"),
        ("upload://loans.2024.parquet", None, "loans"),
        ("postgresql://u@h/db", "orders", "orders"),
        ("connection://c1", "public.customers", "public.customers"),
        ("sqlite:///shop.db", "t", "t"),
    ],
)
def test_a_jobs_source_table_names_its_view(source: str, table: str | None, expected: str) -> None:
    assert naming.table_name(source, table) == expected
    assert naming.view_name(expected).endswith("_features")
    assert naming.view_name(expected).replace("_", "").isalnum()


def test_field_names_keep_a_features_name_readable_but_safe_for_view_references() -> None:
    assert naming.field_name("debt_to_income") == "debt_to_income"
    assert naming.field_name("Debt/Income (log)") == "Debt_Income_log"
    assert naming.field_name("1st_ratio") == "f_1st_ratio"
    assert ":" not in naming.field_name("a:b") and naming.field_name("!!!") == "feature"


# ------------------------------------------------------------------ the plan


def cand(fid: str, order: int, **kw: object) -> Candidate:
    base = Candidate(
        feature_id=fid,
        job_id="job1",
        field=f"f_{fid}",
        description=f"feature {fid}",
        code_hash=f"code-{fid}",
        dataset_sha256="data1",
        approved=True,
        order=order,
        key=KEY,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def registered(c: Candidate, plan_version: int, digest: str, *, materialized: bool = True) -> Candidate:
    return replace(
        c,
        registration=Registration(plan_version, "registered", digest, KEY.name),
        materialized_version=plan_version if materialized else None,
    )


def test_the_first_approval_registers_version_one() -> None:
    plan = plan_view("t_features", [cand("a", 10)], ttl_seconds=TTL)
    assert plan.changed and plan.version == 1 and plan.entity == KEY
    assert [m.feature_id for m in plan.members] == ["a"] and not plan.failures and not plan.shrinks
    assert plan.definition_hash == definition_hash("t_features", KEY, TTL, True, plan.members)


def test_a_redelivered_approval_plans_the_same_definition_and_no_new_version() -> None:
    first = plan_view("t_features", [cand("a", 10)], ttl_seconds=TTL)
    again = plan_view("t_features", [registered(cand("a", 10), 1, first.definition_hash)], ttl_seconds=TTL)
    assert not again.changed and again.version == 1 and not again.failures


def test_each_change_of_the_approved_set_or_definition_is_the_next_version() -> None:
    v1 = plan_view("t_features", [cand("a", 10)], ttl_seconds=TTL)
    a = registered(cand("a", 10), 1, v1.definition_hash)
    v2 = plan_view("t_features", [a, cand("b", 20)], ttl_seconds=TTL)
    assert v2.changed and v2.version == 2 and [m.feature_id for m in v2.members] == ["a", "b"]
    assert v2.definition_hash != v1.definition_hash
    # the same features, another TTL: another definition
    assert plan_view("t_features", [a], ttl_seconds=TTL + 1).changed
    # deprecating one: a new version without it, and its old online values purged
    a2, b2 = (registered(c, 2, v2.definition_hash) for c in (cand("a", 10), cand("b", 20)))
    v3 = plan_view("t_features", [replace(a2, approved=False), b2], ttl_seconds=TTL)
    assert v3.changed and v3.version == 3 and [m.feature_id for m in v3.members] == ["b"]
    assert [c.feature_id for c in v3.removed] == ["a"] and v3.shrinks
    # the last one gone: a version with no members (the view is deleted)
    b3 = registered(cand("b", 20), 3, v3.definition_hash)
    gone = replace(a2, approved=False, registration=Registration(3, "removed", v3.definition_hash, KEY.name))
    v4 = plan_view("t_features", [gone, replace(b3, approved=False)], ttl_seconds=TTL)
    assert v4.changed and v4.version == 4 and not v4.members and [c.feature_id for c in v4.removed] == ["b"]


def test_a_failed_materialization_is_retried_as_the_next_version() -> None:
    v1 = plan_view("t_features", [cand("a", 10)], ttl_seconds=TTL)
    a = registered(cand("a", 10), 1, v1.definition_hash, materialized=False)
    retry = plan_view("t_features", [a], ttl_seconds=TTL)
    assert retry.changed and retry.version == 2 and retry.definition_hash == v1.definition_hash


def test_a_feature_named_like_a_served_one_waits_until_that_one_is_deprecated() -> None:
    v1 = plan_view("t_features", [cand("a", 10, field="ratio")], ttl_seconds=TTL)
    a = registered(cand("a", 10, field="ratio"), 1, v1.definition_hash)
    newer = cand("b", 20, field="ratio", job_id="job2", code_hash="other code")
    plan = plan_view("t_features", [a, newer], ttl_seconds=TTL)
    assert not plan.changed and [c.feature_id for c, _ in plan.failures] == ["b"]
    assert "already serves a feature named 'ratio' (feature a)" in plan.failures[0][1]
    # once recorded, the failure is not recorded again
    waiting = replace(newer, failed_unregistered=True)
    assert not plan_view("t_features", [a, waiting], ttl_seconds=TTL).failures
    # deprecating the served one registers the newer definition in its place
    swap = plan_view("t_features", [replace(a, approved=False), waiting], ttl_seconds=TTL)
    assert swap.changed and swap.version == 2 and [m.feature_id for m in swap.members] == ["b"]
    assert [c.feature_id for c in swap.removed] == ["a"] and not swap.shrinks  # the field stays


def test_features_that_cannot_join_fail_with_what_to_do() -> None:
    no_key = cand("a", 10, key=None, problem="job job1 names no key column ...: rerun the job with --entity KEY")
    plan = plan_view("t_features", [no_key], ttl_seconds=TTL)
    assert not plan.changed and plan.failures[0][1].endswith("--entity KEY")
    v1 = plan_view("t_features", [cand("b", 5)], ttl_seconds=TTL)
    b = registered(cand("b", 5), 1, v1.definition_hash)
    other_key = cand("c", 20, key=KeyColumn("account", "string"))
    plan = plan_view("t_features", [b, other_key], ttl_seconds=TTL)
    assert "keyed by 'customer_id'" in plan.failures[0][1] and "--entity customer_id" in plan.failures[0][1]
    reserved = cand("d", 30, field="customer_id")
    assert "reserved" in plan_view("t_features", [b, reserved], ttl_seconds=TTL).failures[0][1]


def test_two_tables_of_one_name_never_share_a_view() -> None:
    here, there = "/data/c1.csv", "/other/c1.csv"
    v1 = plan_view("c1_features", [cand("a", 10, source=here)], ttl_seconds=TTL)
    a = registered(cand("a", 10, source=here), 1, v1.definition_hash)
    same = cand("b", 20, source=here, job_id="job2")  # another job on the same table joins
    other = cand("c", 30, source=there, job_id="job3")
    plan = plan_view("c1_features", [a, same, other], ttl_seconds=TTL)
    assert [m.feature_id for m in plan.members] == ["a", "b"] and [c.feature_id for c, _ in plan.failures] == ["c"]
    why = plan.failures[0][1]
    assert f"holds features of {here}" in why and there in why and "rename one of the tables" in why
    # both in one plan before any registration: the earlier approval's table fills the view
    fresh = plan_view("c1_features", [cand("x", 5, source=there), cand("y", 6, source=here)], ttl_seconds=TTL)
    assert [m.feature_id for m in fresh.members] == ["x"] and [c.feature_id for c, _ in fresh.failures] == ["y"]
    # once the view is empty again, the other table may fill it
    gone = replace(a, approved=False)
    swap = plan_view("c1_features", [gone, other], ttl_seconds=TTL)
    assert [m.feature_id for m in swap.members] == ["c"] and not swap.failures


def test_a_member_whose_values_cannot_be_computed_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    from processors.featurestore.values import candidate_values

    lost = cand("a", 10, key=None, problem="the job's dataset snapshot cannot be read; rerun the job")
    parts, problems = candidate_values(None, [(lost, None, None)], tmp_path)  # type: ignore[arg-type, list-item]
    assert parts == [] and problems == {"a": "the job's dataset snapshot cannot be read; rerun the job"}


def test_a_deprecated_feature_that_never_joined_changes_nothing() -> None:
    plan = plan_view("t_features", [cand("a", 10, approved=False)], ttl_seconds=TTL)
    assert not plan.changed and not plan.members and not plan.failures


# ------------------------------------------------------------------ generated definitions


def spec(**kw: object) -> ViewSpec:
    base = ViewSpec(
        tenant="acme",
        project="risk",
        view="credit_features",
        version=3,
        entity=KEY,
        ttl_seconds=TTL,
        online=True,
        fields=(FieldSpec("debt_to_income", "debt / income", "fid-1", "job-1", "h1"),),
        offline="file",
        location="data/credit_features/v3.parquet",
        definition_hash="abc",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_features_py_is_plain_definitions_even_with_hostile_descriptions() -> None:
    hostile = '"""\nimport os; os.system("rm -rf /")  # \\\n\'\'\''
    text = definitions_text(
        [
            spec(fields=(FieldSpec("x", hostile, "fid-1", "job-1", "h1"),)),
            spec(view="orders_features", offline="postgres", location="afep_feast.orders_v1"),
        ]
    )
    tree = ast.parse(text)
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}  # the docstring, imports, assignments
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert calls <= {"Entity", "FileSource", "PostgreSQLSource", "FeatureView", "Field", "timedelta"}
    assert hostile in {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert text.count("Entity(") == 1  # one entity shared by both views
    assert "'afep_version': '3'" in text and 'SELECT * FROM "afep_feast"."orders_v1"' in text


def test_a_view_spec_round_trips_through_its_json() -> None:
    assert ViewSpec.from_json(spec().to_json()) == spec()
    assert spec().field_for("fid-1") == "debt_to_income" and spec().field_for("nope") is None
    assert spec().tags["generated_by"] == "afep" and spec().tags["job_id"] == "job-1"


# ------------------------------------------------------------------ configuration


def test_redis_and_postgres_urls_become_feast_options() -> None:
    assert redis_connection("redis://127.0.0.1:6379/2") == ("127.0.0.1:6379,db=2", None)
    assert redis_connection("rediss://:s3cret@cache:6380") == ("cache:6380,db=0,ssl=true", "s3cret")
    with pytest.raises(ConfigError, match="redis://host:6379/0"):
        redis_connection("http://x")
    options = postgres_options("postgresql://feast:pw@db.internal:5433/offline?sslmode=require")
    assert options["host"] == "db.internal" and options["port"] == 5433 and options["database"] == "offline"
    assert options["user"] == "feast" and options["password"] == "pw" and options["sslmode"] == "require"
    assert postgres_options("postgresql://postgres@127.0.0.1/test")["sslmode"] == "disable"
    with pytest.raises(ConfigError, match="AFEP_FEAST_OFFLINE_URL"):
        postgres_options("postgresql://host-only")


def test_feature_store_yaml_never_holds_a_password(tmp_path: Path) -> None:
    config = FeatureStoreConfig(
        root=tmp_path, online="redis", redis_url="redis://:topsecret@r:6379/1", offline_url="postgresql://u:pw9@h/d"
    )
    text = yaml_text(config, "acme", "risk")
    assert "topsecret" not in text and "pw9" not in text
    assert "${AFEP_FEAST_REDIS_PASSWORD}" in text and "${AFEP_FEAST_OFFLINE_PASSWORD}" in text
    assert store_options(config, tmp_path)["online_store"]["connection_string"] == "r:6379,db=1,password=topsecret"
    embedded = store_options(FeatureStoreConfig(root=tmp_path), tmp_path)
    assert embedded == {
        "online_store": {"type": "sqlite", "path": str(tmp_path / "online_store.db")},
        "offline_store": {"type": "file"},
    }


# ------------------------------------------------------------------ the domain rule for v0


PROPOSE = f.ProposeFeature("f", "j", 1, "dti", "debt / income", "why", "{}", ("debt", "income"), 0.8, "kb", ())
LIFE = (
    PROPOSE,
    f.RecordCode("f", "code", "polars", "h", None, None, False),
    f.RecordExecution("f", True, None, None, 3.0, "a.npy", 0.0, 10),
    f.RecordEvaluation("f", 1, "confirm", "roc_auc", 0.01, 0.004, 0.001, 0.007, 0.01, 1, "helps"),
    f.SelectFeature("f", 1, "helps"),
)


def decided(*commands: object) -> tuple[f.Feature | None, list[object]]:
    state: f.Feature | None = None
    events: list[object] = []
    for command in commands:
        new = f.decide(command, state)  # type: ignore[arg-type]
        for event in new:
            state = f.evolve(state, event)
        events.extend(new)
    return state, events


def test_an_approved_feature_that_cannot_be_registered_records_why_at_v0_once() -> None:
    failed = f.RecordMaterialization("f", "t_features", 0, 0, False, "failed", "rerun with --entity KEY")
    state, events = decided(*LIFE, f.ApproveFeature("f"), failed, failed)
    assert [type(e).__name__ for e in events][-2:] == ["FeatureApproved", "FeatureMaterialized"]
    assert state is not None and state.materialization is not None and state.registration is None
    # a later registration (the problem solved) starts at v1
    later = f.RecordRegistration("f", "t_features", 1, "customer_id", TTL, True, "registered", "h")
    state, events = decided(*LIFE, f.ApproveFeature("f"), failed, later)
    assert state is not None and state.registration is not None and state.registration.version == 1
    with pytest.raises(InvalidTransition, match="only approved"):
        decided(*LIFE, failed)
    with pytest.raises(InvalidTransition, match="not registered at v0"):
        decided(*LIFE, f.ApproveFeature("f"), replace(failed, status="complete"))


def test_a_sync_is_requested_for_approved_or_deprecated_features_only() -> None:
    with pytest.raises(InvalidTransition, match="only approved or deprecated features"):
        decided(*LIFE, f.SyncFeature("f"))
    state, events = decided(*LIFE, f.ApproveFeature("f"), f.SyncFeature("f", "redis is back"), f.SyncFeature("f"))
    # every request is recorded (each is a retry someone asked for); the feature itself is unchanged
    assert [type(e).__name__ for e in events][-2:] == ["FeatureSyncRequested", "FeatureSyncRequested"]
    assert events[-2] == f.FeatureSyncRequested("f", state.job_id if state else "", "redis is back")
    assert state is not None and state.status == "approved"
    state, events = decided(*LIFE, f.DeprecateFeature("f", "leaks"), f.SyncFeature("f"))
    assert type(events[-1]).__name__ == "FeatureSyncRequested"


# ------------------------------------------------------------------ the read model's block


def test_the_feast_registration_block_has_the_seeds_fields() -> None:
    row = {
        "feature_view": "credit_features",
        "version": 2,
        "entity": "customer_id",
        "ttl_seconds": TTL,
        "online": True,
        "status": "registered",
        "definition_hash": "h",
        "registered_at": "t",
        "materialized_version": 2,
        "materialization_status": "complete",
        "materialized_rows": 800,
        "materialization_detail": "800 rows into the sqlite online store",
        "materialized_at": "t",
    }
    shown = block(row)
    assert shown["ttl"] == "7d" and shown["online_enabled"] and shown["materialization_status"] == "COMPLETE"
    assert block({**row, "materialized_version": 1})["materialization_status"] == "PENDING"
    removed = block({**row, "status": "removed", "online": False, "version": 3})
    assert removed["materialization_status"] == "REMOVED" and not removed["online_enabled"]
    assert [ttl_text(s) for s in (0, 3600, 5400, 61)] == ["0", "1h", "90m", "61s"]


# ------------------------------------------------------------------ wiring


def test_the_agent_runs_in_both_runtimes_and_feast_stays_off_the_start_up_path() -> None:
    from processors.agents import AGENTS, feature_store, webhooks
    from schemas.wire import topic_for

    assert AGENTS.index(feature_store) < AGENTS.index(webhooks)  # webhooks see the registration in the same pass
    assert {topic_for(t.__name__) for t in feature_store.SUBSCRIBES} == {"afep.feature"}
    probe = (
        "import sys, gateway.cli, gateway.app, processors.agents, processors.kafka.worker\n"
        "print(sorted(m for m in ('feast', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ the agent, up to Feast


AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _job_with_feature(
    tmp_path: Path, frame: pl.DataFrame, profile: str, entity: str | None = None
) -> tuple[InMemoryEventStore, Workbench]:
    """An in-memory log with a job (its snapshot written) and an approved feature `f` of it."""
    store = InMemoryEventStore()
    bench = Workbench(datasets_dir=tmp_path / "datasets", artifacts_dir=tmp_path / "artifacts")
    path, digest = snapshot(frame, bench.datasets_dir)
    ctx = Context(at=AT, actor="user:t", tenant_id="acme", correlation_id="j")
    request = RequestJob("j", "risk", "upload://loans.csv", None, "y", "auto", 60.0, 0, 1, 10, entity)
    analysis = RecordSchemaAnalysis("j", 1, str(path), digest, 4, 3, "classification", "roc_auc", "1", profile, (), ())
    proposal = replace(PROPOSE, job_id="j")
    execute(store, [(c, ctx) for c in (request, analysis, proposal, *LIFE[1:], f.ApproveFeature("f"))])
    return store, bench


def _react(store: InMemoryEventStore, bench: Workbench, event_type: str) -> None:
    """The agent's reaction to the last `event_type`, through the runtimes' own reaction step."""
    envelope = store.read_all(types=(event_type,))[-1]
    reaction.react(store, bench, feature_store, envelope, Tracking("feature_store", envelope.position))


def test_a_job_without_a_key_column_records_on_the_feature_what_to_do(tmp_path: Path) -> None:
    frame = pl.DataFrame({"debt": [1.0, 2.0, 3.0, 4.0], "income": [2.0, 2.0, 5.0, 1.0], "y": [0, 1, 0, 1]})
    store, bench = _job_with_feature(tmp_path, frame, '{"id_columns": []}')
    _react(store, bench, "FeatureApproved")
    feature = load_feature(store, "f")
    assert feature is not None and feature.registration is None and feature.materialization is not None
    failed = feature.materialization
    assert (failed.version, failed.status, failed.feature_view, failed.online) == (0, "failed", "loans_features", False)
    assert "names no key column" in failed.detail and "rerun the job with --entity KEY" in failed.detail
    traces = [e.event.message for e in store.read_all(types=("AgentTraced",))]
    assert any("not registered" in t and "--entity KEY" in t for t in traces)
    # redelivered: the failure is on record, nothing new
    before = store.last_position()
    _react(store, bench, "FeatureApproved")
    assert store.last_position() == before
    # deprecated: nothing to take out of the feature store, and the trace says so
    ctx = Context(at=AT, actor="user:t", tenant_id="acme", correlation_id="j")
    execute(store, [(f.DeprecateFeature("f", "no key"), ctx)])
    _react(store, bench, "FeatureDeprecated")
    traces = [e.event.message for e in store.read_all(types=("AgentTraced",))]
    assert traces[-1] == "feature f was never in the feature store"
    assert not (tmp_path / "feature_repo").exists() or not any((tmp_path / "feature_repo").rglob("*.py"))


@pytest.mark.parametrize(
    ("column", "entity", "message"),
    [
        ([1, 2, 2, 3], "cid", "has 1 repeated keys"),
        ([1, None, 2, 3], "cid", "has 1 empty keys"),
        ([1.5, 2.0, 3.0, 4.0], "cid", "holds Float64 values"),
        ([1, 2, 3, 4], "nope", "entity 'nope' is not a column"),
    ],
)
def test_a_key_column_must_identify_each_row(tmp_path: Path, column: list[object], entity: str, message: str) -> None:
    frame = pl.DataFrame({"cid": column, "y": [0, 1, 0, 1]})
    store, _ = _job_with_feature(tmp_path, frame, '{"id_columns": ["cid"]}', entity=entity)
    owner = owned_job(store, "j")
    assert owner is not None and owner.tenant == "acme" and owner.view == "loans_features"
    with pytest.raises(ValuesProblem, match=message):
        key_column(owner, frame)


def test_the_profiles_id_column_is_the_key_when_the_job_names_none(tmp_path: Path) -> None:
    frame = pl.DataFrame({"cid": [1.0, 2.0, 3.0, 4.0], "code": ["a", "b", "c", "d"], "y": [0, 1, 0, 1]})
    store, _ = _job_with_feature(tmp_path, frame, '{"id_columns": ["cid", "code"]}')
    owner = owned_job(store, "j")
    assert owner is not None and key_column(owner, frame) == KeyColumn("cid", "int64")  # whole floats: integers
    store, _ = _job_with_feature(tmp_path / "2", frame, '{"id_columns": []}', entity="code")
    owner = owned_job(store, "j")
    assert owner is not None and key_column(owner, frame) == KeyColumn("code", "string")


def test_why_a_feature_is_not_served_says_what_can_be_done() -> None:
    from types import SimpleNamespace

    from processors.featurestore.online import NotServed, served

    def why(status: str) -> str:
        with pytest.raises(NotServed) as caught:
            served(SimpleNamespace(feature_id="f1", registration=None, materialization=None, status=status))  # type: ignore[arg-type]
        return str(caught.value)

    assert "approve it first" in why("selected")
    assert "never approved" in why("deprecated") and "approve" not in why("deprecated").split("never")[0]
    assert "afep features sync f1" in why("approved")


def test_integer_entity_keys_are_plain_ascii_digits() -> None:
    from processors.featurestore.online import BadKey, _typed

    assert [_typed(k, "customer_id", "int64") for k in ("100001", " 42 ", "-3")] == [100001, 42, -3]
    for odd in ("1_00001", "\u0661\u0660\u0660", "9" * 30, "4.0", ""):
        with pytest.raises(BadKey):
            _typed(odd, "customer_id", "int64")
    assert _typed("1_00001", "customer_id", "string") == "1_00001"
