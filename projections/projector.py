"""The SQL projector: follows the event store and folds every envelope into the read models.

Each batch is one transaction that also moves the checkpoint; envelopes at or
below the stored checkpoint are skipped, so a crash, a retry or two projectors
racing never apply an event twice. `rebuild` drops the tables and replays from 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from commands.store import EventStore
from domain.envelope import Envelope
from projections import agents, features, jobs, lineage
from projections.database import Database, Tx, lock_row

Apply = Callable[[Tx, Envelope], None]
READ_MODELS = (jobs, features, agents, lineage)  # order matters: later models look up jobs rows
CHECKPOINT_DDL = (
    "CREATE TABLE IF NOT EXISTS {projection_checkpoints} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
)
NAME = "readmodels"


class Projector:
    def __init__(self, db: Database, store: EventStore, *, name: str = NAME, batch_size: int = 500) -> None:
        self.db = db
        self.store = store
        self.name = name
        self.batch_size = batch_size
        self._appliers: Sequence[Apply] = [model.apply for model in READ_MODELS]

    def create_tables(self) -> None:
        self.db.run_script([*CHECKPOINT_DDL, *(ddl for model in READ_MODELS for ddl in model.DDL)])

    def position(self) -> int:
        with self.db.transaction(write=False) as tx:
            return int(tx.scalar("SELECT position FROM {projection_checkpoints} WHERE name = ?", (self.name,)) or 0)

    def apply_batch(self, envelopes: Sequence[Envelope]) -> int:
        """Apply the envelopes above the checkpoint and move it, atomically. Returns how many were applied."""
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
                for apply in self._appliers:
                    apply(tx, envelope)
            if fresh:
                tx.execute(
                    "UPDATE {projection_checkpoints} SET position = ? WHERE name = ?", (fresh[-1].position, self.name)
                )
        return len(fresh)

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
        return self.catch_up()


def read_model_tables() -> tuple[str, ...]:
    return tuple(t for model in READ_MODELS for t in model.TABLES)
