"""Online reads of one feature for some entity keys (`afep features serve-online`, the API).

A value older than its view's TTL is not served: it reads as missing, marked expired with its
age. Feast leaves the TTL to the online store, and neither SQLite nor Redis applies it, so this
reader does (for both stores: every read goes through Repository.online)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import load_feature
from domain.feature import Feature
from processors.featurestore.catalog import owned_job
from processors.featurestore.config import FeatureStoreConfig
from processors.featurestore.naming import field_name
from processors.featurestore.repository import Repository
from processors.featurestore.values import TIMESTAMP
from projections.registrations import ttl_text

MAX_KEYS = 100


class NotServed(Exception):
    """The feature has no online values (yet, or any more); the message says why and what to do."""


class BadKey(ValueError):
    """An entity key that is not of the entity's type."""


class StoreUnavailable(Exception):
    """The online store did not answer (Redis down, a damaged repository): retry later."""


@dataclass(frozen=True)
class OnlineRead:
    feature_id: str
    feature_view: str
    version: int
    entity: str
    field: str
    ttl_seconds: int  # the view's; 0: its values never expire
    # [{"entity": key, "value": float | None}] in the order asked; a value past the TTL is None
    # and its entry also says {"expired": True, "age_seconds": n}
    values: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature_id": self.feature_id,
            "feature_view": self.feature_view,
            "version": self.version,
            "entity": self.entity,
            "feature": self.field,
            "ttl_seconds": self.ttl_seconds,
            "values": [{**v, "value": _json_number(v["value"])} for v in self.values],
        }

    def expired_note(self) -> str | None:
        """One line on the keys whose value expired, and what to do; None when none did."""
        expired = [v for v in self.values if v.get("expired")]
        if not expired:
            return None
        keys = ", ".join(str(v["entity"]) for v in expired[:10]) + (" …" if len(expired) > 10 else "")
        age = age_text(max(v["age_seconds"] for v in expired))
        return (
            f"— value expired for {keys}: materialized {age} ago, past view {self.feature_view}'s TTL of "
            f"{ttl_text(self.ttl_seconds)}; `afep features sync {self.feature_id}` materializes it again"
        )


def served(feature: Feature) -> None:
    """Raise NotServed unless `feature` has online values now."""
    fid, reg, mat = feature.feature_id, feature.registration, feature.materialization
    if reg is None:
        if mat is not None and mat.status == "failed":
            raise NotServed(f"feature {fid} could not be registered in the feature store: {mat.detail}")
        if feature.status == "approved":
            raise NotServed(
                f"feature {fid} is approved but not registered yet: try again in a moment; if no server or "
                f"worker runs the feature-store agent (an approval that was interrupted), `afep features sync {fid}`"
            )
        if feature.status == "selected":
            raise NotServed(f"feature {fid} is selected; approve it first (`afep features approve {fid}`)")
        raise NotServed(f"feature {fid} is {feature.status} and was never approved, so it is never served")
    if reg.status != "registered":
        raise NotServed(f"feature {fid} was deprecated and removed from view {reg.feature_view} at v{reg.version}")
    if mat is None or mat.version != reg.version:
        raise NotServed(f"view {reg.feature_view} v{reg.version} is not materialized yet; try again in a moment")
    if mat.status != "complete":
        raise NotServed(f"view {reg.feature_view} v{reg.version} is registered but not served: {mat.detail}")


def read_online(
    store: EventStore, config: FeatureStoreConfig, feature_id: str, keys: Sequence[str], *, now: datetime | None = None
) -> OnlineRead:
    """The feature's online values for `keys` (as typed at the command line or in a query string),
    those older than the view's TTL at `now` (default: the current time) left out as expired."""
    if not keys:
        raise BadKey("give at least one entity key")
    if len(keys) > MAX_KEYS:
        raise BadKey(f"at most {MAX_KEYS} entity keys per read, not {len(keys)}")
    feature = load_feature(store, feature_id)
    if feature is None:
        raise NotServed(f"no feature {feature_id}")
    served(feature)
    reg = feature.registration
    owner = owned_job(store, feature.job_id)
    assert reg is not None and owner is not None
    repo = Repository(config, owner.tenant, owner.project)
    spec = repo.spec(reg.feature_view)
    if spec is None or spec.version != reg.version:
        raise NotServed(
            f"view {reg.feature_view} v{reg.version} is not in this server's feature repository "
            "(a data dir restored without it?); approving any feature of the project rebuilds it"
        )
    field = spec.field_for(feature_id) or field_name(feature.proposal.name)
    typed = [_typed(k, spec.entity.name, spec.entity.dtype) for k in keys]
    try:
        result = repo.online(spec.view, [field], [{spec.entity.name: k} for k in typed])
    except Exception as error:  # noqa: BLE001 - whatever Feast or its store raise, the caller gets one line
        text = " ".join(f"{type(error).__name__}: {error}".split()).replace(str(repo.path), "<feature repo>")
        raise StoreUnavailable(f"the online store did not answer for view {spec.view}: {text[:500]}") from None
    at = now or datetime.now(UTC)
    values = [
        _entry(k, v, expired_age(stamp, spec.ttl_seconds, at))
        for k, v, stamp in zip(typed, result[field], result[TIMESTAMP], strict=True)
    ]
    return OnlineRead(feature_id, spec.view, spec.version, spec.entity.name, field, spec.ttl_seconds, values)


def expired_age(stamp: datetime | None, ttl_seconds: int, now: datetime) -> int | None:
    """The age in seconds of a value stamped `stamp` when it is past the TTL (as Feast's offline reads
    rule: older than the TTL); None while it is served, when there is no value, or for a TTL of 0."""
    if stamp is None or ttl_seconds <= 0:
        return None
    age = int((now - stamp).total_seconds())
    return age if age > ttl_seconds else None


def age_text(seconds: int) -> str:
    """8d 3h, 5h 2m, 42m, 30s: an age to read, not to compute with."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{seconds}s"


def _entry(key: int | str, value: Any, expired_after: int | None) -> dict[str, Any]:
    if expired_after is None:
        return {"entity": key, "value": _number(value)}
    return {"entity": key, "value": None, "expired": True, "age_seconds": expired_after}


def _typed(key: str, entity: str, dtype: str) -> int | str:
    if dtype == "string":
        return key
    text = key.strip()
    # int() also reads `1_000` and non-ASCII digits: a key is plain ASCII digits, as the table holds it
    if re.fullmatch(r"-?[0-9]{1,19}", text) is None:
        raise BadKey(f"entity {entity} holds integers; {key[:100]!r} is not one")
    return int(text)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _json_number(value: float | None) -> float | None:
    """JSON has no infinities or NaN: those read as null over the API."""
    return value if value is not None and math.isfinite(value) else None
