"""MLflow as the experiment tracker: writes a `JobPlan` as an experiment, a parent run and child runs.

Embedded, the tracking store is SQLite under the data dir and artifacts are files
next to it; any other tracking URI (an MLflow server) is used as it is, with its
own artifact store. `mlflow` is imported here only, when a tracker is opened.

Delivery is at-least-once, so `log_job` is idempotent: runs are found by their
AFEP tags (`afep.kind` with `afep.job_id` or `afep.feature_id`) before any is
created, and a run is terminated only after everything was logged to it, the
parent last. A redelivered JobCompleted finds the finished runs and logs
nothing; one interrupted mid-way fills in the runs that are not finished yet
(parameters are logged with the same values, metrics once more).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processors.tracking.charts import ImportanceChart
from processors.tracking.specs import CHART_FILE, FEATURES_FILE, JobPlan, RunSpec

log = logging.getLogger(__name__)
SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc")
BATCH = 100  # MLflow takes at most 100 params and 100 tags (and 1000 metrics) per log_batch
_TAG_VALUE = re.compile(r"[A-Za-z0-9._:@/-]+")


class TrackingError(RuntimeError):
    """The tracker cannot take the job's runs; the message says what to do."""


@dataclass(frozen=True)
class Tracked:
    experiment_id: str
    run_id: str
    feature_runs: dict[str, str]  # feature id -> child run id


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` tracking URI (None for anything else, in-memory included)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def prepare_sqlite(uri: str) -> None:
    """Create a missing SQLite tracking store quickly, atomically.

    MLflow builds a new store by running its schema migrations, about a thousand
    statements that SQLite syncs to disk one by one (5-7 s here). They run here on a
    temporary file without syncs, which is then synced once and linked into place; a
    store someone else created meanwhile wins, and a crash leaves no half-made store.
    The store is left in WAL mode, which also lets several processes log at once.
    On an MLflow without that helper, MLflow creates the store itself (slowly).
    """
    path = sqlite_path(uri)
    if path is None or path.exists():
        return
    try:
        from mlflow.store.db.utils import _initialize_tables
        from sqlalchemy import create_engine, event
    except ImportError:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        engine = create_engine(f"sqlite:///{tmp}")

        @event.listens_for(engine, "connect")
        def _unsynced(connection: Any, record: Any) -> None:
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("PRAGMA journal_mode=MEMORY")

        try:
            _initialize_tables(engine)  # type: ignore[no-untyped-call]
            with engine.connect() as connection:  # kept by the file: one sync per commit instead of three
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        finally:
            engine.dispose()
        descriptor = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        with contextlib.suppress(FileExistsError):  # another process made the store meanwhile: it wins
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class MlflowTracker:
    """The experiment tracker at `uri`; `artifact_root` holds artifacts unless the URI is a server."""

    def __init__(self, uri: str, artifact_root: Path | None = None) -> None:
        # MLflow would otherwise report usage to its makers from every process that tracks a job
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # its INFO lines would hit the CLI
        prepare_sqlite(uri)
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.artifact_root = None if uri.split(":", 1)[0].lower() in SERVER_SCHEMES else artifact_root
        self.client = MlflowClient(tracking_uri=uri)

    # ------------------------------------------------------------ the job

    def log_job(self, plan: JobPlan, records: list[dict[str, Any]]) -> Tracked:
        """Log `plan`; `records` is the job's features.json, which gets the child run ids."""
        experiment_id = self.experiment(plan)
        parent, parent_done = self._run(experiment_id, plan.job)
        existing = {
            run.data.tags.get("afep.feature_id", ""): run
            for run in self._search(experiment_id, f"tags.`mlflow.parentRunId` = '{_quoted(parent)}'")
        }
        feature_runs: dict[str, str] = {}
        chart: list[ImportanceChart] = []  # drawn once, when the first run needs it
        with tempfile.TemporaryDirectory(prefix="afep-mlflow-") as scratch:
            for feature_id, spec in plan.features:
                run = existing.get(feature_id)
                if run is None:
                    run_id = self._create(experiment_id, spec, parent=parent)
                elif run.info.status == "FINISHED":
                    feature_runs[feature_id] = run.info.run_id
                    continue
                else:
                    run_id = run.info.run_id
                self._fill(run_id, spec, plan, chart, Path(scratch) / feature_id)
                feature_runs[feature_id] = run_id
            if not parent_done:
                ids = {r["feature_id"]: r for r in records}
                for feature_id, run_id in feature_runs.items():
                    if feature_id in ids:
                        ids[feature_id]["mlflow_run_id"] = run_id
                texts = {FEATURES_FILE: json.dumps(records, indent=2, default=str) + "\n"}
                self._fill(parent, plan.job, plan, chart, Path(scratch) / "job", texts)
        return Tracked(experiment_id, parent, feature_runs)

    def experiment(self, plan: JobPlan) -> str:
        """The experiment's id, created on first use (artifacts under artifact_root/tenant/project)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(plan.experiment)
        if found is None:
            location = None
            if self.artifact_root is not None:
                folder = self.artifact_root.absolute().joinpath(*plan.folder)
                location = folder.as_uri()
            try:
                return str(self.client.create_experiment(plan.experiment, location, plan.experiment_tags))
            except MlflowException:
                found = self.client.get_experiment_by_name(plan.experiment)  # another process created it first
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise TrackingError(
                f"MLflow experiment {plan.experiment!r} is deleted; restore it "
                f"(`mlflow experiments restore --experiment-id {found.experiment_id}`) or delete it permanently"
            )
        return str(found.experiment_id)

    # ------------------------------------------------------------ runs

    def _run(self, experiment_id: str, spec: RunSpec) -> tuple[str, bool]:
        """(run id, finished) of the run `spec.key` finds, created if there is none."""
        found = self._search(experiment_id, _filter(spec.key))
        if found:
            run = found[0]
            return run.info.run_id, run.info.status == "FINISHED"
        return self._create(experiment_id, spec), False

    def _create(self, experiment_id: str, spec: RunSpec, parent: str | None = None) -> str:
        tags = dict(spec.tags)
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        return str(self.client.create_run(experiment_id, tags=tags, run_name=spec.name).info.run_id)

    def _search(self, experiment_id: str, where: str) -> list[Any]:
        """Every active run matching `where`, oldest first (a race's second run is never the one used)."""
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id], where, max_results=1000, order_by=["attributes.start_time ASC"], page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _fill(
        self,
        run_id: str,
        spec: RunSpec,
        plan: JobPlan,
        chart: list[ImportanceChart],
        scratch: Path,
        texts: dict[str, str] | None = None,
    ) -> None:
        """Log the spec's params, metrics, tags and artifacts to the run, then mark it finished."""
        from mlflow.entities import Metric, Param, RunTag

        at = _millis()
        params = [Param(k, v) for k, v in spec.params.items()]
        tags = [RunTag(k, v) for k, v in spec.tags.items()]
        metrics = [Metric(k, v, at, 0) for k, v in spec.metrics.items()]
        for i, part in enumerate(_chunks([*params, *tags], BATCH) or [[]]):  # metrics with the first part
            self.client.log_batch(
                run_id,
                metrics=metrics if i == 0 else [],
                params=[p for p in part if isinstance(p, Param)],
                tags=[t for t in part if isinstance(t, RunTag)],
            )
        scratch.mkdir(parents=True, exist_ok=True)
        for name, text in {**spec.texts, **(texts or {})}.items():
            (scratch / name).write_text(text)
        if not chart:
            chart.append(ImportanceChart(plan.bars, plan.metric))
        chart[0].save(scratch / CHART_FILE, highlight=spec.highlight)
        self.client.log_artifacts(run_id, str(scratch))
        self.client.set_terminated(run_id, "FINISHED")


def _filter(key: dict[str, str]) -> str:
    return " and ".join(f"tags.`{k}` = '{_quoted(v)}'" for k, v in key.items())


def _quoted(value: str) -> str:
    """A value that goes inside '…' of an MLflow filter: AFEP ids and run ids only, never free text."""
    if _TAG_VALUE.fullmatch(value) is None:
        raise TrackingError(f"cannot look up the id {value!r} in MLflow: ids are letters, digits and ._:@/-")
    return value


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _millis() -> int:
    import time

    return int(time.time() * 1000)
