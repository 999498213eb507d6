"""Start-up benchmark: ``.venv/bin/python -m bench.startup [--baseline DIR]``.

Measures, as the median of N runs after one warm-up run:
(a) `afep --help`: wall time of the whole process;
(b) API start-up: `afep serve` from process start until `GET /api/v1/health` answers 200
    (the same data dir every run, made by the warm-up run: a restart, not a first start);
for this repository and, with ``--baseline DIR``, for another checkout with its own
``.venv`` (e.g. ``git worktree add /tmp/base e79f471 && make -C /tmp/base install``: the
commit before #13). The two are measured in turn, run by run, so that the machine's
drift hits both alike; the difference of the medians is checked against the limit #13
sets (0.2 s each).

With ``--demo-runs K`` (default 3) it also measures what experiment tracking adds to a
`make demo`-like job (`afep run` on the 2,000-row credit table, budget 90 s) in this
repository: the same job with AFEP_TRACKING=off, on in a fresh data dir (the MLflow
store is created) and on in a data dir whose store exists; process wall times, and the
tracking agent's own time from JobCompleted to ExperimentTracked in the log.

Writes bench/results/startup.json and docs/benchmarks-startup.md, prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "startup.json"
DOC = ROOT / "docs" / "benchmarks-startup.md"
LIMIT_SECONDS = 0.2
PACKAGES = ("domain", "commands", "schemas", "processors", "sandbox", "projections", "gateway", "ops", "bench")
HEALTH_TIMEOUT = 120.0
# a clean environment: no AFEP_* or MLflow settings of the caller's shell
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("AFEP_", "MLFLOW_", "OTEL_", "PYTHONPATH"))} | {
    "OMP_WAIT_POLICY": "PASSIVE"
}


class Checkout:
    """A repository checkout with its own `.venv` (made by `make install`)."""

    def __init__(self, label: str, path: Path) -> None:
        self.label = label
        self.path = path.resolve()
        self.afep = self.path / ".venv" / "bin" / "afep"
        if not self.afep.exists():
            raise SystemExit(f"{self.afep} not found: run `make install` in {self.path} first")
        self.commit = _git(self.path, "rev-parse", "--short", "HEAD")
        self.dirty = bool(_git(self.path, "status", "--porcelain", "--untracked-files=no"))

    def compile(self) -> None:
        """Bytecode for the checkout's own packages, as `make install` makes it: with PYTHONDONTWRITEBYTECODE
        set, a module changed since then would be compiled again at every start and counted as start-up."""
        python = self.path / ".venv" / "bin" / "python"
        packages = [p for p in PACKAGES if (self.path / p).is_dir()]
        subprocess.run(
            [str(python), "-m", "compileall", "-q", "-j", "0", *packages],
            cwd=self.path,
            capture_output=True,
            check=True,
        )

    def help_seconds(self, work: Path) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [str(self.afep), "--help"], cwd=work, env=BASE_ENV, capture_output=True, text=True, timeout=120
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0 or "Usage" not in done.stdout:
            raise SystemExit(f"`afep --help` failed in {self.path}: {done.stderr.strip()[-500:]}")
        return seconds

    def health_seconds(self, work: Path) -> float:
        """Seconds from `afep serve` starting to /api/v1/health answering 200 (the server is stopped after)."""
        port = _free_port()
        env = BASE_ENV | {"AFEP_SECRET_KEY": "startup-bench-" + "k" * 32}
        data_dir = work / f"serve-{self.label}"
        log = (work / f"serve-{self.label}.log").open("ab")
        url = f"http://127.0.0.1:{port}/api/v1/health"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(self.afep), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"`afep serve` exited with {proc.returncode}; see {log.name}")
                try:
                    with urllib.request.urlopen(url, timeout=1.0) as response:
                        if response.status == 200:
                            return time.perf_counter() - started
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.perf_counter() - started > HEALTH_TIMEOUT:
                    raise SystemExit(f"`afep serve` did not answer {url} in {HEALTH_TIMEOUT:.0f} s; see {log.name}")
                time.sleep(0.01)
        finally:
            _stop(proc)
            log.close()


def _git(path: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    return done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server this benchmark started (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "runs": [round(v, 4) for v in values],
    }


def measure_startup(checkouts: list[Checkout], runs: int, work: Path) -> dict[str, dict[str, Any]]:
    """Both measures for every checkout, in turn, run by run; the first run of each is a warm-up."""
    times: dict[str, dict[str, list[float]]] = {c.label: {"cli_help": [], "api_health": []} for c in checkouts}
    for checkout in checkouts:
        checkout.compile()
    for i in range(runs + 1):
        for checkout in checkouts:
            help_seconds = checkout.help_seconds(work)
            health_seconds = checkout.health_seconds(work)
            if i > 0:
                times[checkout.label]["cli_help"].append(help_seconds)
                times[checkout.label]["api_health"].append(health_seconds)
        if i == 0:
            print("warm-up run done", flush=True)
            continue
        shown = [f"{c.label}: help {times[c.label]['cli_help'][-1]:.2f} s, health {times[c.label]['api_health'][-1]:.2f} s"
                 for c in checkouts]  # fmt: skip
        print(f"run {i}/{runs}: " + "; ".join(shown), flush=True)
    return {
        c.label: {
            "repo": str(c.path),
            "commit": c.commit,
            "uncommitted_changes": c.dirty,
            "cli_help": _summary(times[c.label]["cli_help"]),
            "api_health": _summary(times[c.label]["api_health"]),
        }
        for c in checkouts
    }


def growth(base: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Current minus baseline per measure: the difference of the medians, and the median of the run-by-run
    differences (each pair measured back to back, so it is what the machine's drift disturbs least;
    the verdict uses it)."""
    out: dict[str, Any] = {}
    for m in ("cli_help", "api_health"):
        pairs = [c - b for b, c in zip(base[m]["runs"], current[m]["runs"], strict=True)]
        out[m] = round(current[m]["median"] - base[m]["median"], 4)
        out[f"{m}_paired"] = round(statistics.median(pairs), 4)
    out["within_limit"] = all(out[f"{m}_paired"] <= LIMIT_SECONDS for m in ("cli_help", "api_health"))
    return out


# ---------------------------------------------------------------- tracking in a demo-like job


def _demo_job(checkout: Checkout, table: Path, data_dir: Path, out: Path, tracking: bool) -> dict[str, Any]:
    env = BASE_ENV | {"AFEP_TRACKING": "on" if tracking else "off"}
    command = [
        str(checkout.afep), "run", str(table), "--target", "Status", "--out", str(out), "--budget", "90",
        "--data-dir", str(data_dir), "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=table.parent, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"afep run failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    result = json.loads((out / "result.json").read_text())
    return {
        "wall_seconds": round(wall, 3),
        "job_seconds": round(result["wall_seconds"], 3),
        "tracking_seconds": _tracking_seconds(data_dir, result["job_id"]) if tracking else None,
        "feature_runs": (result.get("experiment") or {}).get("feature_runs"),
    }


def _tracking_seconds(data_dir: Path, job_id: str) -> float | None:
    """From the job's JobCompleted to its ExperimentTracked, as the log recorded them."""
    from commands.recorder_store import SqliteEventStore
    from domain.job import job_stream

    store = SqliteEventStore(data_dir / "events.db")
    try:
        at = {e.event_type: e.occurred_at for e in store.read_stream(job_stream(job_id))}
    finally:
        store.close()
    if {"JobCompleted", "ExperimentTracked"} - set(at):
        return None
    return round((at["ExperimentTracked"] - at["JobCompleted"]).total_seconds(), 3)


def measure_tracking(checkout: Checkout, runs: int, work: Path) -> dict[str, Any]:
    """The same demo job off, on in a fresh data dir and on in a data dir with a store, in turn."""
    from ops.demo_data import synthetic_credit

    table = work / "credit_data.csv"
    synthetic_credit().write_csv(table)
    kept = work / "demo-kept"
    _demo_job(checkout, table, kept, work / "out-kept-0", True)  # makes the kept data dir's MLflow store
    modes: dict[str, list[dict[str, Any]]] = {"off": [], "on_fresh_store": [], "on_existing_store": []}
    for i in range(runs):
        for mode in modes:
            fresh = work / f"demo-{mode}-{i}"
            data_dir = kept if mode == "on_existing_store" else fresh
            modes[mode].append(_demo_job(checkout, table, data_dir, work / f"out-{mode}-{i}", mode != "off"))
            if data_dir is fresh:
                shutil.rmtree(fresh, ignore_errors=True)
        print(f"demo run {i + 1}/{runs}: " + ", ".join(f"{m} {v[-1]['wall_seconds']:.1f} s" for m, v in modes.items()))
    out: dict[str, Any] = {"runs": runs, "job": "afep run credit_data.csv (2,000 rows) --target Status --budget 90"}
    for mode, records in modes.items():
        out[mode] = {
            "wall_seconds": _summary([r["wall_seconds"] for r in records]),
            "job_seconds": _summary([r["job_seconds"] for r in records]),
            "tracking_seconds": (
                _summary([r["tracking_seconds"] for r in records if r["tracking_seconds"] is not None])
                if mode != "off"
                else None
            ),
            "feature_runs": [r["feature_runs"] for r in records],
        }
    return out


# ---------------------------------------------------------------- report


def render(record: dict[str, Any]) -> str:
    labels = list(record["checkouts"])
    lines = [
        "# Start-up benchmark",
        "",
        f"`python -m bench.startup`, {record['date']}, {record['machine']}, load average {record['load_average']:.1f} "
        f"at the start. Median of {record['runs']} runs after a warm-up run; the checkouts measured in turn.",
        "",
        "| checkout | commit | `afep --help` | API start to `/api/v1/health` 200 |",
        "| --- | --- | --- | --- |",
    ]
    for label in labels:
        c = record["checkouts"][label]
        commit = c["commit"] + (" + uncommitted changes" if c["uncommitted_changes"] else "")
        lines.append(
            f"| {label} | {commit} | {c['cli_help']['median']:.3f} s ({c['cli_help']['min']:.3f}-"
            f"{c['cli_help']['max']:.3f}) | {c['api_health']['median']:.3f} s ({c['api_health']['min']:.3f}-"
            f"{c['api_health']['max']:.3f}) |"
        )
    delta = record.get("delta")
    if delta:
        verdict = "within" if delta["within_limit"] else "OVER"
        lines += [
            "",
            f"Growth against the baseline, median of the run-by-run differences: `afep --help` "
            f"{delta['cli_help_paired']:+.3f} s, API start-up {delta['api_health_paired']:+.3f} s "
            f"(difference of the medians: {delta['cli_help']:+.3f} s and {delta['api_health']:+.3f} s); "
            f"#13's limit is +{LIMIT_SECONDS:.1f} s each: **{verdict}**.",
        ]
    lines += [
        "",
        "The API is started on the same data dir each run (made by the warm-up run), so this is a restart; "
        "the time runs from process start to the first 200 from `/api/v1/health` (uvicorn answers once the "
        "app's start-up, stores and projections included, is done). `afep --help` is the whole process. "
        "Both checkouts' bytecode is compiled first, as `make install` does. "
        "Neither imports `mlflow` or `feast` (tests/unit/test_startup_imports.py).",
    ]
    demo = record.get("tracking")
    if demo:
        lines += [
            "",
            "## What experiment tracking adds to a job",
            "",
            f"{demo['job']}, {demo['runs']} runs of each, in turn (median, min-max):",
            "",
            "| AFEP_TRACKING | `afep run` wall | job (JobRequested to JobCompleted) | tracking (JobCompleted to "
            "ExperimentTracked) |",
            "| --- | --- | --- | --- |",
        ]
        names = {
            "off": "off",
            "on_fresh_store": "on, new data dir (store created)",
            "on_existing_store": "on, store exists",
        }
        for mode, name in names.items():
            m = demo[mode]
            tracked = m["tracking_seconds"]
            lines.append(
                f"| {name} | {_span(m['wall_seconds'])} | {_span(m['job_seconds'])} | "
                f"{_span(tracked) if tracked else '-'} |"
            )
        lines += [
            "",
            "The tracking agent imports MLflow when the job has completed (most of its time; a new data dir "
            "also creates the SQLite store), then logs the runs and draws one chart per run. `afep run` "
            "returns once the runs exist; `job` is the job's own time either way.",
        ]
    return "\n".join(lines) + "\n"


def _span(summary: dict[str, Any]) -> str:
    return f"{summary['median']:.2f} s ({summary['min']:.2f}-{summary['max']:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="measured runs per checkout (after one warm-up)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--label", default="current", help="its name in the report")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with (its own .venv)")
    parser.add_argument("--baseline-label", default="baseline")
    parser.add_argument("--demo-runs", type=int, default=3, help="demo-like jobs per tracking mode (0: none)")
    args = parser.parse_args()
    checkouts = [Checkout(args.label, args.repo)]
    if args.baseline is not None:
        checkouts.insert(0, Checkout(args.baseline_label, args.baseline))
    record: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg()[0],
        "runs": args.runs,
        "limit_seconds": LIMIT_SECONDS,
    }
    with tempfile.TemporaryDirectory(prefix="afep-startup-") as tmp:
        work = Path(tmp)
        record["checkouts"] = measure_startup(checkouts, args.runs, work)
        if args.baseline is not None:
            base, current = (record["checkouts"][c.label] for c in checkouts)
            record["delta"] = growth(base, current)
        if args.demo_runs > 0:
            record["tracking"] = measure_tracking(checkouts[-1], args.demo_runs, work)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    DOC.write_text(render(record))
    print(render(record))


if __name__ == "__main__":
    main()
