"""The SQL projector: follows the event store and folds every envelope into the read models.

Each batch is one transaction that also moves the checkpoint; envelopes at or
below the stored checkpoint are skipped, so a crash, a retry or two projectors
racing never apply an event twice. `rebuild` drops the tables and replays from 0.

A stored event that a read model cannot take (a poison event: text PostgreSQL
refuses, a shape no applier expects) never wedges the projector: when a batch
fails, it is applied again one envelope at a time, each in a savepoint; an
envelope that still fails is recorded in `projection_errors`, logged as an
alert and skipped, and the rest of the batch commits with the checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from commands.store import EventStore
from domain.envelope import Envelope
from domain.validation import printable
from projections import agents, features, jobs, lineage, registrations, webhooks
from projections.database import Database, Tx, add_columns, lock_row

Apply = Callable[[Tx, Envelope], None]
READ_MODELS = (jobs, features, registrations, agents, lineage, webhooks)  # order matters: later ones read jobs rows
CHECKPOINT_DDL = (
    "CREATE TABLE IF NOT EXISTS {projection_checkpoints} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {projection_errors} (name TEXT NOT NULL, position BIGINT NOT NULL, "
    "event_type TEXT NOT NULL, error TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (name, position))",
)
NAME = "readmodels"
MAX_ERROR_TEXT = 2000
log = logging.getLogger("afep.projections")


class Projector:
    def __init__(self, db: Database, store: EventStore, *, name: str = NAME, batch_size: int = 500) -> None:
        self.db = db
        self.store = store
        self.name = name
        self.batch_size = batch_size
        self._appliers: Sequence[Apply] = [model.apply for model in READ_MODELS]

    def create_tables(self) -> None:
        self.db.run_script([*CHECKPOINT_DDL, *(ddl for model in READ_MODELS for ddl in model.DDL)])
        with self.db.transaction() as tx:  # a model's ADDED_COLUMNS: added to tables an older release made
            for model in READ_MODELS:
                for table, columns in getattr(model, "ADDED_COLUMNS", {}).items():
                    add_columns(tx, table, columns)

    def position(self) -> int:
        with self.db.transaction(write=False) as tx:
            return int(tx.scalar("SELECT position FROM {projection_checkpoints} WHERE name = ?", (self.name,)) or 0)

    def error_count(self) -> int:
        """How many stored events this projector skipped because a read model refused them."""
        with self.db.transaction(write=False) as tx:
            return int(tx.scalar("SELECT COUNT(*) FROM {projection_errors} WHERE name = ?", (self.name,)) or 0)

    def errors(self, limit: int = 100) -> list[dict[str, Any]]:
        """The skipped events, oldest first: position, event type, error text and when."""
        with self.db.transaction(write=False) as tx:
            return tx.all(
                "SELECT position, event_type, error, at FROM {projection_errors} WHERE name = ? "
                "ORDER BY position LIMIT ?",
                (self.name, limit),
            )

    def apply_batch(self, envelopes: Sequence[Envelope]) -> int:
        """Apply the envelopes above the checkpoint and move it, atomically. Returns how many were applied.

        A batch that fails is applied again envelope by envelope; an envelope that fails on its own is
        recorded in `projection_errors` and skipped. An error that also breaks the retry (the database
        is gone) propagates, and nothing moves.
        """
        try:
            return self._apply(envelopes, guarded=False)
        except Exception as error:  # noqa: BLE001 - any failure: the guarded retry tells poison from outage
            log.warning(
                "projecting a batch failed (%s: %s); retrying it one event at a time", type(error).__name__, error
            )
            return self._apply(envelopes, guarded=True)

    def _apply(self, envelopes: Sequence[Envelope], *, guarded: bool) -> int:
        skipped: list[tuple[Envelope, str]] = []
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO {projection_checkpoints} (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                (self.name,),
            )
            stored = int(
                tx.scalar(f"SELECT position FROM {{projection_checkpoints}} WHERE name = ?{lock_row(tx)}", (self.name,))
            )
            fresh = [e for e in envelopes if e.position > stored]
            for envelope in fresh:
                if not guarded:
                    self._apply_one(tx, envelope)
                    continue
                tx.execute("SAVEPOINT projector_envelope")
                try:
                    self._apply_one(tx, envelope)
                except Exception as error:  # noqa: BLE001 - whatever a read model raises, the event is skipped
                    tx.execute("ROLLBACK TO SAVEPOINT projector_envelope")
                    text = printable(f"{type(error).__name__}: {error}", MAX_ERROR_TEXT)
                    self._record_error(tx, envelope, text)
                    skipped.append((envelope, text))
                tx.execute("RELEASE SAVEPOINT projector_envelope")
            if fresh:
                tx.execute(
                    "UPDATE {projection_checkpoints} SET position = ? WHERE name = ?", (fresh[-1].position, self.name)
                )
        for envelope, text in skipped:
            log.error(
                "ALERT projection %s skipped event %s at log position %d: %s "
                "(recorded in projection_errors; fix the projection and run `afep projections rebuild`)",
                self.name,
                envelope.event_type,
                envelope.position,
                text,
            )
        return len(fresh)

    def _apply_one(self, tx: Tx, envelope: Envelope) -> None:
        for apply in self._appliers:
            apply(tx, envelope)

    def _record_error(self, tx: Tx, envelope: Envelope, text: str) -> None:
        tx.execute(
            "INSERT INTO {projection_errors} (name, position, event_type, error, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name, position) DO UPDATE SET error = excluded.error, at = excluded.at",
            (self.name, envelope.position, printable(envelope.event_type, 200), text, datetime.now(UTC).isoformat()),
        )

    def catch_up(self) -> int:
        """Apply everything the store holds beyond the checkpoint. Returns the new position."""
        position = self.position()
        while True:
            batch = self.store.read_all(after=position, limit=self.batch_size)
            if not batch:
                return position
            self.apply_batch(batch)
            position = batch[-1].position

    def rebuild(self) -> int:
        """Drop every read-model table and replay the whole log from position zero."""
        statements = [f"DROP TABLE IF EXISTS {{{t}}}" for model in READ_MODELS for t in model.TABLES]
        self.db.run_script(statements)
        self.create_tables()
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM {projection_checkpoints} WHERE name = ?", (self.name,))
            tx.execute("DELETE FROM {projection_errors} WHERE name = ?", (self.name,))
        return self.catch_up()


def read_model_tables() -> tuple[str, ...]:
    return tuple(t for model in READ_MODELS for t in model.TABLES)
