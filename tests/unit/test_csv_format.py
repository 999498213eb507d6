"""CSV files as users have them: separators other than a comma, decimal commas, quoted headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.sources import load_table
from processors.sources.embedded import FileSource, csv_format


@pytest.mark.parametrize(
    ("name", "text", "expected", "columns", "first"),
    [
        ("plain.csv", "a,b,y\n1.5,2,0\n2.5,3,1\n", (",", False), ["a", "b", "y"], [1.5, 2, 0]),
        ("euro.csv", "a;b;c;y\n1,5;2;x,y;1\n-0,25;3;z;0\n", (";", True), ["a", "b", "c", "y"], [1.5, 2.0, "x,y", 1]),
        ("semi_dot.csv", "a;b;y\n1.5;2.25;1\n0.5;3.5;0\n", (";", False), ["a", "b", "y"], [1.5, 2.25, 1]),
        # 1,234 may be a thousands grouping: it never turns decimal commas on by itself
        ("sales.tsv", "r\ts\ty\nA\t1,234\t1\nB\t12\t0\n", ("\t", False), ["r", "s", "y"], ["A", "1,234", 1]),
        ("pipe.csv", "a|b|y\n1|2|0\n3|4|1\n", ("|", False), ["a", "b", "y"], [1, 2, 0]),
        ("tabs.tsv", "a\tb\ty\n1\t2\t0\n3\t4\t1\n", ("\t", False), ["a", "b", "y"], [1, 2, 0]),
        ("quoted.csv", '"x;y",b,y\n1,2,0\n3,4,1\n', (",", False), ["x;y", "b", "y"], [1, 2, 0]),
        ("one.csv", "y\n1\n0\n", (",", False), ["y"], [1]),
    ],
)
def test_separator_and_decimal_comma_are_read_from_the_file(
    tmp_path: Path, name: str, text: str, expected: tuple[str, bool], columns: list[str], first: list[object]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert csv_format(path) == expected
    frame = FileSource(path, "csv").load()
    assert frame.columns == columns and list(frame.row(0)) == first


def test_a_column_without_a_name_gets_one_every_load_agrees_on(tmp_path: Path) -> None:
    path = tmp_path / "pandas_index.csv"
    path.write_text(",unnamed_0,b,y\n0,5,1.5,0\n1,6,2.5,1\n")  # pandas' to_csv writes its index like this
    frame = load_table(str(path))
    assert frame.columns == ["unnamed_0_", "unnamed_0", "b", "y"]
    assert frame["unnamed_0_"].to_list() == [0, 1]


def test_a_header_naming_a_column_twice_is_read_and_named_in_the_warnings(tmp_path: Path) -> None:
    from processors.profiling import profile_table

    path = tmp_path / "twice.csv"
    rows = "\n".join(f"{i},{i * 2},{i % 2}" for i in range(60))
    path.write_text("a,a,y\n" + rows + "\n")
    frame = load_table(str(path))
    assert frame.columns == ["a", "a_duplicated_0", "y"]
    warnings = profile_table(frame, "y").warnings
    assert "a_duplicated_0: the file names a second column 'a'; it is read as 'a_duplicated_0'" in warnings


@pytest.mark.parametrize("header", [",a,a,y", "a,a,a,y", ",unnamed_0,b,y", "a,b,y"])
def test_the_api_checks_column_names_as_a_load_gives_them(tmp_path: Path, header: str) -> None:
    from processors.sources import loaded_names

    path = tmp_path / "t.csv"
    path.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    assert loaded_names(header.split(",")) == load_table(str(path)).columns
