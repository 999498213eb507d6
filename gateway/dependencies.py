"""Typed FastAPI dependencies: the services, the caller, permission checks and the audit trail."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, Request

from domain.envelope import Context
from gateway import ratelimit
from gateway.auth import Permission, Principal, Unauthenticated, authenticate
from gateway.bootstrap import Services
from gateway.problems import Problem
from projections.clickhouse import AuditRecord


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise Problem(503, "Service Unavailable", "the API is starting or stopping; retry in a few seconds")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    services: ServicesDep,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller; kept on `request.state` (`principal`, or `refused` for 401s) for the refusal audit."""
    try:
        principal = await anyio.to_thread.run_sync(
            authenticate, services.settings, services.db, authorization, x_api_key
        )
    except Unauthenticated as error:
        request.state.refused = error
        raise Problem(401, "Unauthorized", str(error), headers={"WWW-Authenticate": 'Bearer realm="afep"'}) from None
    request.state.principal = principal
    allowed, limit, retry_after = await anyio.to_thread.run_sync(services.limiter.acquire, principal.tenant_id)
    if not allowed:
        tier = services.limiter.tier(principal.tenant_id)
        raise Problem(
            429,
            "Too Many Requests",
            ratelimit.exhausted(principal.tenant_id, tier, limit, retry_after),
            headers={"Retry-After": str(int(retry_after))},
            kind="rate-limited",
            tier=tier,
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


class Auditor:
    """Writes one audit row per command, with the caller's identity, IP and user agent."""

    def __init__(self, services: Services, principal: Principal, request: Request) -> None:
        self.services = services
        self.principal = principal
        self.request = request

    def record(
        self,
        action: str,
        resource_type: str,
        resource_id: str,
        *,
        previous: Any = None,
        new: Any = None,
        status: int = 200,
    ) -> None:
        if status >= 400:
            self.request.state.audited = True  # the generic refusal audit (gateway/problems.py) skips it
        client = self.request.client
        self.services.audit.record(
            AuditRecord(
                actor=self.principal.actor,
                tenant_id=self.principal.tenant_id,
                role=self.principal.role.value,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                previous_state=_state(previous),
                new_state=_state(new),
                source_ip=client.host if client else "",
                user_agent=self.request.headers.get("user-agent", ""),
                status_code=status,
                time=datetime.now(UTC),
            )
        )

    def context(self, correlation_id: str = "") -> Context:
        return Context(
            at=datetime.now(UTC),
            actor=self.principal.actor,
            tenant_id=self.principal.tenant_id,
            correlation_id=correlation_id,
        )


def _state(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)


def require(permission: Permission) -> Callable[..., Any]:
    """A dependency that lets the caller through only with `permission`; denials are audited."""

    def check(principal: PrincipalDep, services: ServicesDep, request: Request) -> Auditor:
        auditor = Auditor(services, principal, request)
        if not principal.can(permission):
            auditor.record(f"denied.{permission.value}", "endpoint", request.url.path, status=403)
            raise Problem(
                403,
                "Forbidden",
                f"role {principal.role.value!r} may not {permission.value.replace('_', ' ')}; "
                "ask an admin of your tenant for a role that may",
                kind="forbidden",
            )
        return auditor

    return check


def allowed(permission: Permission) -> Any:
    return Depends(require(permission))
