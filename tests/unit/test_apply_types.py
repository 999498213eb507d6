"""`afep apply` on new rows whose column types differ from the job's: converted, or refused with the value."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from processors.apply import ApplyError, conformed, read_features

REFERENCE = pl.DataFrame({"amount": [1.5, 2.0, 3.25], "merchant": ["m1", "m2", "m1"], "code": ["10", "20", "10"]})
COLUMNS = ["amount", "merchant", "code"]


def test_numbers_written_as_text_and_numeric_codes_are_converted() -> None:
    new = pl.DataFrame({"amount": [" 4.5", None, "7"], "merchant": ["m2", "m9", None], "code": [10, 30, 20]})
    out = conformed(new, REFERENCE, COLUMNS)
    assert out.schema == REFERENCE.schema
    assert out["amount"].to_list() == [4.5, None, 7.0] and out["code"].to_list() == ["10", "30", "20"]


def test_text_in_a_numeric_column_is_refused_with_the_value_and_row() -> None:
    new = pl.DataFrame({"amount": ["4.5", "24.254x", "n/a"], "merchant": ["m1"] * 3, "code": ["10"] * 3})
    with pytest.raises(ApplyError) as refused:
        conformed(new, REFERENCE, COLUMNS)
    assert str(refused.value) == (
        "column 'amount' holds text where the job's data had numbers: '24.254x' in row 2 and 1 more; "
        "fix or drop those values and apply again"
    )


def test_numbers_that_match_no_category_are_refused_and_numeric_codes_that_do_pass() -> None:
    new = pl.DataFrame({"amount": [1.0], "merchant": [1], "code": ["10"]})
    with pytest.raises(ApplyError, match=r"'merchant' holds numbers that match none of the categories .*'m1'"):
        conformed(new, REFERENCE, COLUMNS)
    mixed = pl.DataFrame({"amount": [1.0, 2.0], "merchant": ["m1", "m2"], "code": [10, 99]})  # 99: unseen
    assert conformed(mixed, REFERENCE, COLUMNS)["code"].to_list() == ["10", "99"]


def test_booleans_dates_and_unconvertible_types() -> None:
    reference = pl.DataFrame({"flag": [True, False], "day": [date(2024, 1, 5), date(2024, 2, 1)]})
    new = pl.DataFrame({"flag": ["Yes", "0"], "day": ["2024-03-01", None]})
    out = conformed(new, reference, ["flag", "day"])
    assert out["flag"].to_list() == [True, False] and out["day"].to_list() == [date(2024, 3, 1), None]
    with pytest.raises(ApplyError, match=r"'flag' holds values that are not true or false .*'maybe' in row 1"):
        conformed(pl.DataFrame({"flag": ["maybe"], "day": [None]}), reference, ["flag"])
    with pytest.raises(ApplyError, match=r"'day' holds Int64 values where the job's data had Date .*; convert it"):
        conformed(pl.DataFrame({"flag": [True], "day": [20240105]}), reference, ["day"])


def test_same_types_pass_unchanged() -> None:
    new = pl.DataFrame({"amount": [9], "merchant": ["m1"], "code": ["10"], "extra": [True]})
    assert conformed(new, REFERENCE, COLUMNS).equals(new)


@pytest.mark.parametrize("text", ['[{"broken"', '{"name": "x"}', "\xff\xfe"])
def test_a_damaged_features_json_is_an_apply_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "features.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ApplyError, match="afep jobs resume ID --out DIR"):
        read_features(tmp_path)
    (tmp_path / "features.json").write_text(json.dumps([{"name": "f", "code": "x", "source_columns": []}]))
    assert read_features(tmp_path)[0]["name"] == "f"
