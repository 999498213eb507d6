"""/api/v1/explorer: read-only query, schema and profile over a connection or a job's dataset.

Every read and every refusal is audited. A connection's URI passes the source
policy again on every use (connections made before the policy, or an operator
who narrowed it since, are held to it too).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter
from pydantic import Field

from gateway import explorer
from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.public import redact_paths
from gateway.validation import ClientId, Name, RequestBody
from processors.sources import Backend, Location, SourceError, open_backend, redact
from projections import directory, jobs

router = APIRouter(prefix="/explorer", tags=["explorer"])
T = TypeVar("T")


class Target(RequestBody):
    connection_id: ClientId | None = None
    job_id: ClientId | None = Field(default=None, description="explore the job's analysed dataset (table `data`)")


class QueryIn(Target):
    sql: str = Field(min_length=1, max_length=100_000)
    max_rows: int = Field(default=1000, ge=1, le=10_000)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)


class ProfileIn(Target):
    table: str = Field(default=explorer.SOURCE_VIEW, max_length=1024)
    columns: list[Name] | None = Field(default=None, max_length=500)


def resolve(services: ServicesDep, tenant: str, target: Target) -> Backend:
    if target.job_id:
        row = jobs.get_job(services.db, tenant, target.job_id)
        if row is None:
            raise not_found("job", target.job_id, "list your jobs with GET /api/v1/jobs")
        if not row["dataset_path"]:
            raise Problem(409, "Conflict", f"job {target.job_id} has no analysed dataset yet; retry once it is running")
        # the job's own snapshot, written by the schema agent: internal, so not subject to the tenant policy
        return open_backend(Location("parquet", str(Path(row["dataset_path"]))), "the job's dataset")
    if not target.connection_id:
        raise Problem(422, "Unprocessable Content", "give `connection_id` or `job_id`")
    if not services.settings.secret_key:
        raise Problem(503, "Service Unavailable", "set AFEP_SECRET_KEY to open connections")
    uri = directory.connection_uri(services.db, services.settings.connection_secrets, tenant, target.connection_id)
    if uri is None:
        raise not_found("connection", target.connection_id, "list them with GET /api/v1/connections")
    location = services.settings.source_policy.admit(uri, tenant)  # SourceUnavailable: the neutral message
    return open_backend(location, redact(uri))


def _problem(error: SourceError) -> Problem:
    if isinstance(error, explorer.QueryTimeout):
        return Problem(408, "Request Timeout", str(error), kind="query-timeout")
    if isinstance(error, explorer.RejectedQuery):
        return Problem(422, "Unprocessable Content", str(error), kind="rejected-query")
    return Problem(422, "Unprocessable Content", str(error), kind="source-unavailable")


async def _audited(auditor: Auditor, action: str, target: Target, note: dict[str, Any], work: Callable[[], T]) -> T:
    """`work()` on a worker thread; the read, or its refusal, is audited either way."""
    kind = "connection" if target.connection_id else "job"
    ident = target.connection_id or target.job_id or ""

    def record(new: dict[str, Any], status: int) -> None:
        auditor.record(action, kind, ident, new=new, status=status)

    try:
        result = await anyio.to_thread.run_sync(work)
    except SourceError as error:
        problem = _problem(error)  # the tenant's own database errors are kept, the server's paths are not
        problem.detail = redact_paths(problem.detail, auditor.services.settings.data_dir)
        await anyio.to_thread.run_sync(lambda: record({**note, "refused": problem.detail}, problem.status))
        raise problem from None
    except Problem as problem:
        await anyio.to_thread.run_sync(lambda: record({**note, "refused": problem.detail}, problem.status))
        raise
    await anyio.to_thread.run_sync(lambda: record(note, 200))
    return result


@router.post("/query")
async def query(
    body: QueryIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    limit = services.settings.explorer_max_bytes

    def work() -> explorer.Result:
        backend = resolve(services, tenant, body)
        return explorer.run(backend, body.sql, max_rows=body.max_rows, max_bytes=limit, timeout=body.timeout_seconds)

    result = await _audited(auditor, "explorer.query", body, {"sql": body.sql[:4096]}, work)
    return {
        "columns": result.columns,
        "rows": result.rows,
        "truncated": result.truncated,
        "elapsed_ms": result.elapsed_ms,
    }


@router.get("/schema/{connection_id}")
async def connection_schema(
    connection_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    cached = directory.get_connection(services.db, tenant, connection_id)
    if cached is None:
        raise not_found("connection", connection_id, "list them with GET /api/v1/connections")
    target = Target(connection_id=connection_id)
    if cached.get("schema_cache"):
        tables = cached["schema_cache"]
        await _audited(auditor, "explorer.schema", target, {"cached": True}, lambda: None)
        return {"connection_id": connection_id, "tables": tables, "cached": True}
    tables = await _audited(
        auditor,
        "explorer.schema",
        target,
        {"cached": False},
        lambda: explorer.schema(resolve(services, tenant, target)),
    )
    directory.cache_schema(services.db, tenant, connection_id, tables)
    return {"connection_id": connection_id, "tables": tables, "cached": False}


@router.post("/profile")
async def profile(
    body: ProfileIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    limit = services.settings.explorer_max_bytes
    return await _audited(
        auditor,
        "explorer.profile",
        body,
        {"table": body.table[:256], "columns": (body.columns or [])[:50]},
        lambda: explorer.profile(resolve(services, tenant, body), body.table, body.columns, max_bytes=limit),
    )
