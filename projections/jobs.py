"""The jobs read model: one row per job, folded from job, feature and progress events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain import activity, feature, job
from domain.envelope import Envelope
from projections.database import Database, Row, Tx
from projections.pagination import Page, clamp_limit, decode_cursor, page_of

TABLES = ("jobs",)
DDL = (
    """CREATE TABLE IF NOT EXISTS {jobs} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, tenant_id TEXT NOT NULL, project_id TEXT NOT NULL,
        status TEXT NOT NULL, stage TEXT NOT NULL, attempt INTEGER NOT NULL, round INTEGER NOT NULL,
        progress_done INTEGER NOT NULL, progress_total INTEGER NOT NULL, progress_message TEXT NOT NULL,
        requested_at TEXT NOT NULL, started_at TEXT, completed_at TEXT, updated_at TEXT NOT NULL,
        n_proposed INTEGER NOT NULL, n_executed INTEGER NOT NULL, n_failed INTEGER NOT NULL,
        n_selected INTEGER NOT NULL, n_rejected INTEGER NOT NULL,
        baseline_score DOUBLE PRECISION, final_score DOUBLE PRECISION, metric TEXT,
        target TEXT NOT NULL, task TEXT NOT NULL, source TEXT NOT NULL, table_name TEXT,
        dataset_path TEXT, failure TEXT, requested_by TEXT NOT NULL, position BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {jobs}_tenant ON {jobs} (tenant_id, project_id, seq)",
)
# Columns newer than the table (projector.create_tables adds them to older read models): where the
# experiment tracker logged the job (MLflow experiment, parent run, number of candidate runs).
ADDED_COLUMNS = {
    "jobs": (("experiment_id", "TEXT"), ("experiment_run_id", "TEXT"), ("experiment_feature_runs", "INTEGER"))
}

_NEXT_STAGE = dict(zip(job.STAGES, (*job.STAGES[1:], "planning"), strict=True))


def iso(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _set(tx: Tx, job_id: str, envelope: Envelope, **values: Any) -> None:
    values = {**values, "updated_at": iso(envelope.occurred_at), "position": envelope.position}
    assignments = ", ".join(f"{name} = ?" for name in values)
    tx.execute(f"UPDATE {{jobs}} SET {assignments} WHERE id = ?", (*values.values(), job_id))


def _bump(tx: Tx, job_id: str, envelope: Envelope, column: str) -> None:
    tx.execute(
        f"UPDATE {{jobs}} SET {column} = {column} + 1, updated_at = ?, position = ? WHERE id = ?",
        (iso(envelope.occurred_at), envelope.position, job_id),
    )


def apply(tx: Tx, envelope: Envelope) -> None:
    e = envelope.event
    match e:
        case job.JobRequested():
            at = iso(envelope.occurred_at)
            tx.execute(
                """INSERT INTO {jobs} (id, seq, tenant_id, project_id, status, stage, attempt, round,
                    progress_done, progress_total, progress_message, requested_at, updated_at,
                    n_proposed, n_executed, n_failed, n_selected, n_rejected, target, task, source, table_name,
                    requested_by, position)
                VALUES (?, ?, ?, ?, 'requested', 'schema', 1, 0, 0, 0, '', ?, ?, 0, 0, 0, 0, 0, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING""",
                (
                    e.job_id,
                    envelope.position,
                    envelope.tenant_id,
                    e.project_id,
                    at,
                    at,
                    e.target,
                    e.task,
                    e.source,
                    e.table,
                    envelope.actor,
                    envelope.position,
                ),
            )
        case job.SchemaAnalyzed():
            _set(
                tx,
                e.job_id,
                envelope,
                status="running",
                stage="research",
                metric=e.metric,
                task=e.task,
                dataset_path=e.dataset_path,
                started_at=iso(envelope.occurred_at),
            )
        case job.DomainResearched():
            _set(tx, e.job_id, envelope, stage="ideation")
        case job.RoundStarted():
            _set(tx, e.job_id, envelope, round=e.round, stage="ideation")
        case job.StageCompleted():
            _set(tx, e.job_id, envelope, stage=_NEXT_STAGE.get(e.stage, "planning"))
        case job.RoundCompleted():
            _set(
                tx,
                e.job_id,
                envelope,
                stage="planning",
                metric=e.metric,
                baseline_score=e.baseline_score,
                final_score=e.score,
            )
        case job.JobCompleted():
            _set(
                tx,
                e.job_id,
                envelope,
                status="completed",
                stage="done",
                metric=e.metric,
                baseline_score=e.baseline_score,
                final_score=e.final_score,
                completed_at=iso(envelope.occurred_at),
            )
        case job.JobFailed():
            _set(tx, e.job_id, envelope, status="failed", failure=e.reason, completed_at=iso(envelope.occurred_at))
        case job.JobCancelled():
            _set(tx, e.job_id, envelope, status="cancelled", failure=e.reason, completed_at=iso(envelope.occurred_at))
        case job.ExperimentTracked():
            _set(
                tx,
                e.job_id,
                envelope,
                experiment_id=e.experiment_id,
                experiment_run_id=e.run_id,
                experiment_feature_runs=e.feature_runs,
            )
        case job.JobRetried():
            _set(
                tx,
                e.job_id,
                envelope,
                status="requested",
                stage="schema",
                attempt=e.attempt,
                failure=None,
                completed_at=None,
            )
        case feature.FeatureProposed():
            _bump(tx, e.job_id, envelope, "n_proposed")
        case feature.CodeExecuted():
            _bump(tx, e.job_id, envelope, "n_executed" if e.ok else "n_failed")
        case feature.FeatureSelected():
            _bump(tx, e.job_id, envelope, "n_selected")
        case feature.FeatureRejected():
            _bump(tx, e.job_id, envelope, "n_rejected")
        case activity.ProgressReported():
            _set(tx, e.job_id, envelope, progress_done=e.done, progress_total=e.total, progress_message=e.message)


# ----------------------------------------------------------------- queries


def get_job(db: Database, tenant_id: str, job_id: str) -> Row | None:
    """The job, or None when it does not exist *for this tenant*."""
    with db.transaction(write=False) as tx:
        return tx.one("SELECT * FROM {jobs} WHERE id = ? AND tenant_id = ?", (job_id, tenant_id))


def job_tenant(db: Database, job_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        return tx.one("SELECT id, tenant_id, project_id FROM {jobs} WHERE id = ?", (job_id,))


def list_jobs(
    db: Database,
    tenant_id: str,
    *,
    project_id: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    limit = clamp_limit(limit)
    where, params = ["tenant_id = ?"], [tenant_id]
    for column, value in (("project_id", project_id), ("status", status)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    after = decode_cursor(cursor)
    if after is not None:
        where.append("seq < ?")
        params.append(after)  # type: ignore[arg-type]
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT * FROM {{jobs}} WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?", (*params, limit + 1)
        )
    return page_of(rows, limit)


def project_job_ids(db: Database, tenant_id: str, project_id: str) -> set[str]:
    with db.transaction(write=False) as tx:
        rows = tx.all("SELECT id FROM {jobs} WHERE tenant_id = ? AND project_id = ?", (tenant_id, project_id))
    return {r["id"] for r in rows}
