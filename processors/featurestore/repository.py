"""One tenant project's Feast repository: its files on disk and the Feast calls on it.

    <root>/<tenant>/<project>/
        feature_store.yaml      Feast's configuration (passwords as ${VARIABLES})
        features.py             the definitions, readable (definitions.py writes it)
        views/<view>.json       each view's definition as last applied: fields <-> feature ids
        data/<view>/v<n>.parquet  the values of each version (the file offline store)
        values/<feature>-<key>.parquet  each feature's values, computed once per code and dataset
        registry.db, online_store.db    Feast's registry and the embedded online store

Feast is imported by the methods that call it, never at module import.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from processors.featurestore import naming
from processors.featurestore.config import OFFLINE_SCHEMA, FeatureStoreConfig, repo_config, yaml_text
from processors.featurestore.definitions import ViewSpec, definitions_text, feast_objects
from processors.featurestore.values import TIMESTAMP


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Feast prints progress bars and warns about its own deprecations: keep both off our output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


class Repository:
    def __init__(self, config: FeatureStoreConfig, tenant: str, project: str) -> None:
        self.config = config
        self.tenant = tenant
        self.project = project
        self.path = naming.repo_dir(config.root, tenant, project)
        self._store: Any = None

    # ------------------------------------------------------------------ files

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer per repository at a time (two workers on one host may react to two approvals
        of one view at once); the registrations are recorded before the lock is released."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def values_dir(self) -> Path:
        return self.path / "values"

    def spec(self, view: str) -> ViewSpec | None:
        path = self.path / "views" / f"{view}.json"
        return ViewSpec.from_json(path.read_text()) if path.exists() else None

    def specs(self) -> list[ViewSpec]:
        folder = self.path / "views"
        return [ViewSpec.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    def location(self, view: str, version: int) -> str:
        """Where a version's values go: a Parquet file (relative to the repository) or a PostgreSQL table."""
        if self.config.offline == "postgres":
            project = naming.feast_project(self.tenant, self.project)
            return f"{OFFLINE_SCHEMA}.{view[:40]}_{naming.digest(project)}_v{version}"
        return f"data/{view}/v{version}.parquet"

    def write_values(self, spec: ViewSpec, frame: pl.DataFrame) -> None:
        if spec.offline == "postgres":
            self._write_table(spec.location, frame)
            return
        path = self.path / spec.location
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        frame.write_parquet(tmp)
        tmp.replace(path)

    def _write_table(self, location: str, frame: pl.DataFrame) -> None:
        import psycopg
        from psycopg import sql

        assert self.config.offline_url is not None
        schema, table = location.split(".", 1)
        types = {TIMESTAMP: "TIMESTAMPTZ"}
        columns = [
            sql.SQL("{} {}").format(
                sql.Identifier(name),
                sql.SQL(
                    types.get(name)
                    or ("BIGINT" if dtype.is_integer() else "TEXT" if dtype == pl.String else "DOUBLE PRECISION")
                ),
            )
            for name, dtype in frame.schema.items()
        ]
        target = sql.Identifier(schema, table)
        with psycopg.connect(self.config.offline_url, autocommit=False) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(columns)))
            names = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
            with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)

    def write_definitions(self, spec: ViewSpec | None, *, drop: str | None = None) -> None:
        """Record `spec` (or drop view `drop`), then rewrite features.py and feature_store.yaml."""
        folder = self.path / "views"
        folder.mkdir(parents=True, exist_ok=True)
        if spec is not None:
            _write(folder / f"{spec.view}.json", spec.to_json())
        if drop is not None:
            (folder / f"{drop}.json").unlink(missing_ok=True)
        _write(self.path / "features.py", definitions_text(self.specs()))
        _write(self.path / "feature_store.yaml", yaml_text(self.config, self.tenant, self.project))

    # ------------------------------------------------------------------ Feast

    def feature_store(self) -> Any:
        if self._store is None:
            from feast import FeatureStore

            with quiet():
                self._store = FeatureStore(
                    repo_path=str(self.path), config=repo_config(self.config, self.tenant, self.project)
                )
        return self._store

    def applied(self, view: str) -> tuple[int, str] | None:
        """(version, definition hash) of `view` as Feast's registry holds it; None when it holds none."""
        from feast.errors import FeatureViewNotFoundException

        if not (self.path / "registry.db").exists():
            return None
        try:
            with quiet():
                found = self.feature_store().get_feature_view(view, allow_registry_cache=False)
        except FeatureViewNotFoundException:
            return None
        tags = found.tags or {}
        return int(tags.get("afep_version", "0")), tags.get("definition_hash", "")

    def apply(self, spec: ViewSpec, *, purge: bool) -> None:
        """Register the view's version; with `purge`, first drop its online values (fields left it)."""
        store = self.feature_store()
        entity, view = feast_objects(spec)
        with quiet():
            if purge:
                self._purge(spec.view)
            store.apply([entity, view])

    def _purge(self, view: str) -> None:
        from feast.errors import FeatureViewNotFoundException

        store = self.feature_store()
        try:
            old = store.get_feature_view(view, allow_registry_cache=False)
        except FeatureViewNotFoundException:
            return
        store._get_provider().update_infra(  # the online store's table (SQLite) or hash fields (Redis) for it
            project=store.project,
            tables_to_delete=[old],
            tables_to_keep=[],
            entities_to_delete=[],
            entities_to_keep=[],
            partial=False,
        )

    def delete(self, view: str) -> None:
        """Remove the view from the registry and its values from the online store."""
        from feast.errors import FeatureViewNotFoundException

        store = self.feature_store()
        with quiet():
            try:
                old = store.get_feature_view(view, allow_registry_cache=False)
            except FeatureViewNotFoundException:
                return
            store.apply([], objects_to_delete=[old], partial=False)

    def materialize(self, spec: ViewSpec, at: datetime) -> None:
        """Load the version's values (all stamped `at`) into the online store."""
        with quiet():
            self.feature_store().materialize(
                start_date=at - timedelta(seconds=1), end_date=at + timedelta(seconds=1), feature_views=[spec.view]
            )

    def online(self, view: str, fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        """Each field's values for `rows`, in order, and under TIMESTAMP each row's event time (None:
        the store holds no row for the key). Feast leaves the view's TTL to the online store and
        neither SQLite nor Redis applies it: the readers do (online.expired_age)."""
        from feast.online_response import TIMESTAMP_POSTFIX

        with quiet():
            response = self.feature_store().get_online_features(
                features=[f"{view}:{f}" for f in fields], entity_rows=list(rows)
            )
            found = dict(response.to_dict(include_event_timestamps=True))
        stamps = {name: found.pop(name + TIMESTAMP_POSTFIX, None) for name in [*fields, *(rows[0] if rows else ())]}
        seconds = stamps[fields[0]] or []  # a view's fields of one key share its row's time
        found[TIMESTAMP] = [datetime.fromtimestamp(s, UTC) if s else None for s in seconds]
        return found


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
