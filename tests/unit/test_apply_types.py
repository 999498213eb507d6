"""`afep apply` on new rows whose column types differ from the job's: converted, or refused with the value."""

from __future__ import annotations

import json
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


def test_numbers_in_a_column_of_text_categories_are_refused() -> None:
    new = pl.DataFrame({"amount": [1.0], "merchant": [1], "code": ["10"]})
    with pytest.raises(ApplyError, match=r"'merchant' holds numbers where the job's data had text \(such as 'm1'\)"):
        conformed(new, REFERENCE, COLUMNS)


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
