"""What the log says about a view: the approved and deprecated features of one table, with
their jobs and their registrations so far. The log is the truth; the Feast repository is
rebuilt from it when it is missing or behind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from commands.store import EventStore
from commands.unit_of_work import load_feature
from domain import job as job_domain
from domain.feature import Feature
from domain.job import Job
from processors.featurestore.naming import table_name, view_name
from processors.sources import public_location


@dataclass(frozen=True)
class OwnedJob:
    job: Job
    tenant: str

    @property
    def project(self) -> str:
        return self.job.request.project_id

    @property
    def table(self) -> str:
        return table_name(self.job.request.source, self.job.request.table)

    @property
    def view(self) -> str:
        return view_name(self.table)

    @property
    def source_identity(self) -> str:
        """The table itself, not only its name: where the job read it (no credentials) and which table."""
        request = self.job.request
        where = public_location(request.source)
        return f"{where} table {request.table}" if request.table else where


@dataclass(frozen=True)
class Listed:
    feature: Feature
    owner: OwnedJob
    approved_at: int  # log position of the approval


def owned_job(store: EventStore, job_id: str) -> OwnedJob | None:
    """The job and the tenant that requested it."""
    stream = store.read_stream(job_domain.job_stream(job_id))
    if not stream:
        return None
    state: Job | None = None
    for envelope in stream:
        state = job_domain.evolve(state, envelope.event)
    assert state is not None
    return OwnedJob(state, stream[0].tenant_id)


def _approvals(store: EventStore, page: int = 1000) -> Iterator[tuple[str, int]]:
    after = 0
    while True:
        batch = store.read_all(after=after, limit=page, types=("FeatureApproved",))
        if not batch:
            return
        for envelope in batch:
            yield envelope.event.feature_id, envelope.position
        after = batch[-1].position


def view_features(store: EventStore, tenant: str, project: str, view: str) -> list[Listed]:
    """Every feature ever approved for `view` of (tenant, project), in approval order."""
    jobs: dict[str, OwnedJob | None] = {}
    out: list[Listed] = []
    seen: set[str] = set()
    for feature_id, position in _approvals(store):
        if feature_id in seen:
            continue
        seen.add(feature_id)
        feature = load_feature(store, feature_id)
        if feature is None:
            continue
        if feature.job_id not in jobs:
            jobs[feature.job_id] = owned_job(store, feature.job_id)
        owner = jobs[feature.job_id]
        if owner is not None and (owner.tenant, owner.project, owner.view) == (tenant, project, view):
            out.append(Listed(feature, owner, position))
    return out
