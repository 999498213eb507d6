"""Processes that open a fresh PostgreSQL event store at the same instant (relay, workers and the
projector of a cluster starting together) all get a working store: the loser of the race to create
the tables looks again (an IntegrityError, or PostgreSQL's "tuple concurrently updated")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import fresh_postgres_database

REPO = Path(__file__).resolve().parents[2]
OPEN = """
import sys, time
from commands.recorder_store import PostgresEventStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together
store = PostgresEventStore(sys.argv[1])
print(store.last_position())
store.close()
"""


def test_six_processes_open_a_fresh_store_at_once() -> None:
    with fresh_postgres_database("afep_race") as url:
        at = str(time.time() + 3.0)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, url, at],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        outcomes = [p.communicate(timeout=120) for p in procs]
        failed = [(p.returncode, err[-800:]) for p, (_, err) in zip(procs, outcomes, strict=True) if p.returncode]
        assert not failed, failed
        assert [out.strip() for out, _ in outcomes] == ["0"] * 6
