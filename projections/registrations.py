"""Feature-store registrations: per feature, its Feast view, version, entity, TTL and online state.

Fed by FeatureRegistered and FeatureMaterialized; shown as the `feast_registration` block
of a feature (the seed's shape: feature_view, entity, ttl, online_enabled,
materialization_status) by projections/features.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain import feature
from domain.envelope import Envelope
from projections.database import Row, Tx
from projections.jobs import iso

TABLES = ("feature_registrations",)
DDL = (
    """CREATE TABLE IF NOT EXISTS {feature_registrations} (
        feature_id TEXT PRIMARY KEY, feature_view TEXT NOT NULL, version INTEGER NOT NULL, entity TEXT,
        ttl_seconds BIGINT, online BOOLEAN NOT NULL, status TEXT NOT NULL, definition_hash TEXT,
        registered_at TEXT, materialized_version INTEGER, materialization_status TEXT, materialized_rows BIGINT,
        materialization_detail TEXT, materialized_at TEXT, position BIGINT NOT NULL)""",
)


def apply(tx: Tx, envelope: Envelope) -> None:
    e = envelope.event
    at = iso(envelope.occurred_at)
    if isinstance(e, feature.FeatureRegistered):
        tx.execute(
            """INSERT INTO {feature_registrations} (feature_id, feature_view, version, entity, ttl_seconds, online,
                status, definition_hash, registered_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (feature_id) DO UPDATE SET feature_view = excluded.feature_view, version = excluded.version,
                entity = excluded.entity, ttl_seconds = excluded.ttl_seconds, online = excluded.online,
                status = excluded.status, definition_hash = excluded.definition_hash,
                registered_at = excluded.registered_at, position = excluded.position""",
            (
                e.feature_id,
                e.feature_view,
                e.version,
                e.entity,
                e.ttl_seconds,
                e.online,
                e.status,
                e.definition_hash,
                at,
                envelope.position,
            ),
        )
    elif isinstance(e, feature.FeatureMaterialized):
        # v0: the feature could not be registered at all; the row says so (status 'unregistered')
        tx.execute(
            """INSERT INTO {feature_registrations} (feature_id, feature_view, version, online, status,
                materialized_version, materialization_status, materialized_rows, materialization_detail,
                materialized_at, position) VALUES (?, ?, 0, ?, 'unregistered', ?, ?, ?, ?, ?, ?)
            ON CONFLICT (feature_id) DO UPDATE SET materialized_version = excluded.materialized_version,
                materialization_status = excluded.materialization_status,
                materialized_rows = excluded.materialized_rows,
                materialization_detail = excluded.materialization_detail,
                materialized_at = excluded.materialized_at, position = excluded.position""",
            (e.feature_id, e.feature_view, e.online, e.version, e.status, e.rows, e.detail, at, envelope.position),
        )


# ----------------------------------------------------------------- queries


def ttl_text(seconds: int | None) -> str | None:
    """7d, 12h, 90m, 45s; "0" for no expiry (Feast: a zero TTL never expires)."""
    if seconds is None:
        return None
    if seconds == 0:
        return "0"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def block(row: Row) -> dict[str, Any]:
    """The seed's `feast_registration` block, with the version and the materialization's details."""
    status = row["status"]
    served = status == "registered" and row["materialized_version"] == row["version"]
    if status == "removed":
        materialization = "REMOVED"
    elif status == "registered" and not served:
        materialization = "PENDING"
    else:
        materialization = (row["materialization_status"] or "pending").upper()
    return {
        "feature_view": row["feature_view"],
        "version": row["version"],
        "entity": row["entity"],
        "ttl": ttl_text(row["ttl_seconds"]),
        "ttl_seconds": row["ttl_seconds"],
        "online_enabled": bool(row["online"]) and served and row["materialization_status"] == "complete",
        "status": status,
        "definition_hash": row["definition_hash"],
        "registered_at": row["registered_at"],
        "materialization_status": materialization,
        "materialized_version": row["materialized_version"],
        "materialized_rows": row["materialized_rows"],
        "materialization_detail": row["materialization_detail"],
        "materialized_at": row["materialized_at"],
    }


def blocks(tx: Tx, feature_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """feature id -> its `feast_registration` block, for those of `feature_ids` the store has seen."""
    if not feature_ids:
        return {}
    marks = ", ".join("?" for _ in feature_ids)
    rows = tx.all(f"SELECT * FROM {{feature_registrations}} WHERE feature_id IN ({marks})", tuple(feature_ids))
    return {row["feature_id"]: block(row) for row in rows}
