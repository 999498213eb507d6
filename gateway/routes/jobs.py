"""/api/v1/jobs: create, list, get, cancel, retry, history (replay) and agent activity."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from commands.unit_of_work import execute
from domain import job
from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from processors.kafka.tracing import command_span
from projections import agents, directory, history, jobs
from projections.pagination import Page

router = APIRouter(prefix="/jobs", tags=["jobs"])
HINT = "list your jobs with GET /api/v1/jobs"


class JobRequest(BaseModel):
    project_id: str
    source: str | None = Field(default=None, description="dataset path or URI; or give connection_id")
    connection_id: str | None = None
    table: str | None = None
    target: str
    task: str = Field(default="auto", pattern="^(auto|classification|regression)$")
    budget_seconds: float = Field(default=600.0, gt=0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    max_rounds: int = Field(default=job.DEFAULT_MAX_ROUNDS, ge=1, le=100)
    max_candidates: int = Field(default=50, ge=1, le=10_000)
    job_id: str | None = Field(default=None, description="client-chosen id: repeating a request is idempotent")


class CancelRequest(BaseModel):
    reason: str = "cancelled by user"


class PageOut(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


def page_out(page: Page) -> PageOut:
    return PageOut(
        items=[{k: v for k, v in row.items() if k != "seq"} for row in page.items], next_cursor=page.next_cursor
    )


def owned_job(services: ServicesDep, tenant: str, job_id: str) -> dict[str, Any]:
    row = jobs.get_job(services.db, tenant, job_id)
    if row is None:
        services.projector.catch_up()  # maybe it was just appended by another process
        row = jobs.get_job(services.db, tenant, job_id)
    if row is None:
        raise not_found("job", job_id, HINT)
    return row


@router.post("", status_code=201)
def create_job(
    body: JobRequest, services: ServicesDep, response: Response, auditor: Auditor = allowed(Permission.CREATE_JOB)
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    if directory.get_project(services.db, tenant, body.project_id) is None:
        raise not_found("project", body.project_id, "create it first with POST /api/v1/projects")
    if body.connection_id:
        if directory.get_connection(services.db, tenant, body.connection_id) is None:
            raise not_found("connection", body.connection_id, "list them with GET /api/v1/connections")
        source = f"connection://{body.connection_id}"
    elif body.source:
        source = body.source
    else:
        raise Problem(422, "Unprocessable Content", "give `source` (a path or URI) or `connection_id`")
    job_id = body.job_id or str(uuid.uuid4())
    existing = jobs.job_tenant(services.db, job_id)
    if existing is not None and existing["tenant_id"] != tenant:
        raise Problem(409, "Conflict", f"job id {job_id!r} is taken; omit job_id to get a fresh one")
    command = job.RequestJob(
        job_id,
        body.project_id,
        source,
        body.table,
        body.target,
        body.task,
        body.budget_seconds,
        body.seed,
        body.max_rounds,
        body.max_candidates,
    )
    ctx = auditor.context(job_id)
    with command_span("POST /api/v1/jobs", job_id, ctx.actor):  # the root of the job's trace
        recorded = execute(services.store, [(command, ctx)])
    services.after_commands()
    if not recorded:
        response.status_code = 200  # the same request again: nothing new happened
    row = owned_job(services, tenant, job_id)
    auditor.record("job.create", "job", job_id, new=row["status"], status=response.status_code or 201)
    response.headers["Location"] = f"/api/v1/jobs/{job_id}"
    return row


@router.get("")
def list_jobs(
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    project_id: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageOut:
    return page_out(
        jobs.list_jobs(
            services.db, auditor.principal.tenant_id, project_id=project_id, status=status, cursor=cursor, limit=limit
        )
    )


@router.get("/{job_id}")
def get_job(
    job_id: str,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    as_of: str | None = Query(default=None, description="ISO-8601 time or log position"),
) -> dict[str, Any]:
    row = owned_job(services, auditor.principal.tenant_id, job_id)
    if as_of is None:
        return {k: v for k, v in row.items() if k != "seq"}
    return history.as_of(services.store, job_id, history.parse_as_of(as_of))


async def _transition(
    services: ServicesDep, auditor: Auditor, job_id: str, command: Any, action: str
) -> dict[str, Any]:
    before = owned_job(services, auditor.principal.tenant_id, job_id)
    await anyio.to_thread.run_sync(lambda: execute(services.store, [(command, auditor.context(job_id))]))
    await anyio.to_thread.run_sync(services.after_commands)
    after = owned_job(services, auditor.principal.tenant_id, job_id)
    auditor.record(action, "job", job_id, previous=before["status"], new=after["status"])
    return {k: v for k, v in after.items() if k != "seq"}


@router.post("/{job_id}/cancel")
async def cancel_job(
    job_id: str,
    services: ServicesDep,
    body: CancelRequest | None = None,
    auditor: Auditor = allowed(Permission.CANCEL_JOB),
) -> dict[str, Any]:
    reason = (body or CancelRequest()).reason
    return await _transition(services, auditor, job_id, job.CancelJob(job_id, reason), "job.cancel")


@router.post("/{job_id}/retry")
async def retry_job(
    job_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.CREATE_JOB)
) -> dict[str, Any]:
    return await _transition(services, auditor, job_id, job.RetryJob(job_id), "job.retry")


@router.get("/{job_id}/history")
def job_history(
    job_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.VIEW_JOB), include_activity: bool = False
) -> dict[str, Any]:
    owned_job(services, auditor.principal.tenant_id, job_id)
    return {"job_id": job_id, "timeline": history.timeline(services.store, job_id, include_activity=include_activity)}


@router.get("/{job_id}/executions")
def job_executions(
    job_id: str,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PageOut:
    owned_job(services, auditor.principal.tenant_id, job_id)
    return page_out(
        agents.list_executions(services.db, auditor.principal.tenant_id, job_id, cursor=cursor, limit=limit)
    )


@router.get("/{job_id}/traces")
def job_traces(
    job_id: str,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    agent_type: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> PageOut:
    owned_job(services, auditor.principal.tenant_id, job_id)
    return page_out(
        agents.list_traces(
            services.db, auditor.principal.tenant_id, job_id, agent_type=agent_type, cursor=cursor, limit=limit
        )
    )
