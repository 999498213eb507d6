"""Names in the feature store: repository folders, Feast projects, views and fields.

Pure and deterministic: the same tenant, project, table and feature give the same
names in every process, so a view is found again after a restart or on another worker.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SAFE_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RESERVED_FIELDS = frozenset({"event_timestamp", "created"})


def digest(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def slug(text: str, *, limit: int = 48) -> str:
    """`text` as lower-case letters, digits and underscores (never empty, never starting with a digit)."""
    cleaned = re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")[:limit].strip("_")
    if not cleaned:
        return "x"
    return cleaned if not cleaned[0].isdigit() else f"n{cleaned}"


def dir_name(value: str) -> str:
    """A path component for a tenant or project id: the id itself when it is plainly safe, else a slug
    with a hash (ids may hold `.`, `:` and `@`, and `..` is a valid id)."""
    return value if SAFE_DIR.fullmatch(value) else f"{slug(value, limit=40)}-{digest(value)}"


def repo_dir(root: Path, tenant: str, project: str) -> Path:
    """The Feast repository of one tenant's project: `<root>/<tenant>/<project>`."""
    return root / dir_name(tenant) / dir_name(project)


def feast_project(tenant: str, project: str) -> str:
    """The Feast project name: readable, and unique per (tenant, project) because an online store
    (Redis) may be shared by every repository."""
    return f"afep_{slug(tenant, limit=24)}_{slug(project, limit=24)}_{digest(tenant, project, length=6)}"


def table_name(source: str, table: str | None) -> str:
    """The source table a job read: its `--table`, else the file's name without extension."""
    if table:
        return table
    rest = source.split("://", 1)[1] if "://" in source else source
    name = rest.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or source
    return name.split(".", 1)[0] if "." in name and not name.startswith(".") else name


def view_name(table: str) -> str:
    """One Feast feature view per (project, source table)."""
    return f"{slug(table)}_features"


def field_name(feature_name: str) -> str:
    """A feature's column in its view: the feature's name with anything but letters, digits and `_`
    replaced (Feast references features as `view:field`)."""
    cleaned = re.sub(r"[^0-9A-Za-z_]+", "_", feature_name).strip("_")[:120] or "feature"
    return cleaned if not cleaned[0].isdigit() else f"f_{cleaned}"
