"""What a view should become: the pure decision behind every registration.

A view holds every approved feature of one (tenant, project, source table). Given the
candidates the log knows (approved or deprecated features of that table, with the view's
registrations so far), `plan_view` says which features the next version holds, which it
drops, which cannot join and why, and whether anything changed at all: a redelivered
approval plans the same definition and so no new version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from processors.featurestore.naming import RESERVED_FIELDS

KeyType = Literal["int64", "string"]


@dataclass(frozen=True)
class KeyColumn:
    """The entity: the column a view's rows are keyed by, and its Feast type."""

    name: str
    dtype: KeyType


@dataclass(frozen=True)
class Registration:
    """A candidate's latest registration in this view (from its FeatureRegistered)."""

    version: int
    status: str  # registered | removed
    definition_hash: str
    entity: str


@dataclass(frozen=True)
class Candidate:
    feature_id: str
    job_id: str
    field: str  # its column in the view
    description: str
    code_hash: str
    dataset_sha256: str
    approved: bool  # False: deprecated
    order: int  # log position of its approval: earlier approvals win a field name
    registration: Registration | None = None
    materialized_version: int | None = None  # the version its last complete materialization was of
    failed_unregistered: bool = False  # a failure is on record at v0 already
    key: KeyColumn | None = None
    problem: str | None = None  # why it cannot join (no key column, values that cannot be computed)
    # the table its job read (file path or URI without credentials, and table): a view is named after the
    # table's name, so two tables of one name would share it; only one of them may fill it
    source: str = ""

    @property
    def registered(self) -> bool:
        return self.registration is not None and self.registration.status == "registered"


@dataclass(frozen=True)
class Plan:
    view: str
    version: int  # the version to register (the current one when nothing changed)
    changed: bool
    entity: KeyColumn | None
    members: tuple[Candidate, ...]  # the features the view holds at `version`
    removed: tuple[Candidate, ...] = ()  # registered before, dropped at `version`
    failures: tuple[tuple[Candidate, str], ...] = ()  # approved features that cannot join, with why
    definition_hash: str = ""
    previous_fields: tuple[str, ...] = field(default=())

    @property
    def shrinks(self) -> bool:
        """Fields leave the view (or it changes its key): stale online values must be purged."""
        return bool(set(self.previous_fields) - {m.field for m in self.members})


def definition_hash(
    view: str, entity: KeyColumn | None, ttl_seconds: int, online: bool, members: Sequence[Candidate]
) -> str:
    """sha256 over everything that defines the view's content; equal hashes, equal views."""
    spec = {
        "view": view,
        "entity": [entity.name, entity.dtype] if entity else None,
        "ttl_seconds": ttl_seconds,
        "online": online,
        "fields": sorted([m.field, m.feature_id, m.code_hash, m.dataset_sha256] for m in members),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def plan_view(view: str, candidates: Sequence[Candidate], *, ttl_seconds: int, online: bool = True) -> Plan:
    current = [c for c in candidates if c.registered]
    version = max((c.registration.version for c in candidates if c.registration), default=0)
    entity = next((c.key for c in current if c.key is not None), None)
    members: list[Candidate] = [c for c in current if c.approved]  # registered stay, whatever else holds
    source = next((c.source for c in members if c.source), "")
    taken = {m.field: m for m in members}
    failures: list[tuple[Candidate, str]] = []
    for c in sorted((c for c in candidates if c.approved and not c.registered), key=lambda c: c.order):
        why = _refusal(c, entity, taken, view) or _other_table(c, source, view)
        if why is not None:
            failures.append((c, why))
            continue
        entity = entity or c.key
        source = source or c.source
        members.append(c)
        taken[c.field] = c
    removed = tuple(c for c in current if not c.approved)
    members.sort(key=lambda c: c.order)
    fresh_failures = tuple((c, why) for c, why in failures if not c.failed_unregistered)
    previous = tuple(c.field for c in current)
    if not (members or removed):
        return Plan(view, version, False, entity, (), (), fresh_failures, previous_fields=previous)
    digest = definition_hash(view, entity, ttl_seconds, online, members)
    last = {c.registration.definition_hash for c in current if c.registration is not None}
    settled = all(c.materialized_version == version for c in current)
    if not removed and last == {digest} and settled:
        return Plan(view, version, False, entity, tuple(members), (), fresh_failures, digest, previous)
    return Plan(view, version + 1, True, entity, tuple(members), removed, fresh_failures, digest, previous)


def _refusal(c: Candidate, entity: KeyColumn | None, taken: dict[str, Candidate], view: str) -> str | None:
    if c.problem is not None:
        return c.problem
    if c.key is None:
        return f"feature {c.feature_id} has no key column to be served by"
    if entity is not None and c.key != entity:
        return (
            f"view {view} is keyed by {entity.name!r} ({entity.dtype}); this feature's job is keyed by "
            f"{c.key.name!r} ({c.key.dtype}): rerun the job with --entity {entity.name} to add its features here"
        )
    if c.field in RESERVED_FIELDS or c.field == (entity or c.key).name:
        return f"feature name {c.field!r} is reserved in a feature view (the key column or Feast's timestamp)"
    holder = taken.get(c.field)
    if holder is not None:
        return (
            f"view {view} already serves a feature named {c.field!r} (feature {holder.feature_id}); "
            f"deprecate that one and this one is registered in its place"
        )
    return None


def _other_table(c: Candidate, source: str, view: str) -> str | None:
    if not (source and c.source) or c.source == source:
        return None
    return (
        f"view {view} holds features of {source}, another table of the same name as this feature's "
        f"({c.source}); their rows would be mixed: rename one of the tables (a view is named after its table) "
        "or run this job in another project"
    )


def without(plan_candidates: Sequence[Candidate], problems: dict[str, str]) -> list[Candidate]:
    """The candidates with `problems` (feature id -> why) set: those can no longer join."""
    return [replace(c, problem=problems[c.feature_id]) if c.feature_id in problems else c for c in plan_candidates]
