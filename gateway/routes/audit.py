"""/api/v1/audit: the tenant's audit trail, Admin only, newest first.

Platform admins may read any tenant's trail (`?tenant=`), deleted tenants' included.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query

from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem

router = APIRouter(prefix="/audit", tags=["audit"])


def _cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps([row["time"].isoformat(), row["id"]]).encode()).decode()


def _before(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(ident)
    except (ValueError, TypeError):
        raise Problem(400, "Bad Request", "the cursor is not valid; use the previous page's next_cursor") from None


@router.get("")
async def search_audit(
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_AUDIT),
    actor: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    tenant: Annotated[str | None, Query(description="platform admins only: another tenant's trail")] = None,
) -> dict[str, Any]:
    scope = tenant or auditor.principal.tenant_id
    if scope != auditor.principal.tenant_id and not auditor.principal.operates_platform:
        raise Problem(
            403, "Forbidden", "only platform admins read other tenants' audit trails; omit `tenant`", kind="forbidden"
        )
    rows = await anyio.to_thread.run_sync(
        lambda: services.audit.search(
            scope,
            actor=actor,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            since=since,
            until=until,
            before=_before(cursor),
            limit=limit + 1,
        )
    )
    items = rows[:limit]
    return {
        "items": [{**r, "time": r["time"].isoformat()} for r in items],
        "next_cursor": _cursor(items[-1]) if len(rows) > limit else None,
    }
