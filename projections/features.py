"""The features read model: one row per candidate feature, versioned per (project, name).

A feature's place in the feature store (`feast_registration`) comes from projections/registrations.py."""

from __future__ import annotations

import json
from typing import Any

from domain import feature
from domain.envelope import Envelope
from projections import registrations
from projections.database import Database, Row, Tx
from projections.jobs import iso
from projections.pagination import Page, clamp_limit, decode_cursor, page_of

TABLES = ("features",)
DDL = (
    """CREATE TABLE IF NOT EXISTS {features} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, job_id TEXT NOT NULL, tenant_id TEXT NOT NULL,
        project_id TEXT NOT NULL, round INTEGER NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
        status TEXT NOT NULL, description TEXT NOT NULL, rationale TEXT NOT NULL, spec TEXT NOT NULL,
        expected_value DOUBLE PRECISION, source_columns TEXT NOT NULL, domain_sources TEXT NOT NULL,
        proposer TEXT NOT NULL, code TEXT, code_type TEXT, code_hash TEXT, sql TEXT, sql_dialect TEXT,
        fitted BOOLEAN, exec_ok BOOLEAN, exec_violation TEXT, exec_duration_ms DOUBLE PRECISION,
        null_rate DOUBLE PRECISION, n_unique BIGINT, metric TEXT, eval_stage TEXT,
        screen_gain DOUBLE PRECISION, lift DOUBLE PRECISION, ci_low DOUBLE PRECISION, ci_high DOUBLE PRECISION,
        p_value DOUBLE PRECISION, importance_rank INTEGER, reason TEXT,
        proposed_at TEXT NOT NULL, updated_at TEXT NOT NULL, approved_at TEXT, approved_by TEXT,
        deprecated_at TEXT, position BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {features}_tenant ON {features} (tenant_id, project_id, seq)",
    "CREATE INDEX IF NOT EXISTS {features}_name ON {features} (tenant_id, project_id, name)",
    "CREATE INDEX IF NOT EXISTS {features}_job ON {features} (job_id, seq)",
)
JSON_COLUMNS = ("spec", "source_columns", "domain_sources")
# Columns newer than the table (projector.create_tables adds them to older read models).
# The experiment tracker's run of the candidate: shown as `evaluation` {experiment_id, parent_run_id, run_id}.
TRACKING_COLUMNS = {
    "experiment_id": "experiment_id",
    "mlflow_parent_run_id": "parent_run_id",
    "mlflow_run_id": "run_id",
}
ADDED_COLUMNS = {"features": tuple((name, "TEXT") for name in TRACKING_COLUMNS)}


def _set(tx: Tx, feature_id: str, envelope: Envelope, **values: Any) -> None:
    values = {**values, "updated_at": iso(envelope.occurred_at), "position": envelope.position}
    assignments = ", ".join(f"{name} = ?" for name in values)
    tx.execute(f"UPDATE {{features}} SET {assignments} WHERE id = ?", (*values.values(), feature_id))


def apply(tx: Tx, envelope: Envelope) -> None:
    e = envelope.event
    match e:
        case feature.FeatureProposed():
            owner = tx.one("SELECT tenant_id, project_id FROM {jobs} WHERE id = ?", (e.job_id,))
            tenant = owner["tenant_id"] if owner else envelope.tenant_id
            project = owner["project_id"] if owner else ""
            version = 1 + int(
                tx.scalar(
                    "SELECT COALESCE(MAX(version), 0) AS v FROM {features} "
                    "WHERE tenant_id = ? AND project_id = ? AND name = ?",
                    (tenant, project, e.name),
                )
                or 0
            )
            at = iso(envelope.occurred_at)
            tx.execute(
                """INSERT INTO {features} (id, seq, job_id, tenant_id, project_id, round, name, version, status,
                    description, rationale, spec, expected_value, source_columns, domain_sources, proposer,
                    proposed_at, updated_at, position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'proposed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING""",
                (
                    e.feature_id,
                    envelope.position,
                    e.job_id,
                    tenant,
                    project,
                    e.round,
                    e.name,
                    version,
                    e.description,
                    e.rationale,
                    e.spec_json,
                    e.expected_value,
                    json.dumps(list(e.source_columns)),
                    json.dumps(list(e.domain_sources)),
                    e.proposer,
                    at,
                    at,
                    envelope.position,
                ),
            )
        case feature.CodeGenerated():
            _set(
                tx,
                e.feature_id,
                envelope,
                status="generated",
                code=e.code,
                code_type=e.code_type,
                code_hash=e.code_hash,
                sql=e.sql,
                sql_dialect=e.sql_dialect,
                fitted=e.fitted,
            )
        case feature.CodeExecuted():
            _set(
                tx,
                e.feature_id,
                envelope,
                status="executed" if e.ok else "failed",
                exec_ok=e.ok,
                exec_violation=e.violation,
                exec_duration_ms=e.duration_ms,
                null_rate=e.null_rate,
                n_unique=e.n_unique,
                reason=e.reason,
            )
        case feature.FeatureEvaluated():
            _set(
                tx,
                e.feature_id,
                envelope,
                status="evaluated",
                metric=e.metric,
                eval_stage=e.stage,
                screen_gain=e.screen_gain,
                lift=e.lift,
                ci_low=e.ci_low,
                ci_high=e.ci_high,
                p_value=e.p_value,
                importance_rank=e.importance_rank,
                reason=e.reason,
            )
        case feature.FeatureSelected():
            _set(tx, e.feature_id, envelope, status="selected", reason=e.reason)
        case feature.FeatureRejected():
            _set(tx, e.feature_id, envelope, status="rejected", reason=e.reason)
        case feature.FeatureApproved():
            _set(
                tx,
                e.feature_id,
                envelope,
                status="approved",
                approved_at=iso(envelope.occurred_at),
                approved_by=envelope.actor,
            )
        case feature.FeatureDeprecated():
            _set(
                tx,
                e.feature_id,
                envelope,
                status="deprecated",
                reason=e.reason,
                deprecated_at=iso(envelope.occurred_at),
            )
        case feature.FeatureRunTracked():
            _set(
                tx,
                e.feature_id,
                envelope,
                experiment_id=e.experiment_id,
                mlflow_parent_run_id=e.parent_run_id,
                mlflow_run_id=e.run_id,
            )


# ----------------------------------------------------------------- queries


def _decoded(row: Row) -> Row:
    for column in JSON_COLUMNS:
        if isinstance(row.get(column), str):
            row[column] = json.loads(row[column])
    for column in ("fitted", "exec_ok"):
        if row.get(column) is not None:
            row[column] = bool(row[column])
    row["evaluation"] = {shown: row.pop(column, None) for column, shown in TRACKING_COLUMNS.items()}
    return row


def get_feature(db: Database, tenant_id: str, feature_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        row = tx.one("SELECT * FROM {features} WHERE id = ? AND tenant_id = ?", (feature_id, tenant_id))
        feast = registrations.blocks(tx, [feature_id]) if row else {}
    return {**_decoded(row), "feast_registration": feast.get(feature_id)} if row else None


def list_features(
    db: Database,
    tenant_id: str,
    *,
    project_id: str | None = None,
    job_id: str | None = None,
    status: str | None = None,
    name: str | None = None,
    eval_stage: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """A page of the tenant's features, newest first. `eval_stage` is the last evaluation stage
    reached: "select" gives a job's finalists (with `status="rejected"`: the closest calls)."""
    limit = clamp_limit(limit)
    where, params = ["tenant_id = ?"], [tenant_id]
    filters = (("project_id", project_id), ("job_id", job_id), ("status", status), ("name", name))
    for column, value in (*filters, ("eval_stage", eval_stage)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    after = decode_cursor(cursor)
    if after is not None:
        where.append("seq < ?")
        params.append(after)  # type: ignore[arg-type]
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT * FROM {{features}} WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?", (*params, limit + 1)
        )
        page = page_of(rows, limit)
        feast = registrations.blocks(tx, [r["id"] for r in page.items])
    items = [{**_decoded(r), "feast_registration": feast.get(r["id"])} for r in page.items]
    return Page(items=items, next_cursor=page.next_cursor)
