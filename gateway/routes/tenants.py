"""/api/v1/tenants and /api/v1/projects. Platform admins manage every tenant; others see their own."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from gateway.auth import PLATFORM_TENANT, Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.routes.jobs import PageOut, page_out
from gateway.validation import ClientId, Name, RequestBody, Text
from projections import directory, jobs, webhooks
from projections.database import IntegrityViolation

router = APIRouter(tags=["tenants"])


class TenantIn(RequestBody):
    name: Name = Field(min_length=1, max_length=255)
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    tier: str = Field(default="free", pattern="^(free|pro|enterprise)$")
    id: ClientId | None = None


class ProjectIn(RequestBody):
    name: Name = Field(min_length=1, max_length=255)
    description: Text = ""
    default_connection_id: ClientId | None = None
    id: ClientId | None = None


def _visible_tenant(auditor: Auditor, services: ServicesDep, tenant_id: str) -> dict[str, Any]:
    row = directory.get_tenant(services.db, tenant_id)
    if row is None or not (auditor.principal.operates_platform or auditor.principal.tenant_id == tenant_id):
        raise not_found("tenant", tenant_id, "list visible tenants with GET /api/v1/tenants")
    return row


@router.post("/tenants", status_code=201)
def create_tenant(
    body: TenantIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_TENANTS)
) -> dict[str, Any]:
    if not auditor.principal.operates_platform:
        raise Problem(
            403, "Forbidden", "only admins of the 'platform' tenant create tenants; ask your operator", kind="forbidden"
        )
    slug = body.slug or re.sub(r"[^a-z0-9-]+", "-", body.name.lower()).strip("-")[:63] or "tenant"
    tenant_id = body.id or slug
    existing = directory.get_tenant(services.db, tenant_id)
    if existing is not None:
        state = "was deleted (its records are kept)" if existing["deleted_at"] else "exists"
        raise Problem(409, "Conflict", f"tenant {tenant_id!r} {state}; choose another id or slug")
    try:
        row = directory.create_tenant(services.db, tenant_id, body.name, slug, body.tier, datetime.now(UTC))
    except IntegrityViolation as error:
        raise Problem(409, "Conflict", f"slug {slug!r} is taken; choose another ({type(error).__name__})") from None
    auditor.record("tenant.create", "tenant", tenant_id, new=row, status=201)
    return row


@router.get("/tenants")
def list_tenants(
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageOut:
    scope = None if auditor.principal.operates_platform else [auditor.principal.tenant_id]
    return page_out(directory.list_tenants(services.db, scope, cursor=cursor, limit=limit))


@router.get("/tenants/{tenant_id}")
def get_tenant(
    tenant_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.VIEW_JOB)
) -> dict[str, Any]:
    return _visible_tenant(auditor, services, tenant_id)


@router.delete(
    "/tenants/{tenant_id}",
    status_code=204,
    description="Platform admins only. A soft delete: the tenant is marked deleted and its API keys are "
    "revoked (its keys and tokens then get 401 'tenant deleted', and `afep keys create` refuses it); its jobs, "
    "projects, connections and audit trail stay.",
)
def delete_tenant(
    tenant_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_TENANTS)
) -> Response:
    if not auditor.principal.operates_platform:
        auditor.record("denied.delete_tenant", "tenant", tenant_id, status=403)
        raise Problem(
            403,
            "Forbidden",
            "only admins of the 'platform' tenant delete tenants; ask your operator",
            kind="forbidden",
        )
    if not directory.tenant_known(services.db, tenant_id):
        raise not_found("tenant", tenant_id, "list tenants with GET /api/v1/tenants")
    if tenant_id == PLATFORM_TENANT:
        raise Problem(
            409,
            "Conflict",
            f"the {PLATFORM_TENANT!r} tenant operates the platform and cannot be deleted; revoke single keys "
            "with DELETE /api/v1/keys/{key_id}",
        )
    before = directory.get_tenant(services.db, tenant_id)
    revoked = directory.delete_tenant(services.db, tenant_id, datetime.now(UTC))
    auditor.record(
        "tenant.delete",
        "tenant",
        tenant_id,
        previous=before,
        new={"deleted": True, "keys_revoked": revoked},
        status=204,
    )
    return Response(status_code=204)


@router.post("/projects", status_code=201)
def create_project(
    body: ProjectIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    project_id = body.id or str(uuid.uuid4())
    if directory.get_project(services.db, tenant, project_id) is not None:
        raise Problem(409, "Conflict", f"project {project_id!r} exists; omit id to get a fresh one")
    if body.default_connection_id and directory.get_connection(services.db, tenant, body.default_connection_id) is None:
        raise Problem(
            422,
            "Unprocessable Content",
            f"default_connection_id {body.default_connection_id!r} is not a connection of your tenant; "
            "list them with GET /api/v1/connections, or create it first",
        )
    try:
        row = directory.create_project(
            services.db, tenant, project_id, body.name, body.description, body.default_connection_id, datetime.now(UTC)
        )
    except IntegrityViolation:
        raise Problem(409, "Conflict", f"project id {project_id!r} is taken; omit id to get a fresh one") from None
    auditor.record("project.create", "project", project_id, new=row, status=201)
    return row


@router.get("/projects")
def list_projects(
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_JOB),
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageOut:
    return page_out(directory.list_projects(services.db, auditor.principal.tenant_id, cursor=cursor, limit=limit))


@router.get("/projects/{project_id}")
def get_project(
    project_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.VIEW_JOB)
) -> dict[str, Any]:
    row = directory.get_project(services.db, auditor.principal.tenant_id, project_id)
    if row is None:
        raise not_found("project", project_id, "list them with GET /api/v1/projects")
    return row


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(
    project_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> Response:
    before = get_project(project_id, services, auditor)
    tenant = auditor.principal.tenant_id
    services.projector.catch_up()  # a job just requested may not be projected yet
    n_jobs = len(jobs.project_job_ids(services.db, tenant, project_id))
    n_hooks = webhooks.count_active(services.db, tenant, project_id)
    if n_jobs or n_hooks:
        # jobs are history (the log keeps them for replay and audit): a new project with the
        # same id would adopt them, and active webhooks would go on delivering their events
        reasons = [f"{n_jobs} job(s), which are kept for replay and audit"] if n_jobs else []
        if n_hooks:
            reasons.append(
                f"{n_hooks} active webhook(s): delete them first (GET /api/v1/projects/{project_id}/webhooks, "
                "DELETE /api/v1/webhooks/{id})"
            )
        auditor.record("project.delete", "project", project_id, new={"refused": "; ".join(reasons)}, status=409)
        raise Problem(409, "Conflict", f"project {project_id!r} cannot be deleted: it has " + "; and ".join(reasons))
    directory.delete_project(services.db, tenant, project_id)
    auditor.record("project.delete", "project", project_id, previous=before, status=204)
    return Response(status_code=204)
