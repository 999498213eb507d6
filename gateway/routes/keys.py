"""/api/v1/keys: list, create and revoke API keys. Admins manage their tenant's; platform admins every tenant's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field

from gateway.auth import Permission, Role, create_api_key, key_id_of
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.routes.jobs import PageOut
from gateway.validation import ClientId, RequestBody
from projections import directory

router = APIRouter(prefix="/keys", tags=["keys"])
HINT = "list them with GET /api/v1/keys"


class KeyIn(RequestBody):
    role: Role
    tenant: ClientId | None = Field(
        default=None, description="platform admins only: the tenant the key acts for (default: yours)"
    )


def _scope(auditor: Auditor, tenant: str | None) -> str | None:
    """The tenant whose keys the caller may manage (None: every tenant, for the platform operator)."""
    principal = auditor.principal
    if principal.operates_platform:
        return tenant
    if tenant not in (None, principal.tenant_id):
        raise Problem(
            403,
            "Forbidden",
            "admins manage only their own tenant's keys; ask the platform operator for other tenants",
            kind="forbidden",
        )
    return principal.tenant_id


@router.get("", description="Key id, tenant, role, created and revoked times; never the key or its hash.")
def list_keys(
    services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_TENANTS), tenant: str | None = None
) -> PageOut:
    return PageOut(items=directory.list_api_keys(services.db, _scope(auditor, tenant)))


@router.post("", status_code=201, description="Returns the key once; only its hash is stored.")
def create_key(
    body: KeyIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_TENANTS)
) -> dict[str, Any]:
    scope = _scope(auditor, body.tenant)
    tenant = auditor.principal.tenant_id if scope is None else scope
    key = create_api_key(services.settings, tenant, body.role.value, db=services.db)  # TenantDeleted: 409
    key_id = key_id_of(key)
    row = directory.get_api_key(services.db, key_id)
    auditor.record("key.create", "api_key", key_id, new=row, status=201)
    return {**(row or {}), "key": key}


@router.delete("/{key_id}", status_code=204, description="Revoke the key: it gets 401 from the next request on.")
def revoke_key(key_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_TENANTS)) -> Response:
    before = directory.get_api_key(services.db, key_id)
    scope = _scope(auditor, None)
    if before is None or (scope is not None and before["tenant_id"] != scope):
        raise not_found("API key", key_id, HINT)
    after = directory.revoke_api_key(services.db, key_id, datetime.now(UTC))
    auditor.record("key.revoke", "api_key", key_id, previous=before, new=after, status=204)
    return Response(status_code=204)
