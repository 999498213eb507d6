"""What the API shows of server-side paths: a file by its opaque name, never its folder.

`public(value, data_dir)` is applied to everything a tenant reads of jobs and their
activity (rows, history, traces, executions, SSE messages): a server path under a
known key (`dataset_path`, `snapshot`, `artifact`, `path`, …) is cut to its file
name, fields that hold JSON text (`data_json`, `profile_json`, …) are cleaned
inside, and any other text has the data dir's absolute path replaced by
`<data dir>` (`redact_paths`, also used for explorer errors). A password in a URI
(`postgresql://user:secret@host/db`, as a job requested from the CLI may hold) is shown
as `***`: the API refuses such sources, but the log may hold older or local ones.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePath
from typing import Any

SERVER_PATH_KEYS = frozenset({"dataset_path", "snapshot", "artifact", "artifact_path", "path", "snapshot_path"})
DATA_DIR_SHOWN = "<data dir>"
_URI_PASSWORD = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*):[^\s/@]*@")


def _data_dir_forms(data_dir: Path | None) -> list[str]:
    """The spellings of the data dir's absolute path, longest first (so a longer one is replaced whole)."""
    if data_dir is None:
        return []
    forms = {str(data_dir.absolute()), str(data_dir.resolve()), os.path.realpath(data_dir)}
    if data_dir.is_absolute():
        forms.add(str(data_dir))
    return sorted((f.rstrip("/") for f in forms if len(f.rstrip("/")) > 1), key=len, reverse=True)


def redact_paths(text: str, data_dir: Path | None) -> str:
    """`text` with the data dir's absolute path (and its real path) replaced by `<data dir>`."""
    for form in _data_dir_forms(data_dir):
        text = text.replace(form, DATA_DIR_SHOWN)
    return text


def _is_server_path(value: str, forms: list[str]) -> bool:
    return any(value == form or value.startswith(form + "/") for form in forms)


def _clean_text(key: str | None, value: str, data_dir: Path | None, forms: list[str]) -> str:
    if key is not None and ((key in SERVER_PATH_KEYS and os.path.isabs(value)) or _is_server_path(value, forms)):
        return PurePath(value).name
    if key is not None and key.endswith("_json") and value[:1] in ("{", "["):
        try:
            decoded = json.loads(value)
        except ValueError:
            return redact_paths(value, data_dir)
        return json.dumps(_clean(decoded, data_dir, forms), default=str)
    if "://" in value:
        value = _URI_PASSWORD.sub(r"\1:***@", value)
    return redact_paths(value, data_dir)


def _clean(value: Any, data_dir: Path | None, forms: list[str], key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v, data_dir, forms, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, data_dir, forms, key) for v in value]
    if isinstance(value, str):
        return _clean_text(key, value, data_dir, forms)
    return value


def public(value: Any, data_dir: Path | None = None) -> Any:
    """`value` (rows, events, traces, nested, JSON text fields included) without server paths."""
    return _clean(value, data_dir, _data_dir_forms(data_dir))
