"""The fixed evaluation protocol: outer 80/20 split, LightGBM with early stopping, test metric.

For seed s: outer split random_state=s (stratified for classification); engines see only
the train part. LightGBM (n_estimators=2000, learning_rate=0.05, num_leaves=31,
random_state=s) early-stops after 100 rounds without improvement of the task metric
(AUC / RMSE; multiclass log loss in `bench.multiclass`) on an inner 80/20 split of train
(same seed, stratified); the model at its best iteration is scored on the outer test part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PROTOCOL = "v1: outer 80/20 split rs=seed (stratified cls); LGBM 2000/0.05/31 rs=seed; ES 100 on inner 80/20 (metric auc|rmse); test AUC|RMSE"


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_test: pd.DataFrame
    y_test: pd.Series


@dataclass(frozen=True)
class Score:
    value: float
    best_iteration: int
    n_columns: int


def metric_name(task: str) -> str:
    return {"classification": "auc", "multiclass": "multi_logloss"}.get(task, "rmse")


def split(x: pd.DataFrame, y: pd.Series, task: str, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, random_state=seed, stratify=y if task != "regression" else None
    )
    return Split(
        x_tr.reset_index(drop=True),
        y_tr.reset_index(drop=True),
        x_te.reset_index(drop=True),
        y_te.reset_index(drop=True),
    )


def _lgbm_ready(x: pd.DataFrame) -> pd.DataFrame:
    x = x.copy()
    for col in x.columns:
        if x[col].dtype == object:
            x[col] = x[col].astype("category")
        elif x[col].dtype.kind in "fiub":
            x[col] = x[col].astype(float).replace([np.inf, -np.inf], np.nan)
    return x


def evaluate(
    x_train: pd.DataFrame, y_train: pd.Series, x_test: pd.DataFrame, y_test: pd.Series, task: str, seed: int
) -> Score:
    import lightgbm as lgb
    from sklearn.metrics import log_loss, roc_auc_score, root_mean_squared_error
    from sklearn.model_selection import train_test_split

    x_train, x_test = _lgbm_ready(x_train), _lgbm_ready(x_test)
    if task == "multiclass":  # class labels as codes: LightGBM's evaluation sets take numbers only
        codes = {c: i for i, c in enumerate(sorted(set(y_train) | set(y_test), key=str))}
        y_train, y_test = y_train.map(codes), y_test.map(codes)
    classification = task != "regression"  # binary (AUC) or multiclass (log loss)
    x_fit, x_val, y_fit, y_val = train_test_split(
        x_train, y_train, test_size=0.2, random_state=seed, stratify=y_train if classification else None
    )
    params = dict(
        n_estimators=2000,
        learning_rate=0.05,
        num_leaves=31,
        random_state=seed,
        n_jobs=2,
        verbose=-1,
        deterministic=True,
        metric=metric_name(task),
    )
    model = lgb.LGBMClassifier(**params) if classification else lgb.LGBMRegressor(**params)
    model.fit(x_fit, y_fit, eval_X=(x_val,), eval_y=(y_val,), callbacks=[lgb.early_stopping(100, verbose=False)])
    if task == "multiclass":
        value = log_loss(y_test, model.predict_proba(x_test), labels=model.classes_)
    elif classification:
        value = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    else:
        value = root_mean_squared_error(y_test, model.predict(x_test))
    return Score(float(value), int(model.best_iteration_ or params["n_estimators"]), x_train.shape[1])
