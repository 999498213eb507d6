"""Benchmark records: one JSON line per engine x dataset x seed in bench/results/<engine>.jsonl.

Files are append-only; the newest record for a (engine, dataset, seed) under the current
protocol wins. That is what makes baseline engines cacheable: OpenFE/DFS/raw numbers
for a seed do not change when AFEP changes.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

Key = tuple[str, str, int]  # (engine, dataset, seed)


def append(results_dir: Path, record: dict) -> None:
    """One locked, single write per record: several bench runs may share bench/results."""
    results_dir.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(results_dir / f"{record['engine']}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def latest(results_dir: Path, protocol: str) -> dict[Key, dict]:
    found: dict[Key, dict] = {}
    for path in sorted(results_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("protocol") != protocol:
                continue
            key = (rec["engine"], rec["dataset"], int(rec["seed"]))
            if key not in found or rec["created_at"] >= found[key]["created_at"]:
                found[key] = rec
    return found
