"""Agent executions and traces (the seed's AGENT_EXECUTION and AGENT_TRACE entities).

One execution per (job, agent, causation): everything an agent recorded while
reacting to one event. Traces are its AgentTraced events; the execution completes
when the reaction produced a domain event (and fails when that event is JobFailed).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from domain import activity, job
from domain.envelope import Envelope
from domain.events import ACTIVITY_EVENTS
from projections.database import Database, Row, Tx
from projections.jobs import iso
from projections.pagination import Page, clamp_limit, decode_cursor, page_of

EXECUTION_NAMESPACE = uuid.UUID("0b6f7c1e-2d7a-4f7e-9a2c-5e1d3b8c4a90")
TABLES = ("agent_executions", "agent_traces")
DDL = (
    """CREATE TABLE IF NOT EXISTS {agent_executions} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, job_id TEXT NOT NULL, tenant_id TEXT NOT NULL,
        agent_type TEXT NOT NULL, causation_id TEXT, status TEXT NOT NULL, input TEXT NOT NULL,
        output TEXT NOT NULL, n_traces INTEGER NOT NULL, duration_ms BIGINT NOT NULL,
        started_at TEXT NOT NULL, completed_at TEXT, position BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {agent_executions}_job ON {agent_executions} (job_id, seq)",
    """CREATE TABLE IF NOT EXISTS {agent_traces} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, execution_id TEXT NOT NULL, job_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL, agent_type TEXT NOT NULL, sequence INTEGER NOT NULL, trace_type TEXT NOT NULL,
        message TEXT NOT NULL, content TEXT NOT NULL, at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {agent_traces}_job ON {agent_traces} (job_id, seq)",
)


def execution_id(job_id: str, agent: str, causation_id: str | None) -> str:
    return str(uuid.uuid5(EXECUTION_NAMESPACE, f"{job_id}:{agent}:{causation_id or ''}"))


def _tenant(tx: Tx, job_id: str, fallback: str) -> str:
    return str(tx.scalar("SELECT tenant_id FROM {jobs} WHERE id = ?", (job_id,)) or fallback)


def _execution(tx: Tx, envelope: Envelope, job_id: str, agent: str) -> Row:
    exec_id = execution_id(job_id, agent, envelope.causation_id)
    row = tx.one("SELECT * FROM {agent_executions} WHERE id = ?", (exec_id,))
    if row is None:
        at = iso(envelope.occurred_at)
        row = {
            "id": exec_id,
            "seq": envelope.position,
            "job_id": job_id,
            "tenant_id": _tenant(tx, job_id, envelope.tenant_id),
            "agent_type": agent,
            "causation_id": envelope.causation_id,
            "status": "running",
            "input": json.dumps({"causation_id": envelope.causation_id}),
            "output": "[]",
            "n_traces": 0,
            "duration_ms": 0,
            "started_at": at,
            "completed_at": None,
            "position": envelope.position,
        }
        columns = ", ".join(row)
        tx.execute(
            f"INSERT INTO {{agent_executions}} ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
        )
    return row


def apply(tx: Tx, envelope: Envelope) -> None:
    e = envelope.event
    job_id = getattr(e, "job_id", "")
    if not job_id:
        return
    if isinstance(e, ACTIVITY_EVENTS):
        execution = _execution(tx, envelope, job_id, str(getattr(e, "agent", "")))
        if isinstance(e, activity.AgentTraced):
            tx.execute(
                """INSERT INTO {agent_traces} (id, seq, execution_id, job_id, tenant_id, agent_type, sequence,
                    trace_type, message, content, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING""",
                (
                    envelope.event_id,
                    envelope.position,
                    execution["id"],
                    job_id,
                    execution["tenant_id"],
                    e.agent,
                    envelope.version,
                    e.kind,
                    e.message,
                    e.data_json,
                    iso(envelope.occurred_at),
                ),
            )
            tx.execute(
                "UPDATE {agent_executions} SET n_traces = n_traces + 1, position = ? WHERE id = ?",
                (envelope.position, execution["id"]),
            )
        return
    if envelope.causation_id is None:
        return  # a human's command through the API or CLI, not an agent's reaction
    execution = _execution(tx, envelope, job_id, envelope.actor)
    output = [*json.loads(execution["output"]), envelope.event_type]
    at = iso(envelope.occurred_at)
    duration = int(
        (datetime.fromisoformat(at) - datetime.fromisoformat(execution["started_at"])).total_seconds() * 1000
    )
    tx.execute(
        """UPDATE {agent_executions} SET status = ?, output = ?, completed_at = ?, duration_ms = ?, position = ?
        WHERE id = ?""",
        (
            "failed" if isinstance(e, job.JobFailed) else "completed",
            json.dumps(output),
            at,
            max(duration, 0),
            envelope.position,
            execution["id"],
        ),
    )


# ----------------------------------------------------------------- queries


def list_executions(db: Database, tenant_id: str, job_id: str, *, cursor: str | None = None, limit: int = 100) -> Page:
    limit = clamp_limit(limit)
    after = decode_cursor(cursor)
    with db.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT * FROM {agent_executions} WHERE tenant_id = ? AND job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (tenant_id, job_id, after or 0, limit + 1),
        )
    for row in rows:
        row["input"], row["output"] = json.loads(row["input"]), json.loads(row["output"])
    return page_of(rows, limit)


def list_traces(
    db: Database,
    tenant_id: str,
    job_id: str,
    *,
    agent_type: str | None = None,
    cursor: str | None = None,
    limit: int = 200,
) -> Page:
    limit = clamp_limit(limit)
    where, params = ["tenant_id = ?", "job_id = ?", "seq > ?"], [tenant_id, job_id, decode_cursor(cursor) or 0]
    if agent_type:
        where.append("agent_type = ?")
        params.append(agent_type)
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT * FROM {{agent_traces}} WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", (*params, limit + 1)
        )
    for row in rows:
        row["content"] = json.loads(row["content"])
    return page_of(rows, limit)
