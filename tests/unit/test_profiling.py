import json

import numpy as np
import polars as pl
import pytest

from processors.profiling import (
    ConstantTarget,
    EmptyTable,
    InputError,
    NonNumericRegressionTarget,
    NothingToLearnFrom,
    TableProfile,
    TargetHasNulls,
    TooFewRows,
    TooManyClasses,
    UnknownKeptColumn,
    UnknownTargetColumn,
    profile_table,
    require_features,
    require_rows,
)


def credit_frame(n: int = 600) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    income = rng.lognormal(5, 0.5, n)
    debt = rng.lognormal(4, 1.0, n)
    risk = debt / income + rng.normal(0, 0.3, n)
    status = np.where(risk > np.quantile(risk, 0.7), "bad", "good")
    return pl.DataFrame(
        {
            "customer_id": np.arange(n),
            "Income": income,
            "Debt": debt,
            "Home": rng.choice(["rent", "owner", "parents"], n),
            "leaky_flag": (status == "bad").astype(float) + rng.normal(0, 0.01, n),
            "constant": np.ones(n),
            "Status": status,
        }
    )


def test_classification_profile_flags_ids_constants_and_leaks() -> None:
    p = profile_table(credit_frame(), "Status", "auto")
    assert p.task == "classification" and p.metric == "roc_auc"
    assert p.positive_class == "bad"
    assert p.id_columns == ("customer_id",)
    assert {"customer_id", "constant", "leaky_flag"} == set(p.excluded_columns)
    assert "leakage" in dict((f.column, f.reason) for f in p.excluded)["leaky_flag"]
    assert p.column("Income").kind == "numeric" and p.column("Home").kind == "categorical"
    assert p.column("Income").target_score > p.column("Home").target_score
    assert p.column("Income").quantiles[0][0] == "p0"
    assert len(p.column("Home").top_categories) == 3


def test_a_kept_leakage_suspect_stays_a_feature_with_a_warning() -> None:
    p = profile_table(credit_frame(), "Status", "auto", keep=("leaky_flag",))
    assert {"customer_id", "constant"} == set(p.excluded_columns)  # ids and constants are excluded all the same
    assert [f.column for f in p.leakage] == ["leaky_flag"]  # the suspicion is still on record
    assert any(w.startswith("leaky_flag: kept on request, a leakage suspect") for w in p.warnings)
    assert "leaky_flag" in [c.name for c in p.features]
    ids = profile_table(credit_frame(), "Status", "auto", keep=("customer_id",))
    assert "customer_id: left out although kept on request: identifier (unique per row)" in ids.warnings
    with pytest.raises(UnknownKeptColumn, match=r"'nope', to keep \(--keep, keep_columns\), is not a column"):
        profile_table(credit_frame(), "Status", "auto", keep=("nope",))


def test_a_table_whose_every_column_is_excluded_fails_with_what_to_do() -> None:
    frame = credit_frame().select("customer_id", "leaky_flag", "constant", "Status")
    with pytest.raises(NothingToLearnFrom) as refused:
        require_features(profile_table(frame, "Status", "auto"))
    message = str(refused.value)
    assert message.startswith("every column besides the target was excluded: customer_id (identifier")
    assert "leaky_flag (leakage suspect" in message and "--keep COLUMN" in message
    kept = profile_table(frame, "Status", "auto", keep=("leaky_flag",))
    require_features(kept)
    assert [c.name for c in kept.features] == ["leaky_flag"]


def test_round_trips_through_json() -> None:
    p = profile_table(credit_frame(), "Status", "auto")
    again = TableProfile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p


def test_regression_and_auto_task_resolution() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    df = pl.DataFrame({"x": x, "y": x * 2 + rng.normal(size=300), "copy_of_y_name": rng.normal(size=300)})
    p = profile_table(df, "y", "auto")
    assert p.task == "regression" and p.metric == "rmse"
    labels = pl.DataFrame({"x": x, "grade": rng.integers(0, 4, 300)})
    assert profile_table(labels, "grade", "regression").task == "regression"
    coded = profile_table(labels, "grade", "auto")  # codes 0..3 resolve to classification, with 4 classes
    assert (coded.task, coded.metric, coded.classes, coded.positive_class) == (
        "classification",
        "log_loss",
        ("0", "1", "2", "3"),
        None,
    )
    assert any("4 numeric classes, evaluated as multiclass" in w and "--task regression" in w for w in coded.warnings)


@pytest.mark.parametrize("task", ["auto", "classification"])
def test_a_target_with_three_classes_is_profiled_as_multiclass(task: str) -> None:
    df = pl.DataFrame({"x": list(range(30)), "colour": ["red", "green", "blue"] * 10})
    p = profile_table(df, "colour", task)  # type: ignore[arg-type]
    assert (p.task, p.metric, p.classes, p.positive_class) == (
        "classification",
        "log_loss",
        ("blue", "green", "red"),
        None,
    )
    assert not any("numeric classes" in w for w in p.warnings)


def test_a_target_with_too_many_classes_is_refused_in_one_line() -> None:
    df = pl.DataFrame({"x": list(range(210)), "label": [f"c{i % 21}" for i in range(210)]})
    with pytest.raises(TooManyClasses) as refused:
        profile_table(df, "label", "classification")
    assert str(refused.value).startswith("target 'label' has 21 classes; AFEP classifies up to 20 — merge rare classes")
    assert "\n" not in str(refused.value)


def test_a_rare_class_of_a_multiclass_target_says_how_to_fix_it() -> None:
    df = pl.DataFrame({"x": list(range(60)), "colour": ["red"] * 25 + ["green"] * 30 + ["blue"] * 5})
    with pytest.raises(TooFewRows, match=r"only 5 with colour='blue'.*add rows, or merge the rare class into another"):
        require_rows(df, profile_table(df, "colour", "auto"))


def test_warnings_skew_nulls_and_date_strings() -> None:
    rng = np.random.default_rng(2)
    n = 400
    skewed = rng.lognormal(0, 2, n)
    mostly_null = [None if i % 2 else float(i) for i in range(n)]
    dates = [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)]
    df = pl.DataFrame({"s": skewed, "m": mostly_null, "d": dates, "y": rng.integers(0, 2, n)})
    p = profile_table(df, "y", "auto")
    assert any("skewed" in w for w in p.column("s").warnings)
    assert any("high null rate" in w for w in p.column("m").warnings)
    assert p.column("d").kind == "datetime" and p.datetime_columns == ("d",)


def test_exact_copy_of_target_is_a_leak() -> None:
    y = ["a", "b", "a", "b"] * 10
    noise = np.random.default_rng(0).normal(size=40)
    df = pl.DataFrame({"a": [1.0, 2, 3, 4] * 10, "noise": noise, "y": y, "y_copy": y})
    p = profile_table(df, "y", "auto")
    assert "y_copy" in p.excluded_columns


@pytest.mark.parametrize(
    ("df", "target", "task", "error", "text"),
    [
        (pl.DataFrame({"default": [1, 0], "income": [1.0, 2.0]}), "defualt", "auto", UnknownTargetColumn, "'default'"),
        (pl.DataFrame({"y": [1, 1, 1], "x": [1, 2, 3]}), "y", "auto", ConstantTarget, "single value"),
        (pl.DataFrame({"y": [1, None, 0], "x": [1, 2, 3]}), "y", "auto", TargetHasNulls, "1 of 3 rows"),
        (pl.DataFrame({"y": [], "x": []}), "y", "auto", EmptyTable, "0 rows"),
        (pl.DataFrame({"y": ["a", "b"], "x": [1, 2]}), "y", "regression", NonNumericRegressionTarget, "classification"),
    ],
)
def test_typed_input_errors(df: pl.DataFrame, target: str, task: str, error: type, text: str) -> None:
    with pytest.raises(error) as info:
        profile_table(df, target, task)  # type: ignore[arg-type]
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    assert text in str(info.value)


def test_fast_on_10k_by_25() -> None:
    import time

    rng = np.random.default_rng(3)
    cols = {f"x{i}": rng.normal(size=10_000) for i in range(20)}
    cols |= {f"c{i}": rng.choice(["a", "b", "c"], 10_000) for i in range(4)}
    df = pl.DataFrame(cols | {"y": rng.integers(0, 2, 10_000)})
    start = time.perf_counter()
    profile_table(df, "y", "auto")
    assert time.perf_counter() - start < 1.0


def _refusal(df: pl.DataFrame, target: str = "y") -> str:
    with pytest.raises(TooFewRows) as refused:
        require_rows(df, profile_table(df, target, "auto"))
    assert isinstance(refused.value, InputError) and "\n" not in str(refused.value)
    return str(refused.value)


def test_a_table_too_small_to_evaluate_is_refused_in_one_line() -> None:
    tiny = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    assert _refusal(tiny) == (
        "the table has 4 rows; AFEP needs at least 50 (and 10 of each class) to test features — add rows"
    )
    assert _refusal(tiny.head(2)).startswith("the table has 2 rows; AFEP needs at least 50")
    rng = np.random.default_rng(4)
    short = pl.DataFrame({"x": rng.normal(size=49), "y": rng.normal(size=49)})
    assert _refusal(short) == "the table has 49 rows; AFEP needs at least 50 to test features — add rows"


def test_a_rare_class_below_ten_rows_is_refused_and_the_minimum_passes() -> None:
    x = np.arange(200, dtype=float)
    rare = pl.DataFrame({"x": x, "y": ["bad"] * 9 + ["good"] * 191})
    assert _refusal(rare) == (
        "the table has 200 rows but only 9 with y='bad'; "
        "AFEP needs at least 50 (and 10 of each class) to test features — add rows"
    )
    enough = pl.DataFrame({"x": x[:50], "y": ["bad"] * 10 + ["good"] * 40})
    require_rows(enough, profile_table(enough, "y", "auto"))
    rng = np.random.default_rng(5)
    regression = pl.DataFrame({"x": rng.normal(size=50), "y": rng.normal(size=50)})
    require_rows(regression, profile_table(regression, "y", "auto"))


def test_an_id_suffix_without_separator_marks_ids_but_not_amounts() -> None:
    rng = np.random.default_rng(0)
    n = 300
    frame = pl.DataFrame(
        {
            "amount_paid": rng.normal(size=n),  # a float ending in 'id' is a quantity
            "valid": rng.normal(size=n),
            "customerId": np.arange(100, 100 + n)[::-1].copy(),
            "userid": [f"u{i}" for i in range(n)],
            "AccountID": np.arange(n, dtype=float) + 0.5,  # camelCase: an id even as floats
            "orderid": np.arange(n, dtype=float) * 3,  # whole numbers in a float column: an id
            "y": rng.integers(0, 2, n),
        }
    )
    kinds = {c.name: c.kind for c in profile_table(frame, "y").columns}
    assert kinds == {
        "amount_paid": "numeric", "valid": "numeric", "customerId": "id", "userid": "id", "AccountID": "id",
        "orderid": "id", "y": "boolean",
    }  # fmt: skip


def test_infinite_values_are_named_in_the_warnings() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    a[:20] = np.inf
    frame = pl.DataFrame({"a": a, "b": rng.normal(size=300), "y": rng.integers(0, 2, 300)})
    assert "a: infinite values in 20 rows" in " ".join(profile_table(frame, "y").warnings)
