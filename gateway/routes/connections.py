"""/api/v1/connections: data sources. Credentials are encrypted at rest and never returned."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.routes.jobs import PageOut, page_out
from gateway.routes.uploads import source_problem
from gateway.validation import ClientId, Name, RequestBody, Source
from processors.sources import SourceError, parse, public_location
from projections import directory
from projections.database import IntegrityViolation

router = APIRouter(prefix="/connections", tags=["connections"])


class ConnectionIn(RequestBody):
    name: Name = Field(min_length=1, max_length=255)
    uri: Source = Field(
        description="upload://NAME (POST /api/v1/uploads), a .csv/.parquet path under the operator's source "
        "roots, or sqlite:///, duckdb:///, postgresql://, mysql:// on an allowed host"
    )
    project_id: ClientId | None = None
    id: ClientId | None = None


def secret_key(services: ServicesDep) -> str:
    if not services.settings.secret_key:
        raise Problem(
            503,
            "Service Unavailable",
            "connections need AFEP_SECRET_KEY to encrypt credentials; set it and restart the API",
        )
    return services.settings.secret_key


@router.post("", status_code=201)
def create_connection(
    body: ConnectionIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    if body.project_id and directory.get_project(services.db, tenant, body.project_id) is None:
        raise not_found("project", body.project_id, "create it with POST /api/v1/projects")
    connection_id = body.id or str(uuid.uuid4())
    try:
        services.settings.source_policy.admit(body.uri, tenant)
        kind = parse(body.uri).kind
    except SourceError as error:
        auditor.record("connection.create", "connection", connection_id, new={"refused": str(error)}, status=422)
        raise source_problem(error) from None
    try:
        row = directory.create_connection(
            services.db,
            secret_key(services),
            tenant,
            connection_id,
            body.name,
            body.uri,
            body.project_id,
            datetime.now(UTC),
            kind=kind,
            location=public_location(body.uri),
        )
    except IntegrityViolation:
        raise Problem(409, "Conflict", f"connection id {connection_id!r} is taken; omit id") from None
    auditor.record(
        "connection.create",
        "connection",
        connection_id,
        new={"kind": row["kind"], "location": row["location"]},
        status=201,
    )
    return {k: v for k, v in row.items() if k != "seq"}


@router.get("")
def list_connections(
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS),
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageOut:
    return page_out(directory.list_connections(services.db, auditor.principal.tenant_id, cursor=cursor, limit=limit))


@router.delete("/{connection_id}", status_code=204)
def delete_connection(
    connection_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_CONNECTIONS)
) -> Response:
    before = directory.get_connection(services.db, auditor.principal.tenant_id, connection_id)
    if before is None:
        raise not_found("connection", connection_id, "list them with GET /api/v1/connections")
    directory.delete_connection(services.db, auditor.principal.tenant_id, connection_id)
    auditor.record(
        "connection.delete",
        "connection",
        connection_id,
        previous={"kind": before["kind"], "location": before["location"]},
        status=204,
    )
    return Response(status_code=204)
