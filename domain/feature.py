"""The Feature aggregate: one candidate feature from proposal to approval.

Lifecycle: proposed -> generated -> executed | failed -> evaluated
-> selected | rejected; a selected feature can be approved by a human, and an
approved or selected one deprecated. Stream: `feature-<feature_id>`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from domain import validation
from domain.errors import ConflictingCommand, InvalidTransition, UnknownAggregate


def feature_stream(feature_id: str) -> str:
    return f"feature-{feature_id}"


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class ProposeFeature:
    feature_id: str
    job_id: str
    round: int
    name: str
    description: str
    rationale: str
    spec_json: str
    source_columns: tuple[str, ...]
    expected_value: float
    proposer: str
    domain_sources: tuple[str, ...]


@dataclass(frozen=True)
class RecordCode:
    feature_id: str
    code: str
    code_type: str
    code_hash: str
    sql: str | None
    sql_dialect: str | None
    fitted: bool


@dataclass(frozen=True)
class RecordExecution:
    feature_id: str
    ok: bool
    reason: str | None
    violation: str | None
    duration_ms: float
    artifact: str | None
    null_rate: float | None
    n_unique: int | None


@dataclass(frozen=True)
class RecordEvaluation:
    feature_id: str
    round: int
    stage: str  # screen | confirm | select
    metric: str
    screen_gain: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    importance_rank: int | None
    reason: str


@dataclass(frozen=True)
class SelectFeature:
    feature_id: str
    round: int
    reason: str


@dataclass(frozen=True)
class RejectFeature:
    feature_id: str
    stage: str
    reason: str


@dataclass(frozen=True)
class ApproveFeature:
    feature_id: str
    comment: str = ""


@dataclass(frozen=True)
class DeprecateFeature:
    feature_id: str
    reason: str


@dataclass(frozen=True)
class SyncFeature:
    """Ask the feature-store agent to bring the feature's view in line with the log again:
    after a failed registration or materialization, once its cause (say, the online store
    being down) is fixed. Only approved or deprecated features are in a view."""

    feature_id: str
    reason: str = ""


@dataclass(frozen=True)
class RecordRegistration:
    """The feature store's view of an approved (or, to remove it, deprecated) feature."""

    feature_id: str
    feature_view: str
    version: int
    entity: str
    ttl_seconds: int
    online: bool
    status: str  # registered | removed
    definition_hash: str


@dataclass(frozen=True)
class RecordMaterialization:
    feature_id: str
    feature_view: str
    version: int
    rows: int
    online: bool
    status: str  # complete | failed
    detail: str


@dataclass(frozen=True)
class RecordFeatureRun:
    """The experiment tracker's child run of a confirmed candidate (MLflow)."""

    feature_id: str
    experiment_id: str
    parent_run_id: str
    run_id: str


FeatureCommand = (
    ProposeFeature
    | RecordCode
    | RecordExecution
    | RecordEvaluation
    | SelectFeature
    | RejectFeature
    | ApproveFeature
    | DeprecateFeature
    | SyncFeature
    | RecordRegistration
    | RecordMaterialization
    | RecordFeatureRun
)

# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class FeatureProposed:
    feature_id: str
    job_id: str
    round: int
    name: str
    description: str
    rationale: str
    spec_json: str
    source_columns: tuple[str, ...]
    expected_value: float
    proposer: str
    domain_sources: tuple[str, ...]


@dataclass(frozen=True)
class CodeGenerated:
    feature_id: str
    job_id: str
    code: str
    code_type: str
    code_hash: str
    sql: str | None
    sql_dialect: str | None
    fitted: bool


@dataclass(frozen=True)
class CodeExecuted:
    feature_id: str
    job_id: str
    ok: bool
    reason: str | None
    violation: str | None
    duration_ms: float
    artifact: str | None
    null_rate: float | None
    n_unique: int | None


@dataclass(frozen=True)
class FeatureEvaluated:
    feature_id: str
    job_id: str
    round: int
    stage: str
    metric: str
    screen_gain: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    importance_rank: int | None
    reason: str


@dataclass(frozen=True)
class FeatureSelected:
    feature_id: str
    job_id: str
    round: int
    reason: str


@dataclass(frozen=True)
class FeatureRejected:
    feature_id: str
    job_id: str
    stage: str
    reason: str


@dataclass(frozen=True)
class FeatureApproved:
    feature_id: str
    job_id: str
    comment: str


@dataclass(frozen=True)
class FeatureDeprecated:
    feature_id: str
    job_id: str
    reason: str


@dataclass(frozen=True)
class FeatureSyncRequested:
    feature_id: str
    job_id: str
    reason: str


@dataclass(frozen=True)
class FeatureRegistered:
    feature_id: str
    job_id: str
    feature_view: str
    version: int
    entity: str
    ttl_seconds: int
    online: bool
    status: str
    definition_hash: str


@dataclass(frozen=True)
class FeatureMaterialized:
    feature_id: str
    job_id: str
    feature_view: str
    version: int
    rows: int
    online: bool
    status: str
    detail: str


@dataclass(frozen=True)
class FeatureRunTracked:
    feature_id: str
    job_id: str
    experiment_id: str
    parent_run_id: str
    run_id: str


FeatureEvent = (
    FeatureProposed
    | CodeGenerated
    | CodeExecuted
    | FeatureEvaluated
    | FeatureSelected
    | FeatureRejected
    | FeatureApproved
    | FeatureDeprecated
    | FeatureSyncRequested
    | FeatureRegistered
    | FeatureMaterialized
    | FeatureRunTracked
)

# A feature's status, in the order a feature can reach them (`evolve`); a failed execution is then rejected.
FEATURE_STATUSES = (
    "proposed", "generated", "executed", "failed", "evaluated", "selected", "rejected", "approved", "deprecated",
)  # fmt: skip
REGISTRATION_STATUSES = ("registered", "removed")
MATERIALIZATION_STATUSES = ("complete", "failed")

# ------------------------------------------------------------------- state


@dataclass(frozen=True)
class Feature:
    feature_id: str
    proposal: FeatureProposed
    status: str = "proposed"
    code: CodeGenerated | None = None
    execution: CodeExecuted | None = None
    evaluations: tuple[FeatureEvaluated, ...] = ()
    reason: str | None = None
    registration: FeatureRegistered | None = None  # the latest
    materialization: FeatureMaterialized | None = None  # the latest
    run: FeatureRunTracked | None = None

    @property
    def job_id(self) -> str:
        return self.proposal.job_id


def evolve(state: Feature | None, event: FeatureEvent) -> Feature:
    if isinstance(event, FeatureProposed):
        return Feature(feature_id=event.feature_id, proposal=event)
    assert state is not None, f"{type(event).__name__} before FeatureProposed"
    match event:
        case CodeGenerated():
            return replace(state, code=event, status="generated")
        case CodeExecuted():
            return replace(state, execution=event, status="executed" if event.ok else "failed", reason=event.reason)
        case FeatureEvaluated():
            return replace(state, evaluations=(*state.evaluations, event), status="evaluated")
        case FeatureSelected():
            return replace(state, status="selected", reason=event.reason)
        case FeatureRejected():
            return replace(state, status="rejected", reason=event.reason)
        case FeatureApproved():
            return replace(state, status="approved")
        case FeatureDeprecated():
            return replace(state, status="deprecated", reason=event.reason)
        case FeatureSyncRequested():
            return state  # a request to the feature-store agent; what it does is recorded by it
        case FeatureRegistered():
            return replace(state, registration=event)
        case FeatureMaterialized():
            return replace(state, materialization=event)
        case FeatureRunTracked():
            return replace(state, run=event)
    raise TypeError(f"unknown feature event {type(event).__name__}")


def decide(command: FeatureCommand, state: Feature | None) -> tuple[FeatureEvent, ...]:
    if isinstance(command, ProposeFeature):
        proposed = FeatureProposed(**_fields(command))
        if state is None:
            return (proposed,)
        if state.proposal != proposed:
            raise ConflictingCommand(f"feature {command.feature_id} was proposed with other content")
        return ()
    if state is None:
        raise UnknownAggregate(f"no feature {command.feature_id}; list features with GET /api/v1/features")
    job_id = state.job_id
    match command:
        case RecordCode():
            if state.code is not None:
                return ()
            return (CodeGenerated(job_id=job_id, **_fields(command)),)
        case RecordExecution():
            if state.execution is not None:
                return ()
            if state.code is None:
                raise InvalidTransition(f"feature {state.feature_id} has no code to execute")
            return (CodeExecuted(job_id=job_id, **_fields(command)),)
        case RecordEvaluation():
            if any(e.round == command.round and e.stage == command.stage for e in state.evaluations):
                return ()
            if state.execution is None or not state.execution.ok:
                raise InvalidTransition(f"feature {state.feature_id} has no successful execution to evaluate")
            return (FeatureEvaluated(job_id=job_id, **_fields(command)),)
        case SelectFeature():
            if state.status in ("selected", "approved", "deprecated"):
                return ()
            if state.status != "evaluated":
                raise InvalidTransition(
                    f"feature {state.feature_id} is {state.status}; only evaluated ones can be selected"
                )
            return (FeatureSelected(state.feature_id, job_id, command.round, command.reason),)
        case RejectFeature():
            if state.status in ("rejected", "selected", "approved", "deprecated"):
                return ()
            return (FeatureRejected(state.feature_id, job_id, command.stage, command.reason),)
        case ApproveFeature():
            validation.check_text("comment", command.comment)
            if state.status == "approved":
                return ()
            if state.status != "selected":
                raise InvalidTransition(
                    f"feature {state.feature_id} is {state.status}; only selected features can be approved"
                )
            return (FeatureApproved(state.feature_id, job_id, command.comment),)
        case DeprecateFeature():
            validation.check_text("reason", command.reason)
            if state.status == "deprecated":
                return ()
            if state.status not in ("selected", "approved"):
                raise InvalidTransition(
                    f"feature {state.feature_id} is {state.status}; "
                    "only selected or approved features can be deprecated"
                )
            return (FeatureDeprecated(state.feature_id, job_id, command.reason),)
        case SyncFeature():
            validation.check_text("reason", command.reason)
            if state.status not in ("approved", "deprecated"):
                raise InvalidTransition(
                    f"feature {state.feature_id} is {state.status}; only approved or deprecated features are "
                    "in the feature store" + (" (approve it first)" if state.status == "selected" else "")
                )
            return (FeatureSyncRequested(state.feature_id, job_id, command.reason),)
        case RecordRegistration():
            return _registration(state, command)
        case RecordMaterialization():
            return _materialization(state, command)
        case RecordFeatureRun():
            if state.run is not None:
                return ()
            if state.execution is None or not state.evaluations:
                raise InvalidTransition(f"feature {state.feature_id} was never evaluated; nothing to track")
            for name in ("experiment_id", "parent_run_id", "run_id"):
                validation.check_name(name, getattr(command, name))
            return (FeatureRunTracked(job_id=job_id, **_fields(command)),)
    raise TypeError(f"unknown feature command {type(command).__name__}")


def _registration(state: Feature, command: RecordRegistration) -> tuple[FeatureEvent, ...]:
    """Registered while approved, removed once deprecated; the same view version twice is a repeat."""
    if command.status not in REGISTRATION_STATUSES:
        raise InvalidTransition(f"registration status must be one of {', '.join(REGISTRATION_STATUSES)}")
    wanted = "approved" if command.status == "registered" else "deprecated"
    if state.status != wanted:
        raise InvalidTransition(
            f"feature {state.feature_id} is {state.status}; a {command.status} registration needs it {wanted}"
        )
    last = state.registration
    if last is not None and (last.version, last.status) == (command.version, command.status):
        return ()
    if last is not None and command.version <= last.version:
        raise InvalidTransition(
            f"feature {state.feature_id} is registered in {last.feature_view} v{last.version}; "
            f"v{command.version} is not newer"
        )
    for name in ("feature_view", "entity", "definition_hash"):
        validation.check_name(name, getattr(command, name))
    validation.check_number("ttl_seconds", command.ttl_seconds, 0, 10 * 365 * 86400)
    return (FeatureRegistered(job_id=state.job_id, **_fields(command)),)


def _materialization(state: Feature, command: RecordMaterialization) -> tuple[FeatureEvent, ...]:
    if command.status not in MATERIALIZATION_STATUSES:
        raise InvalidTransition(f"materialization status must be one of {', '.join(MATERIALIZATION_STATUSES)}")
    registered = state.registration
    # A feature that could not be registered at all (its job names no key column, say) records
    # why at v0, so the failure is on the feature itself; a later registration starts at v1.
    unregistrable = registered is None and command.status == "failed" and command.version == 0
    if unregistrable and state.status != "approved":
        raise InvalidTransition(f"feature {state.feature_id} is {state.status}; only approved features are registered")
    if not unregistrable and (registered is None or registered.version != command.version):
        raise InvalidTransition(f"feature {state.feature_id} is not registered at v{command.version}")
    last = state.materialization
    if last is not None and last.version == command.version:
        return ()
    validation.check_text("detail", command.detail)
    return (FeatureMaterialized(job_id=state.job_id, **_fields(command)),)


def _fields(obj: object) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]
