"""/api/v1/explorer: read-only query, schema and profile over a connection or a job's dataset."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway import explorer
from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from projections import directory, jobs

router = APIRouter(prefix="/explorer", tags=["explorer"])


class Target(BaseModel):
    connection_id: str | None = None
    job_id: str | None = Field(default=None, description="explore the job's analysed dataset (table `data`)")


class QueryIn(Target):
    sql: str = Field(min_length=1, max_length=100_000)
    max_rows: int = Field(default=1000, ge=1, le=10_000)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)


class ProfileIn(Target):
    table: str = explorer.SOURCE_VIEW
    columns: list[str] | None = None


def resolve(services: ServicesDep, tenant: str, target: Target) -> explorer.Source:
    if target.job_id:
        row = jobs.get_job(services.db, tenant, target.job_id)
        if row is None:
            raise not_found("job", target.job_id, "list your jobs with GET /api/v1/jobs")
        if not row["dataset_path"]:
            raise Problem(409, "Conflict", f"job {target.job_id} has no analysed dataset yet; retry once it is running")
        return explorer.Source("parquet", row["dataset_path"])
    if not target.connection_id:
        raise Problem(422, "Unprocessable Content", "give `connection_id` or `job_id`")
    if not services.settings.secret_key:
        raise Problem(503, "Service Unavailable", "set AFEP_SECRET_KEY to open connections")
    uri = directory.connection_uri(services.db, services.settings.secret_key, tenant, target.connection_id)
    if uri is None:
        raise not_found("connection", target.connection_id, "list them with GET /api/v1/connections")
    kind, _ = directory.classify(uri)
    return explorer.Source(kind, uri)


def _checked(call: Any) -> Any:
    try:
        return call()
    except explorer.RejectedQuery as error:
        raise Problem(422, "Unprocessable Content", str(error), kind="rejected-query") from None
    except explorer.QueryTimeout as error:
        raise Problem(408, "Request Timeout", str(error), kind="query-timeout") from None


@router.post("/query")
async def query(
    body: QueryIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> dict[str, Any]:
    source = resolve(services, auditor.principal.tenant_id, body)
    result = await anyio.to_thread.run_sync(
        lambda: _checked(lambda: explorer.run(source, body.sql, max_rows=body.max_rows, timeout=body.timeout_seconds))
    )
    await anyio.to_thread.run_sync(
        lambda: auditor.record(
            "explorer.query",
            "connection" if body.connection_id else "job",
            body.connection_id or body.job_id or "",
            new={"sql": body.sql, "rows": len(result.rows)},
        )
    )
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
    if cached.get("schema_cache"):
        return {"connection_id": connection_id, "tables": cached["schema_cache"], "cached": True}
    source = resolve(services, tenant, Target(connection_id=connection_id))
    tables = await anyio.to_thread.run_sync(lambda: _checked(lambda: explorer.schema(source)))
    directory.cache_schema(services.db, tenant, connection_id, tables)
    return {"connection_id": connection_id, "tables": tables, "cached": False}


@router.post("/profile")
async def profile(
    body: ProfileIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> dict[str, Any]:
    source = resolve(services, auditor.principal.tenant_id, body)
    return await anyio.to_thread.run_sync(  # type: ignore[no-any-return]
        lambda: _checked(lambda: explorer.profile(source, body.table, body.columns))
    )
