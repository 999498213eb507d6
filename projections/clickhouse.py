"""ClickHouse: the analytics copy of the event log (seed §4.2) and the append-only audit trail (§6.4).

Embedded through chdb (`path`) or a server (`url`), with the same client code.

Idempotence without transactions: `events` is a ReplacingMergeTree whose sorting
key ends in the global log position, so a row written twice (a crash between the
insert and the checkpoint) collapses into one, and reads use FINAL to see exactly
one row per position before merges. Each batch is also inserted with an
`insert_deduplication_token` of its position range, so a retried batch is dropped
by the engine itself. The checkpoint lives in ClickHouse too and only moves after
the insert succeeded; the projector resumes from it.

The same projection derives the audit rows of what people did at the command line
(`projections/audit.py`; the gateway audits API requests itself). Such a row's id is its
event's id: a replayed event finds its row and writes nothing, and `search` keeps one row
per id for two writers racing on the same batch. `ClickHouseAuditLog.drain` copies in what
`afep keys` and `afep tenants` did, which changes the key directory, not the log.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from commands.store import EventStore
from domain import job
from domain.envelope import Envelope
from projections import directory
from projections.audit import user_action
from projections.database import Database
from schemas.codec import event_to_dict

log = logging.getLogger("afep.projections")
T = TypeVar("T")

EVENTS_DDL = """CREATE TABLE IF NOT EXISTS events (
    event_id String, position UInt64, tenant_id LowCardinality(String), project_id String, job_id String,
    stream_id String, version UInt32, event_type LowCardinality(String), event_subtype LowCardinality(String),
    agent_type LowCardinality(String), actor String, correlation_id String, causation_id Nullable(String),
    payload String, timestamp DateTime64(3, 'UTC'), date Date MATERIALIZED toDate(timestamp)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(date)
ORDER BY (tenant_id, project_id, job_id, timestamp, position)
TTL date + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000"""
AUDIT_DDL = """CREATE TABLE IF NOT EXISTS audit (
    id UUID, time DateTime64(3, 'UTC'), actor String, tenant_id LowCardinality(String), role LowCardinality(String),
    action LowCardinality(String), resource_type LowCardinality(String), resource_id String,
    previous_state String, new_state String, source_ip String, user_agent String, status_code UInt16
) ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant_id, time, id)
TTL toDateTime(time) + INTERVAL 7 YEAR"""
CHECKPOINT_DDL = """CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name String, position UInt64, updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(position) ORDER BY name"""
EVENT_COLUMNS = (
    "event_id",
    "position",
    "tenant_id",
    "project_id",
    "job_id",
    "stream_id",
    "version",
    "event_type",
    "event_subtype",
    "agent_type",
    "actor",
    "correlation_id",
    "causation_id",
    "payload",
    "timestamp",
)
AUDIT_COLUMNS = (
    "id",
    "time",
    "actor",
    "tenant_id",
    "role",
    "action",
    "resource_type",
    "resource_id",
    "previous_state",
    "new_state",
    "source_ip",
    "user_agent",
    "status_code",
)


class ClickHouse:
    """One client per process (chdb allows one data folder per process); calls are serialised."""

    def __init__(self, *, url: str | None, path: Path) -> None:
        import clickhouse_connect

        if url:
            self._client: Any = clickhouse_connect.get_client(dsn=url)
        else:
            path.mkdir(parents=True, exist_ok=True)
            self._client = clickhouse_connect.get_client(interface="chdb", path=str(path))
        self._lock = threading.Lock()
        for ddl in (EVENTS_DDL, AUDIT_DDL, CHECKPOINT_DDL):
            self.command(ddl)

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._lock:
            return self._client.command(sql, parameters=parameters)

    def rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            result = self._client.query(sql, parameters=parameters)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def insert(self, table: str, rows: list[Sequence[Any]], columns: Sequence[str], token: str | None = None) -> None:
        settings = {"insert_deduplication_token": token} if token else None
        with self._lock:
            self._client.insert(table, rows, column_names=list(columns), settings=settings)

    def close(self) -> None:
        with self._lock:
            self._client.close()


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


# DateTime64 holds 1900-01-01 .. 2299-12-31; ClickHouse rejects a query parameter outside it.
DATETIME64_MIN = datetime(1900, 1, 1, tzinfo=UTC)
DATETIME64_MAX = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


def _bound(at: datetime) -> datetime:
    """A caller's time bound clamped into DateTime64's range: every stored time lies inside, so
    `time >= since` and `time < until` select the same rows as with the unclamped bound."""
    try:
        moment = _utc(at)
    except OverflowError:  # year 1 or 9999 shifted by its UTC offset past what datetime holds
        return DATETIME64_MIN if at.year < DATETIME64_MIN.year else DATETIME64_MAX
    return min(max(moment, DATETIME64_MIN), DATETIME64_MAX)


class ClickHouseEventsProjection:
    """Copies the log into `events`, checkpointed, at-least-once written and exactly-once read."""

    name = "clickhouse_events"

    def __init__(self, clickhouse: ClickHouse, store: EventStore, *, batch_size: int = 1000) -> None:
        self.ch = clickhouse
        self.store = store
        self.batch_size = batch_size
        self.audit = ClickHouseAuditLog(clickhouse)
        self._owners: dict[str, tuple[str, str]] | None = None

    def position(self) -> int:
        rows = self.ch.rows(
            "SELECT max(position) AS p FROM projection_checkpoints FINAL WHERE name = {n:String}", {"n": self.name}
        )
        return int(rows[0]["p"] or 0) if rows else 0

    def _owner(self, envelope: Envelope) -> tuple[str, str]:
        """(tenant, project) of the job an event belongs to: the job's, not whatever the writer put."""
        if self._owners is None:
            rows = self.ch.rows(
                "SELECT job_id, any(tenant_id) AS t, any(project_id) AS p FROM events "
                "WHERE event_type = 'JobRequested' GROUP BY job_id"
            )
            self._owners = {r["job_id"]: (r["t"], r["p"]) for r in rows}
        e = envelope.event
        if isinstance(e, job.JobRequested):
            self._owners[e.job_id] = (envelope.tenant_id, e.project_id)
        return self._owners.get(getattr(e, "job_id", ""), (envelope.tenant_id, ""))

    def _row(self, envelope: Envelope) -> list[Any]:
        import orjson

        e = envelope.event
        tenant, project = self._owner(envelope)
        subtype = getattr(e, "kind", None) or getattr(e, "stage", None) or ""
        agent = getattr(e, "agent", None) or (envelope.actor if envelope.causation_id else "")
        return [
            envelope.event_id,
            envelope.position,
            tenant,
            project,
            getattr(e, "job_id", ""),
            envelope.stream_id,
            envelope.version,
            envelope.event_type,
            subtype,
            agent,
            envelope.actor,
            envelope.correlation_id,
            envelope.causation_id,
            orjson.dumps(event_to_dict(e)).decode(),
            _utc(envelope.occurred_at),
        ]

    def _audit_entry(self, envelope: Envelope) -> tuple[uuid.UUID, AuditRecord] | None:
        """The audit row of a person's action at the command line, keyed by its event's id."""
        done = user_action(envelope)
        if done is None:
            return None
        entry = AuditRecord(
            actor=envelope.actor,
            tenant_id=self._owner(envelope)[0],
            role="",  # a local user holds no API role
            action=done.action,
            resource_type=done.resource_type,
            resource_id=done.resource_id,
            previous_state="",
            new_state=done.new_state,
            source_ip="",
            user_agent="",
            status_code=0,  # no HTTP request
            time=envelope.occurred_at,
        )
        return uuid.UUID(envelope.event_id), entry

    def _row_or_skip(self, envelope: Envelope) -> list[Any] | None:
        return self._or_skip(self._row, envelope)

    def _or_skip(self, build: Callable[[Envelope], T | None], envelope: Envelope) -> T | None:
        """What `build` makes of `envelope`, or None (logged as an alert) when a stored event cannot be
        copied: one poison event must not stop the copy of the log for every tenant."""
        try:
            return build(envelope)
        except Exception as error:  # noqa: BLE001 - whatever fails on one event, the copy goes on
            log.error(
                "ALERT projection %s skipped event %s at log position %d: %s: %s",
                self.name,
                envelope.event_type,
                envelope.position,
                type(error).__name__,
                error,
            )
            return None

    def catch_up(self) -> int:
        position = self.position()
        while True:
            batch = [e for e in self.store.read_all(after=position, limit=self.batch_size) if e.position > position]
            if not batch:
                return position
            token = f"{self.name}:{batch[0].position}-{batch[-1].position}"
            rows: list[Sequence[Any]] = [row for row in map(self._row_or_skip, batch) if row is not None]
            if rows:
                self.ch.insert("events", rows, EVENT_COLUMNS, token=token)
            if audited := [entry for entry in (self._or_skip(self._audit_entry, e) for e in batch) if entry]:
                self.audit.record_once(dict(audited))
            position = batch[-1].position
            self.ch.insert("projection_checkpoints", [[self.name, position]], ("name", "position"))

    def rebuild(self) -> int:
        self.ch.command("TRUNCATE TABLE IF EXISTS events")
        self.ch.command("ALTER TABLE projection_checkpoints DELETE WHERE name = {n:String}", {"n": self.name})
        self._owners = None
        return self.catch_up()


def job_events(
    clickhouse: ClickHouse, tenant_id: str, job_id: str, *, event_type: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """A job's events from ClickHouse, one row per log position, in log order."""
    where = "tenant_id = {t:String} AND job_id = {j:String}"
    if event_type:
        where += " AND event_type = {e:String}"
    return clickhouse.rows(
        f"SELECT * EXCEPT date FROM events FINAL WHERE {where} ORDER BY position LIMIT {int(limit)}",
        {"t": tenant_id, "j": job_id, "e": event_type or ""},
    )


# -------------------------------------------------------------------- audit


@dataclass(frozen=True)
class AuditRecord:
    actor: str
    tenant_id: str
    role: str
    action: str
    resource_type: str
    resource_id: str
    previous_state: str
    new_state: str
    source_ip: str
    user_agent: str
    status_code: int
    time: datetime


class ClickHouseAuditLog:
    """Append-only: `record` inserts, `search` reads. There is deliberately no update or delete."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.ch = clickhouse

    def record(self, entry: AuditRecord) -> str:
        audit_id = uuid.uuid4()
        self.ch.insert("audit", [_audit_row(audit_id, entry)], AUDIT_COLUMNS)
        return str(audit_id)

    def record_once(self, entries: Mapping[uuid.UUID, AuditRecord]) -> int:
        """Insert each entry under its id unless a row with that id is there already (a replayed event's).
        Returns how many were inserted."""
        times = [_bound(entry.time) for entry in entries.values()]
        present = self.ch.rows(
            "SELECT DISTINCT toString(id) AS id FROM audit WHERE time BETWEEN {lo:DateTime64(3, 'UTC')} "
            "AND {hi:DateTime64(3, 'UTC')} AND toString(id) IN {ids:Array(String)}",
            {"lo": min(times).replace(microsecond=0), "hi": max(times), "ids": [str(i) for i in entries]},
        )
        seen = {row["id"] for row in present}
        fresh: list[Sequence[Any]] = [
            _audit_row(audit_id, entry) for audit_id, entry in entries.items() if str(audit_id) not in seen
        ]
        if fresh:
            self.ch.insert("audit", fresh, AUDIT_COLUMNS)
        return len(fresh)

    def drain(self, db: Database, limit: int = 1000) -> int:
        """Copy up to `limit` rows of the directory's audit outbox in, then delete them; returns how many.
        Each keeps its outbox id, so rows a crash left in the outbox after their copy are not copied twice."""
        rows = directory.audit_outbox(db, limit)
        if rows:
            entries = {
                uuid.UUID(row["id"]): AuditRecord(
                    actor=row["actor"],
                    tenant_id=row["tenant_id"],
                    role="",  # a local user holds no API role
                    action=row["action"],
                    resource_type=row["resource_type"],
                    resource_id=row["resource_id"],
                    previous_state=row["previous_state"],
                    new_state=row["new_state"],
                    source_ip="",
                    user_agent="",
                    status_code=0,  # no HTTP request
                    time=datetime.fromisoformat(row["at"]),
                )
                for row in rows
            }
            self.record_once(entries)
            directory.forget_audit(db, [row["id"] for row in rows])
        return len(rows)

    def search(
        self,
        tenant_id: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the (time, id) of the last row of the previous page."""
        where, params = ["tenant_id = {tenant:String}"], {"tenant": tenant_id}
        for column, value in (
            ("actor", actor),
            ("action", action),
            ("resource_type", resource_type),
            ("resource_id", resource_id),
        ):
            if value:
                where.append(f"{column} = {{{column}:String}}")
                params[column] = value
        if since:
            where.append("time >= {since:DateTime64(3, 'UTC')}")
            params["since"] = _bound(since)  # type: ignore[assignment]
        if until:
            where.append("time < {until:DateTime64(3, 'UTC')}")
            params["until"] = _bound(until)  # type: ignore[assignment]
        if before:
            where.append("(time, toString(id)) < ({bt:DateTime64(3, 'UTC')}, {bid:String})")
            params["bt"], params["bid"] = _bound(before[0]), before[1]  # type: ignore[assignment]
        rows = self.ch.rows(
            f"SELECT * FROM audit WHERE {' AND '.join(where)} ORDER BY time DESC, toString(id) DESC "
            f"LIMIT 1 BY id LIMIT {int(limit)}",  # one row per id: two projections may race on a derived one
            params,
        )
        for row in rows:
            row["id"] = str(row["id"])
            row["time"] = _utc(row["time"])  # chdb hands back naive datetimes: they are UTC
        return rows


def _audit_row(audit_id: uuid.UUID, entry: AuditRecord) -> list[Any]:
    return [
        audit_id,
        _utc(entry.time),
        entry.actor,
        entry.tenant_id,
        entry.role,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.previous_state,
        entry.new_state,
        entry.source_ip,
        entry.user_agent,
        entry.status_code,
    ]
