"""What the API shows of server-side paths: a job's snapshot by its opaque file name, never its folder."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

SERVER_PATH_KEYS = frozenset({"dataset_path", "snapshot"})


def public(value: Any) -> Any:
    """`value` (rows, events, traces, nested) with server paths cut to their file name."""
    if isinstance(value, dict):
        return {
            k: (PurePath(v).name if k in SERVER_PATH_KEYS and isinstance(v, str) else public(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [public(v) for v in value]
    return value
