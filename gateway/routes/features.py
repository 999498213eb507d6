"""/api/v1/features: list, get, approve, deprecate, online values, lineage."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query

from commands.unit_of_work import execute
from domain import feature
from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.routes.jobs import PageOut, page_out
from gateway.validation import RequestBody, Text
from projections import features, lineage

router = APIRouter(prefix="/features", tags=["features"])
HINT = "list your features with GET /api/v1/features"


class ApproveRequest(RequestBody):
    comment: Text = ""


class DeprecateRequest(RequestBody):
    reason: Text


class SyncRequest(RequestBody):
    reason: Text = ""


def owned_feature(services: ServicesDep, tenant: str, feature_id: str) -> dict[str, Any]:
    row = features.get_feature(services.db, tenant, feature_id)
    if row is None:
        services.projector.catch_up()
        row = features.get_feature(services.db, tenant, feature_id)
    if row is None:
        raise not_found("feature", feature_id, HINT)
    return {k: v for k, v in row.items() if k != "seq"}


@router.get("")
def list_features(
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.VIEW_FEATURE),
    project_id: str | None = None,
    job_id: str | None = None,
    status: str | None = None,
    name: str | None = None,
    eval_stage: Annotated[
        Literal["screen", "confirm", "select"] | None,
        Query(description="last evaluation stage reached: screen, confirm or select (the finalists)"),
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageOut:
    return page_out(
        features.list_features(
            services.db,
            auditor.principal.tenant_id,
            project_id=project_id,
            job_id=job_id,
            status=status,
            name=name,
            eval_stage=eval_stage,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get("/{feature_id}")
def get_feature(
    feature_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.VIEW_FEATURE)
) -> dict[str, Any]:
    row = owned_feature(services, auditor.principal.tenant_id, feature_id)
    row["lineage"] = lineage.feature_lineage(services.db, auditor.principal.tenant_id, feature_id)
    return row


async def _transition(
    services: ServicesDep, auditor: Auditor, feature_id: str, command: Any, action: str
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    before = owned_feature(services, tenant, feature_id)
    await anyio.to_thread.run_sync(lambda: execute(services.store, [(command, auditor.context(before["job_id"]))]))
    await anyio.to_thread.run_sync(services.after_commands)
    after = owned_feature(services, tenant, feature_id)
    await anyio.to_thread.run_sync(
        lambda: auditor.record(action, "feature", feature_id, previous=before["status"], new=after["status"])
    )
    return after


@router.post("/{feature_id}/approve")
async def approve_feature(
    feature_id: str,
    services: ServicesDep,
    body: ApproveRequest | None = None,
    auditor: Auditor = allowed(Permission.APPROVE_FEATURE),
) -> dict[str, Any]:
    command = feature.ApproveFeature(feature_id, (body or ApproveRequest()).comment)
    return await _transition(services, auditor, feature_id, command, "feature.approve")


@router.post("/{feature_id}/deprecate")
async def deprecate_feature(
    feature_id: str,
    body: DeprecateRequest,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.APPROVE_FEATURE),
) -> dict[str, Any]:
    command = feature.DeprecateFeature(feature_id, body.reason)
    return await _transition(services, auditor, feature_id, command, "feature.deprecate")


@router.post("/{feature_id}/sync", status_code=202)
async def sync_feature(
    feature_id: str,
    services: ServicesDep,
    body: SyncRequest | None = None,
    auditor: Auditor = allowed(Permission.APPROVE_FEATURE),
) -> dict[str, Any]:
    """Retry the feature store for an approved or deprecated feature (after a failed registration
    or materialization, once its cause is fixed). The feature-store agent does it in the
    background; the feature's `feast_registration` block and its feed show the outcome."""
    command = feature.SyncFeature(feature_id, (body or SyncRequest()).reason)
    return await _transition(services, auditor, feature_id, command, "feature.sync")


@router.get("/{feature_id}/online")
async def online_values(
    feature_id: str,
    services: ServicesDep,
    entity: Annotated[list[str], Query(min_length=1, max_length=100, description="an entity key (repeatable)")],
    auditor: Auditor = allowed(Permission.VIEW_FEATURE),
) -> dict[str, Any]:
    """The approved feature's values in the online store for the given entity keys (Feast
    get_online_features); null for keys it holds no value for. The first read imports Feast."""
    from gateway.runtime_wiring import feature_store_config
    from processors.featurestore.online import BadKey, NotServed, StoreUnavailable, read_online

    await anyio.to_thread.run_sync(owned_feature, services, auditor.principal.tenant_id, feature_id)
    config = feature_store_config(services.settings)
    try:
        read = await anyio.to_thread.run_sync(read_online, services.store, config, feature_id, entity)
    except BadKey as error:
        raise Problem(422, "Unprocessable Content", str(error)) from None
    except NotServed as error:
        raise Problem(409, "Conflict", str(error), kind="not-served") from None
    except StoreUnavailable as error:
        raise Problem(503, "Service Unavailable", str(error), kind="online-store-unavailable") from None
    return read.as_dict()


@router.get("/{feature_id}/lineage")
def feature_lineage(
    feature_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.VIEW_FEATURE)
) -> dict[str, Any]:
    owned_feature(services, auditor.principal.tenant_id, feature_id)
    return {"feature_id": feature_id, **lineage.feature_lineage(services.db, auditor.principal.tenant_id, feature_id)}
