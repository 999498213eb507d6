"""OpenFE 0.0.12, top 10 features. Run as ``python -m bench.engines.openfe_engine WORK``.

openfe 0.0.12 calls ``mean_squared_error(..., squared=False)``, which scikit-learn 1.6
removed; we rebind that name inside the ``openfe.openfe`` module namespace before fitting
(the ProcessPoolExecutor workers are forked, so they inherit the patch).

Note: ``OpenFE.transform`` computes the features on train and test concatenated, so its
group-by operators (GroupByThenMean, ...) see the test rows' feature values (never the
target). That is how OpenFE is documented to be used; we keep it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.engines.workdir import read_input, write_output

TOP_K = 10


def _patch_rmse() -> None:
    import openfe.openfe as ofe_module
    from sklearn.metrics import mean_squared_error, root_mean_squared_error

    def mean_squared_error_compat(y_true, y_pred, *args, squared=True, **kwargs):
        if squared:
            return mean_squared_error(y_true, y_pred, *args, **kwargs)
        return root_mean_squared_error(y_true, y_pred, *args, **kwargs)

    ofe_module.mean_squared_error = mean_squared_error_compat


def main(argv: list[str]) -> int:
    work = Path(argv[0]).resolve()
    inp = read_input(work)
    _patch_rmse()
    from openfe import OpenFE
    from openfe.utils import tree_to_formula

    ofe = OpenFE()
    label = inp.y_train.to_frame(name=inp.target)
    ofe.fit(
        data=inp.x_train,
        label=label,
        task=inp.task,
        n_jobs=2,
        seed=inp.seed,
        tmp_save_path=str(work / "openfe_tmp.feather"),
    )
    chosen = ofe.new_features_list[:TOP_K]
    train_out, test_out = ofe.transform(inp.x_train, inp.x_test, chosen, n_jobs=2)
    new_cols = [c for c in train_out.columns if c not in inp.x_train.columns]
    formulas = [tree_to_formula(f) for f in chosen]
    write_output(
        work,
        train_out[new_cols],
        test_out[new_cols],
        {
            "engine": "openfe",
            "n_candidates_ranked": len(ofe.new_features_list),
            "features": dict(zip(new_cols, formulas)),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
