"""/api/v1/jobs: create, list, get, cancel, retry, history (replay) and agent activity."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from commands.unit_of_work import execute
from domain import job
from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.public import public
from gateway.routes.uploads import admitted
from gateway.validation import Budget, ClientId, Name, RequestBody, Source, Text
from processors.kafka.tracing import command_span
from processors.llm.usage import job_usage
from processors.sources import Location, column_problem, file_columns, redact
from projections import agents, directory, history, jobs
from projections.pagination import Page

router = APIRouter(prefix="/jobs", tags=["jobs"])
HINT = "list your jobs with GET /api/v1/jobs"


class JobRequest(RequestBody):
    project_id: ClientId
    source: Source | None = Field(default=None, description="dataset path or URI; or give connection_id")
    connection_id: ClientId | None = None
    table: Name | None = None
    target: Name = Field(min_length=1)
    task: str = Field(
        default="auto",
        pattern="^(auto|classification|regression)$",
        description="classification: 2 classes (ROC AUC) or 3 to 20 (multiclass log loss); regression: RMSE",
    )
    budget_seconds: Budget = 600.0
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    max_rounds: int = Field(default=job.DEFAULT_MAX_ROUNDS, ge=1, le=100)
    max_candidates: int = Field(default=job.DEFAULT_MAX_CANDIDATES, ge=1, le=job.MAX_CANDIDATES)
    job_id: ClientId | None = Field(default=None, description="client-chosen id: repeating a request is idempotent")
    entity: Name | None = Field(
        default=None, description="the key column features are served by (Feast entity); default: the id column found"
    )
    keep_columns: list[Name] = Field(
        default_factory=list,
        max_length=job.MAX_KEEP_COLUMNS,
        description="columns you vouch for: kept even if the schema agent suspects they leak the target",
    )
    llm_budget_tokens: int | None = Field(
        default=None,
        ge=0,
        le=job.MAX_LLM_TOKENS,
        description="LLM tokens (in + out) the job may spend when the server has a model; default: the server's",
    )
    llm_budget_usd: float | None = Field(
        default=None, ge=0, le=job.MAX_LLM_USD, allow_inf_nan=False, description="LLM dollars the job may spend"
    )


class CancelRequest(RequestBody):
    reason: Text = "cancelled by user"


class PageOut(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


def page_out(page: Page, data_dir: Path | None = None) -> PageOut:
    return PageOut(
        items=[public({k: v for k, v in row.items() if k != "seq"}, data_dir) for row in page.items],
        next_cursor=page.next_cursor,
    )


def owned_job(services: ServicesDep, tenant: str, job_id: str) -> dict[str, Any]:
    row = jobs.get_job(services.db, tenant, job_id)
    if row is None:
        services.projector.catch_up()  # maybe it was just appended by another process
        row = jobs.get_job(services.db, tenant, job_id)
    if row is None:
        raise not_found("job", job_id, HINT)
    return row


JOB_IDS = uuid.UUID("5d0c1f0e-7a4b-4f3e-9c55-0a2f6b1d8e11")  # namespace of tenant-derived job ids


_DERIVED_ATTEMPTS = 16  # ids tried for a client's job_id: its own, then a chain derived from (tenant, id)


def stored_job_id(services: ServicesDep, tenant: str, client_id: str) -> str:
    """The id a job requested with the client's `job_id` is stored under.

    The client's id itself, unless another tenant's job has it: then a fresh id derived
    from (tenant, client id), the same on every repeat, so nothing is revealed. Derived ids
    can be computed by anyone, so one another tenant took on purpose is passed over for
    the next in a fixed chain: a tenant cannot block another's ids.
    """
    caught_up = False
    for attempt in range(_DERIVED_ATTEMPTS):
        candidate = client_id if attempt == 0 else _derived_id(tenant, client_id, attempt)
        owner = jobs.job_tenant(services.db, candidate)
        if owner is None and not caught_up:
            services.projector.catch_up()  # maybe another process just appended it
            caught_up = True
            owner = jobs.job_tenant(services.db, candidate)
        if owner is None or owner["tenant_id"] == tenant:
            return candidate
    raise Problem(409, "Conflict", f"job id {client_id[:128]!r} cannot be used; omit job_id to get a fresh one")


def _derived_id(tenant: str, client_id: str, attempt: int) -> str:
    salt = "" if attempt == 1 else f"\0{attempt}"
    return str(uuid.uuid5(JOB_IDS, f"{tenant}\0{client_id}{salt}"))


def known_target(location: Location, target: str, entity: str | None = None, keep: Sequence[str] = ()) -> None:
    """For a CSV or Parquet source, a target (or entity) that is not one of its columns, or a column
    name that cannot be stored, is a 422 now, not a failed job later."""
    columns = file_columns(location)
    if columns is None:
        return
    if problem := column_problem(columns):
        raise Problem(422, "Unprocessable Content", problem)
    for role, column in (("target", target), ("entity", entity), *(("keep_columns", c) for c in keep)):
        if column is not None and column not in columns:
            shown = ", ".join(columns[:20]) + (f", … ({len(columns)} in all)" if len(columns) > 20 else "")
            raise Problem(
                422, "Unprocessable Content", f"{role} {column[:200]!r} is not a column of the source; columns: {shown}"
            )


@router.post(
    "",
    status_code=201,
    description="Request a job. `job_id` is an idempotency key: repeating the request answers 200 with the "
    "same job. The job's id is `job_id` unless another tenant's job already uses it; then the job gets an id "
    "derived from your tenant and `job_id` (the same on every repeat), so always use the `id` in the response "
    "and the Location header.",
)
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
    location = admitted(services, auditor, source, body.table)  # the source policy, before anything is stored
    if location.password and not body.connection_id:
        # the request is an event in the job's log, which every reader of the job sees
        auditor.record("job.create", "source", redact(source)[:512], new={"refused": "password in source"}, status=422)
        raise Problem(
            422,
            "Unprocessable Content",
            "`source` holds a password, which would be kept in the job's history and shown to everyone who can read "
            "the job; create a connection (POST /api/v1/connections: credentials are encrypted and never shown) and "
            "give its id as `connection_id`",
        )
    known_target(location, body.target, body.entity, body.keep_columns)
    job_id = stored_job_id(services, tenant, body.job_id) if body.job_id else str(uuid.uuid4())
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
        body.entity,
        llm_budget_tokens=body.llm_budget_tokens,
        llm_budget_usd=body.llm_budget_usd,
        keep_columns=tuple(dict.fromkeys(body.keep_columns)),
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
    return public(row, services.settings.data_dir)  # type: ignore[no-any-return]


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
        ),
        services.settings.data_dir,
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
        shown = {k: v for k, v in row.items() if k != "seq"}
        shown["llm_usage"] = job_usage(services.store, row["id"]).to_dict()
        return public(shown, services.settings.data_dir)  # type: ignore[no-any-return]
    state = history.as_of(services.store, job_id, history.parse_as_of(as_of))
    return public(state, services.settings.data_dir)  # type: ignore[no-any-return]


async def _transition(
    services: ServicesDep, auditor: Auditor, job_id: str, command: Any, action: str
) -> dict[str, Any]:
    before = owned_job(services, auditor.principal.tenant_id, job_id)
    await anyio.to_thread.run_sync(lambda: execute(services.store, [(command, auditor.context(job_id))]))
    await anyio.to_thread.run_sync(services.after_commands)
    after = owned_job(services, auditor.principal.tenant_id, job_id)
    auditor.record(action, "job", job_id, previous=before["status"], new=after["status"])
    return public({k: v for k, v in after.items() if k != "seq"}, services.settings.data_dir)  # type: ignore[no-any-return]


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
    job_id: str,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    include_activity: bool = False,
    as_of: str | None = Query(
        default=None, description="ISO-8601 time or log position: the timeline up to it, and the job as it was then"
    ),
) -> dict[str, Any]:
    owned_job(services, auditor.principal.tenant_id, job_id)
    point = None if as_of is None else history.parse_as_of(as_of)
    out: dict[str, Any] = {
        "job_id": job_id,
        "timeline": history.timeline(services.store, job_id, include_activity=include_activity, as_of=point),
    }
    if point is not None:
        out["as_of"] = as_of
        out["state"] = history.as_of(services.store, job_id, point)
    return public(out, services.settings.data_dir)  # type: ignore[no-any-return]


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
        agents.list_executions(services.db, auditor.principal.tenant_id, job_id, cursor=cursor, limit=limit),
        services.settings.data_dir,
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
        ),
        services.settings.data_dir,
    )


@router.get(
    "/{job_id}/usage",
    description="The job's LLM usage (calls, cached calls, tokens in and out, dollars, web searches), "
    "in all, per agent and per feature; zero for a job the offline agents ran.",
)
def job_llm_usage(
    job_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.VIEW_JOB)
) -> dict[str, Any]:
    row = owned_job(services, auditor.principal.tenant_id, job_id)
    usage = job_usage(services.store, row["id"])
    return {**usage.to_dict(), "by_feature": {fid: u.to_dict() for fid, u in sorted(usage.by_feature.items())}}
