"""One reconciliation of a view with the log: what the feature-store agent does on an approval
or a deprecation.

Under the repository's lock: list the view's approved and deprecated features from the log,
resolve each job's key column, plan (plan.py), compute the values of new members, write the
repository, apply and materialize with Feast, and record the outcome (bench.emit) before the
lock is released, so a second worker on the same view plans from it. Nothing changed, nothing
recorded: a redelivered approval is a no-op (after restoring the Feast repository if it was
lost or is behind the log). A sync request (`afep features sync`, FeatureSyncRequested) runs
the same reconciliation: a member whose materialization failed makes the plan a new version
(plan.py), so a retry once the cause is fixed applies and materializes again; a request
always says what it found.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Trace, load_feature
from domain.feature import Feature, RecordMaterialization, RecordRegistration
from processors.featurestore.catalog import Listed, OwnedJob, owned_job, view_features
from processors.featurestore.config import FeatureStoreConfig
from processors.featurestore.definitions import FieldSpec, ViewSpec
from processors.featurestore.naming import field_name
from processors.featurestore.online import expired_age
from processors.featurestore.plan import Candidate, Plan, Registration, plan_view, without
from processors.featurestore.repository import Repository
from processors.featurestore.values import (
    TIMESTAMP,
    ValuesProblem,
    candidate_values,
    key_column,
    snapshot,
    view_frame,
)
from processors.workbench import Workbench

AGENT = "feature_store"
MAX_DETAIL = 2000


@dataclass
class Sync:
    store: EventStore
    bench: Workbench
    config: FeatureStoreConfig
    repo: Repository
    owner: OwnedJob
    trigger: Feature
    listed: dict[str, Listed]
    requested: bool = False  # an explicit sync request: say what was found, even when nothing changed


def synchronize(
    store: EventStore, bench: Workbench, config: FeatureStoreConfig, feature_id: str, *, requested: bool = False
) -> None:
    """Bring the view of `feature_id`'s table in line with the log; records what it did."""
    feature = load_feature(store, feature_id)
    owner = owned_job(store, feature.job_id) if feature is not None else None
    if feature is None or owner is None:
        return
    repo = Repository(config, owner.tenant, owner.project)
    with repo.locked():
        listed = {x.feature.feature_id: x for x in view_features(store, owner.tenant, owner.project, owner.view)}
        ctx = Sync(store, bench, config, repo, owner, feature, listed, requested)
        bench.emit(_reconcile(ctx))


def _reconcile(ctx: Sync) -> list[Any]:
    view = ctx.owner.view
    candidates = _candidates(ctx, view)
    plan = plan_view(view, candidates, ttl_seconds=ctx.config.ttl_seconds)
    parts: list[Any] = []
    if plan.changed and plan.members:
        for _ in range(len(candidates) + 1):  # a new member whose values fail drops out; plan again without it
            parts, problems = candidate_values(ctx.bench, _sources(ctx, plan.members), ctx.repo.values_dir)
            fresh = {fid: why for fid, why in problems.items() if not _by_id(candidates, fid).registered}
            if problems and not fresh:
                return _blocked(ctx, plan, problems)
            if not fresh:
                break
            candidates = without(candidates, fresh)
            plan = plan_view(view, candidates, ttl_seconds=ctx.config.ttl_seconds)
            if not (plan.changed and plan.members):
                break
    out = _failures(ctx, plan)
    if plan.changed:
        out += _register(ctx, plan, parts)
    elif plan.members:
        out += _restore(ctx, plan)
    elif ctx.trigger.registration is None and ctx.trigger.status == "deprecated":
        out.append(_trace(ctx, "decision", f"feature {ctx.trigger.feature_id} was never in the feature store"))
    elif ctx.requested:
        out.append(
            _trace(
                ctx,
                "decision",
                f"nothing to sync: view {view} has no feature that can be served (a feature's last "
                "materialization says why it cannot join)",
            )
        )
    return out


def _candidates(ctx: Sync, view: str) -> list[Candidate]:
    keys: dict[str, Any] = {}
    out: list[Candidate] = []
    for listed in ctx.listed.values():
        f, owner = listed.feature, listed.owner
        if owner.job.job_id not in keys:
            try:
                keys[owner.job.job_id] = key_column(owner, snapshot(ctx.bench, owner))
            except ValuesProblem as error:
                keys[owner.job.job_id] = str(error)
        key = keys[owner.job.job_id]
        reg = f.registration if f.registration is not None and f.registration.feature_view == view else None
        mat = f.materialization
        out.append(
            Candidate(
                feature_id=f.feature_id,
                job_id=f.job_id,
                field=field_name(f.proposal.name),
                description=f.proposal.description,
                code_hash=f.code.code_hash if f.code else "",
                dataset_sha256=owner.job.schema.dataset_sha256 if owner.job.schema else "",
                approved=f.status == "approved",
                order=listed.approved_at,
                registration=Registration(reg.version, reg.status, reg.definition_hash, reg.entity) if reg else None,
                materialized_version=mat.version if mat is not None and mat.status == "complete" else None,
                failed_unregistered=reg is None and mat is not None and mat.version == 0,
                key=key if not isinstance(key, str) else None,
                problem=key if isinstance(key, str) else None,
                source=owner.source_identity,
            )
        )
    return out


def _by_id(candidates: Sequence[Candidate], feature_id: str) -> Candidate:
    return next(c for c in candidates if c.feature_id == feature_id)


def _sources(ctx: Sync, members: Sequence[Candidate]) -> list[tuple[Candidate, OwnedJob, Feature]]:
    return [(c, ctx.listed[c.feature_id].owner, ctx.listed[c.feature_id].feature) for c in members]


def _spec(ctx: Sync, plan: Plan) -> ViewSpec:
    assert plan.entity is not None
    return ViewSpec(
        tenant=ctx.owner.tenant,
        project=ctx.owner.project,
        view=plan.view,
        version=plan.version,
        entity=plan.entity,
        ttl_seconds=ctx.config.ttl_seconds,
        online=True,
        fields=tuple(FieldSpec(m.field, m.description, m.feature_id, m.job_id, m.code_hash) for m in plan.members),
        offline=ctx.config.offline,
        location=ctx.repo.location(plan.view, plan.version),
        definition_hash=plan.definition_hash,
    )


def _register(ctx: Sync, plan: Plan, parts: list[Any]) -> list[Any]:
    """Apply and materialize version `plan.version` (or delete the view when no feature is left)."""
    view, version = plan.view, plan.version
    entity = plan.entity.name if plan.entity else next(c.registration.entity for c in plan.removed if c.registration)
    names = ", ".join(m.field for m in plan.members) or "none"
    ctx.bench.emit(
        [_trace(ctx, "tool_call", f"feast apply {view} v{version} ({names}) keyed by {entity}, then materialize")]
    )
    removals = [
        RecordRegistration(
            c.feature_id, view, version, entity, ctx.config.ttl_seconds, False, "removed", plan.definition_hash
        )
        for c in plan.removed
    ]
    if not plan.members:
        try:
            ctx.repo.delete(view)
            ctx.repo.write_definitions(None, drop=view)
        except Exception as error:  # noqa: BLE001 - Feast or the disk: recorded, the log keeps it registered
            return [_trace(ctx, "decision", f"could not delete view {view}: {_reason(ctx, error)}")]
        return [*removals, _trace(ctx, "tool_result", f"view {view} deleted: no approved feature is left")]
    spec = _spec(ctx, plan)
    at: datetime = ctx.bench.clock()
    frame = view_frame(spec.entity, parts, at)
    loading = time.monotonic()
    try:
        ctx.repo.feature_store()  # imports Feast the first time (seconds): timed apart from the work
        started = time.monotonic()
        ctx.repo.write_values(spec, frame)
        ctx.repo.write_definitions(spec)
        ctx.repo.apply(spec, purge=plan.shrinks)
    except Exception as error:  # noqa: BLE001 - nothing registered: the new members fail, the rest stay as they were
        why = f"Feast could not apply view {view} v{version}: {_reason(ctx, error)}"
        fresh = [m for m in plan.members if not m.registered]
        return [*(_failure(ctx, m, view, why) for m in fresh), _trace(ctx, "decision", why)]
    applied = time.monotonic() - started
    registrations = [
        RecordRegistration(
            m.feature_id, view, version, spec.entity.name, spec.ttl_seconds, True, "registered", spec.definition_hash
        )
        for m in plan.members
    ]
    status, detail = "complete", f"{frame.height} rows into the {ctx.config.online} online store"
    try:
        ctx.repo.materialize(spec, at)
    except Exception as error:  # noqa: BLE001 - registered, but not served: recorded as a failed materialization
        status, detail = "failed", f"materialization failed: {_reason(ctx, error)}"
    seconds = time.monotonic() - started
    materializations = [
        RecordMaterialization(m.feature_id, view, version, frame.height, True, status, detail) for m in plan.members
    ]
    message = (
        f"view {view} v{version}: {len(plan.members)} feature(s) keyed by {spec.entity.name}, {detail} "
        f"(apply {applied:.2f} s, with materialization {seconds:.2f} s)"
        + (f"; removed {', '.join(c.field for c in plan.removed)}" if plan.removed else "")
    )
    data = {
        "view": view,
        "version": version,
        "rows": frame.height,
        "feast_load_s": round(started - loading, 3),
        "apply_s": round(applied, 3),
        "apply_and_materialize_s": round(seconds, 3),
    }
    kind = "tool_result" if status == "complete" else "decision"
    return [*registrations, *removals, *materializations, _trace(ctx, kind, message, data)]


def _restore(ctx: Sync, plan: Plan) -> list[Any]:
    """Nothing changed in the log; rebuild the Feast side if it lacks this version (a wiped or new data dir).

    An explicit sync also reads one key back from the online store: a registry in line with the
    log says nothing about online values that were lost (a deleted or emptied online store) or
    that expired (older than the view's TTL: materialized again, they are served again)."""
    try:
        in_line = ctx.repo.applied(plan.view) == (plan.version, plan.definition_hash)
        if in_line and not ctx.requested:
            return []
        parts, problems = candidate_values(ctx.bench, _sources(ctx, plan.members), ctx.repo.values_dir)
        if problems:
            return [_trace(ctx, "decision", f"cannot restore view {plan.view}: {'; '.join(problems.values())}")]
        spec = _spec(ctx, plan)
        at: datetime = ctx.bench.clock()
        frame = view_frame(spec.entity, parts, at)
        if in_line and _online_holds(ctx, plan, frame, spec.entity.name):
            return [_trace(ctx, "tool_result", f"view {plan.view} v{plan.version} is in line with the log")]
        ctx.repo.write_values(spec, frame)
        ctx.repo.write_definitions(spec)
        ctx.repo.apply(spec, purge=True)
        ctx.repo.materialize(spec, at)
    except Exception as error:  # noqa: BLE001 - the log stays as it is; the next approval tries again
        return [_trace(ctx, "decision", f"could not restore view {plan.view} in Feast: {_reason(ctx, error)}")]
    return [_trace(ctx, "tool_result", f"restored view {plan.view} v{plan.version} in Feast from the log")]


def _online_holds(ctx: Sync, plan: Plan, frame: Any, entity: str) -> bool:
    """The online store answers the view's first key with the values the log computes (a sample),
    not yet expired."""
    if frame.height == 0:
        return True
    row = frame.row(0, named=True)
    names = [m.field for m in plan.members]
    try:
        served = ctx.repo.online(plan.view, names, [{entity: row[entity]}])
    except Exception:  # noqa: BLE001 - a missing table or store: not in line, rebuild it
        return False
    if expired_age(served[TIMESTAMP][0], ctx.config.ttl_seconds, ctx.bench.clock()) is not None:
        return False
    return all((served.get(n) or [None])[0] is not None for n in names if row.get(n) is not None)


def _blocked(ctx: Sync, plan: Plan, problems: dict[str, str]) -> list[Any]:
    """A registered member's values cannot be rebuilt: no new version; new approvals wait with a failure."""
    why = f"view {plan.view} cannot be rebuilt: {'; '.join(problems.values())}"
    fresh = [m for m in plan.members if not m.registered and not m.failed_unregistered]
    return [*_failures(ctx, plan), *(_failure(ctx, m, plan.view, why) for m in fresh), _trace(ctx, "decision", why)]


def _failures(ctx: Sync, plan: Plan) -> list[Any]:
    out: list[Any] = []
    for candidate, why in plan.failures:
        out.append(_failure(ctx, candidate, plan.view, why))
        out.append(Trace(candidate.job_id, AGENT, "decision", f"feature {candidate.feature_id} not registered: {why}"))
    return out


def _failure(ctx: Sync, candidate: Candidate, view: str, why: str) -> RecordMaterialization:
    return RecordMaterialization(candidate.feature_id, view, 0, 0, False, "failed", why[:MAX_DETAIL])


def _trace(ctx: Sync, kind: str, message: str, data: dict[str, Any] | None = None) -> Trace:
    return Trace(ctx.trigger.job_id, AGENT, kind, message, data)


def _reason(ctx: Sync, error: Exception) -> str:
    """The error in one line, without the server's paths (failure details reach tenants)."""
    text = f"{type(error).__name__}: {error}".replace(str(ctx.repo.path), "<feature repo>")
    text = text.replace(str(ctx.config.root), "<feature repo>")
    return " ".join(text.split())[:MAX_DETAIL]
