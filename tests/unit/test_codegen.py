import ast
import hashlib
import math

import duckdb
import polars as pl
import pytest

from domain.spec import FITTED_OPS, STATELESS_OPS, FeatureSpec
from processors.codegen import UnsupportedSpec, generate_code
from tests.hostile import HOSTILE_IDS, HOSTILE_NAMES

DF = pl.DataFrame(
    {
        "a b": [1.0, 2.0, 0.0, None, 4.0],
        "c": [2.0, 0.0, 1.0, 3.0, -1.0],
        "g": ["x", "y", "x", "z", None],
        "d": ["2024-01-05", "2023-06-30", "2022-12-31", None, "2020-02-29"],
    }
)
REF = DF.head(3)  # statistics must come from these rows only
N = None
CASES = [  # spec, expected on DF (fitted on REF)
    (FeatureSpec("ratio", ("a b", "c")), [0.5, N, 0.0, N, -4.0]),
    (FeatureSpec("diff", ("a b", "c")), [-1.0, 2.0, -1.0, N, 5.0]),
    (FeatureSpec("sum", ("a b", "c")), [3.0, 2.0, 1.0, N, 3.0]),
    (FeatureSpec("product", ("a b", "c")), [2.0, 0.0, 0.0, N, -4.0]),
    (FeatureSpec("log", ("c",)), [math.log(2), N, 0.0, math.log(3), N]),
    (FeatureSpec("log", ("a b",), (("offset", 1.0),)), [math.log(2), math.log(3), 0.0, N, math.log(5)]),
    (FeatureSpec("sqrt", ("c",)), [math.sqrt(2), 0.0, 1.0, math.sqrt(3), N]),
    (FeatureSpec("square", ("c",)), [4.0, 0.0, 1.0, 9.0, 1.0]),
    (FeatureSpec("abs", ("c",)), [2.0, 0.0, 1.0, 3.0, 1.0]),
    (FeatureSpec("reciprocal", ("c",)), [0.5, N, 1.0, 1 / 3, -1.0]),
    (FeatureSpec("is_null", ("a b",)), [0.0, 0.0, 0.0, 1.0, 0.0]),
    (FeatureSpec("date_part", ("d",), (("part", "month"),)), [1.0, 6.0, 12.0, N, 2.0]),
    (FeatureSpec("date_part", ("d",), (("part", "weekday"),)), [5.0, 5.0, 6.0, N, 6.0]),
    (
        FeatureSpec("cyclic_sin", ("d",), (("part", "month"), ("period", 12))),
        [math.sin(2 * math.pi * m / 12) for m in (1, 6, 12)] + [N, math.sin(2 * math.pi * 2 / 12)],
    ),
    (FeatureSpec("cyclic_cos", ("c",), (("period", 4),)), [math.cos(2 * math.pi * v / 4) for v in (2, 0, 1, 3, -1)]),
    (FeatureSpec("formula", ("a b", "c"), (("expr", "log(x0) / (x1 + 1) ** 2"),)), [0.0, math.log(2), N, N, N]),
    (FeatureSpec("concat", ("g", "c")), [1.0, 2.0, 0.0, N, N]),  # codes of ref's sorted levels
    (FeatureSpec("freq", ("g",)), [2 / 3, 1 / 3, 2 / 3, 0.0, 0.0]),
    (FeatureSpec("freq", ("g", "c")), [1 / 3, 1 / 3, 1 / 3, 0.0, 0.0]),
    (FeatureSpec("bin", ("c",), (("n_bins", 2),)), [1.0, 0.0, 1.0, 1.0, 0.0]),
    (FeatureSpec("rank", ("c",)), [5 / 6, 1 / 6, 0.5, 1.0, 0.0]),
    (FeatureSpec("group_count", ("g",)), [2.0, 1.0, 2.0, 0.0, 0.0]),
    (FeatureSpec("group_mean", ("a b", "g")), [0.5, 2.0, 0.5, N, N]),
    (FeatureSpec("group_std", ("a b", "g")), [math.sqrt(0.5), N, math.sqrt(0.5), N, N]),
    (FeatureSpec("group_median", ("c", "g")), [1.5, 0.0, 1.5, N, N]),
    (FeatureSpec("group_diff", ("a b", "g")), [0.5, 0.0, -0.5, N, N]),
    (FeatureSpec("group_ratio", ("a b", "g")), [2.0, 1.0, 0.0, N, N]),
    (FeatureSpec("group_zscore", ("a b", "g")), [0.5 / math.sqrt(0.5), N, -0.5 / math.sqrt(0.5), N, N]),
    (FeatureSpec("group_nunique", ("c", "g")), [2.0, 1.0, 2.0, N, N]),
]


def run(spec: FeatureSpec, df: pl.DataFrame = DF, ref: pl.DataFrame = REF) -> pl.Series:
    ns: dict = {}
    exec(generate_code(spec).code, ns)
    return ns["feature"](df, ref)


def close(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        (g is None and w is None) or (g is not None and w is not None and math.isclose(g, w, abs_tol=1e-9))
        for g, w in zip(got, want, strict=True)
    )


def test_every_op_is_covered() -> None:
    assert {s.op for s, _ in CASES} == FITTED_OPS | STATELESS_OPS


@pytest.mark.parametrize(("spec", "want"), CASES, ids=[f"{s.op}-{i}" for i, (s, _) in enumerate(CASES)])
def test_generated_code_matches_hand_computation(spec: FeatureSpec, want: list) -> None:
    out = run(spec)
    assert out.dtype == pl.Float64 and out.len() == DF.height
    assert close(out.to_list(), want), out.to_list()


def test_module_uses_only_allowed_imports_and_no_dunders() -> None:
    for spec, _ in CASES:
        gen = generate_code(spec)
        assert gen.code_type == "polars"
        assert gen.code_hash == hashlib.sha256(gen.code.encode()).hexdigest()
        tree = ast.parse(gen.code)
        imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert imports <= {"polars", "numpy", "math"}
        assert not any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not any(x.startswith("__") for x in names | attrs)
        assert not names & {"exec", "eval", "open", "compile", "getattr"}


@pytest.mark.parametrize(
    "spec", [s for s, _ in CASES if s.op in STATELESS_OPS and s.op != "concat"], ids=lambda s: s.op
)
def test_stateless_sql_equals_polars_in_duckdb(spec: FeatureSpec) -> None:
    gen = generate_code(spec)
    assert gen.sql is not None and gen.sql_dialect == "duckdb"
    con = duckdb.connect()
    con.register("data", DF.to_arrow())
    got = [row[0] for row in con.execute(gen.sql).fetchall()]
    assert close(got, run(spec, DF, DF).to_list()), (gen.sql, got)


@pytest.mark.parametrize(
    "spec",
    [s for s, _ in CASES if s.op in {"freq", "group_mean", "group_count", "group_diff", "group_zscore", "group_std"}],
    ids=lambda s: s.op,
)
def test_fitted_sql_fits_on_ref_table(spec: FeatureSpec) -> None:
    gen = generate_code(spec)
    assert gen.sql is not None
    con = duckdb.connect()
    con.register("data", DF.to_arrow())
    con.register("ref", REF.to_arrow())
    got = sorted((r[0] for r in con.execute(gen.sql).fetchall()), key=lambda v: (v is None, v or 0))
    want = sorted(run(spec).to_list(), key=lambda v: (v is None, v or 0))
    assert close(got, want)


def test_fitted_ops_use_ref_only_and_keep_row_order() -> None:
    shuffled = DF.reverse()
    assert run(FeatureSpec("group_mean", ("a b", "g")), shuffled).to_list() == [None, None, 0.5, 2.0, 0.5]
    assert run(FeatureSpec("freq", ("g",)), DF, DF).to_list()[0] == pytest.approx(2 / 5)


def test_division_by_zero_is_null_not_inf() -> None:
    out = run(FeatureSpec("formula", ("a b", "c"), (("expr", "x0 / (x1 - x1)"),)))
    assert out.null_count() == DF.height


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec("nope", ("c",)),
        FeatureSpec("ratio", ("c",)),
        FeatureSpec("formula", ("c",), (("expr", "open(x0)"),)),
        FeatureSpec("formula", ("c",), (("expr", "x3 + 1"),)),
        FeatureSpec("date_part", ("d",), (("part", "fortnight"),)),
    ],
)
def test_bad_specs_are_rejected(spec: FeatureSpec) -> None:
    with pytest.raises(UnsupportedSpec):
        generate_code(spec)


@pytest.mark.parametrize(("spec", "want"), CASES[:6], ids=[f"{s.op}-{i}" for i, (s, _) in enumerate(CASES[:6])])
def test_is_generated_recognises_only_this_generators_exact_code(spec: FeatureSpec, want: list) -> None:
    import json

    from processors.codegen import is_generated

    del want
    spec_json, code = json.dumps(spec.to_dict()), generate_code(spec).code
    assert is_generated(spec_json, code)
    assert not is_generated(spec_json, code + "\n# edited\n")
    assert not is_generated(spec_json, code.replace("def feature", "def feature_"))
    assert not is_generated("{not json", code)
    assert not is_generated(json.dumps({"op": "no_such_op", "columns": ["a"]}), code)


def test_sql_is_parsed_once_per_shape_and_still_rejects_bad_sql() -> None:
    import sqlglot

    from processors.codegen import _check_shape, _check_sql

    _check_shape.cache_clear()
    generate_code(FeatureSpec("ratio", ("a b", "c")))
    generate_code(FeatureSpec("ratio", ('we"ird', "c")))  # a quote inside a name: escaped, same shape
    assert _check_shape.cache_info().misses == 1
    assert _check_shape.cache_info().hits == 1
    with pytest.raises(sqlglot.errors.ParseError):
        _check_sql('SELECT CAST("a" AS DOUBLE + FROM data')


# ---------------------------------------------------------------------------------------------
# Hostile column names: they reach the generated module only as string literals.


def _hostile_cases(name: str) -> list[tuple[FeatureSpec, pl.DataFrame, list]]:
    """(spec, frame, expected on that frame fitted on its first 3 rows) per op, `name` a column."""
    nums = pl.DataFrame({name: [1.0, 2.0, 0.0, None, 4.0], "c": [2.0, 0.0, 1.0, 3.0, -1.0]})
    groups = pl.DataFrame({name: ["x", "y", "x", "z", None], "c": [1.0, 2.0, 0.0, None, 4.0]})
    dates = pl.DataFrame({name: ["2024-01-05", "2023-06-30", "2022-12-31", None, "2020-02-29"]})
    return [
        (FeatureSpec("ratio", (name, "c")), nums, [0.5, N, 0.0, N, -4.0]),
        (FeatureSpec("group_mean", ("c", name)), groups, [0.5, 2.0, 0.5, N, N]),
        (FeatureSpec("freq", (name,)), groups, [2 / 3, 1 / 3, 2 / 3, 0.0, 0.0]),
        (FeatureSpec("date_part", (name,), (("part", "month"),)), dates, [1.0, 6.0, 12.0, N, 2.0]),
        (FeatureSpec("formula", (name, "c"), (("expr", "x0 * 2 + x1"),)), nums, [4.0, 4.0, 1.0, N, 7.0]),
    ]


HOSTILE_OPS = ["ratio", "group_mean", "freq", "date_part", "formula"]


class _Literals(ast.NodeTransformer):
    """Folds the generator's hex form `bytes.fromhex('..').decode(..)` back into a constant."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        inner = node.func.value if isinstance(node.func, ast.Attribute) else None
        if (
            isinstance(node.func, ast.Attribute)
            and node.func.attr == "decode"
            and isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Attribute)
            and inner.func.attr == "fromhex"
            and isinstance(inner.args[0], ast.Constant)
        ):
            return ast.Constant(bytes.fromhex(inner.args[0].value).decode("utf-8", "surrogatepass"))
        return node


def _shape(code: str, name: str) -> str:
    """The module's AST with every string constant equal to `name` replaced by a placeholder."""
    tree = _Literals().visit(ast.parse(code))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == name:
            node.value = "<column>"
    return ast.dump(tree)


@pytest.mark.parametrize("op", HOSTILE_OPS)
@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=HOSTILE_IDS)
def test_hostile_column_names_are_data_only(name: str, op: str) -> None:
    import json

    from processors.codegen import is_generated
    from sandbox.namespace import feature_globals
    from sandbox.policy import check_code

    spec, frame, want = next(case for case in _hostile_cases(name) if case[0].op == op)
    benign = FeatureSpec(spec.op, tuple("plain" if c == name else c for c in spec.columns), spec.params)
    gen = generate_code(spec)
    # parses, passes the sandbox policy, and is the module a benign name gives, name swapped
    assert check_code(gen.code) == [], check_code(gen.code)
    assert _shape(gen.code, name) == _shape(generate_code(benign).code, "plain")
    constants = {n.value for n in ast.walk(_Literals().visit(ast.parse(gen.code))) if isinstance(n, ast.Constant)}
    assert name in constants
    assert is_generated(json.dumps(spec.to_dict()), gen.code)
    # computes what a hand-written reference does, with the sandbox's own builtins
    namespace = feature_globals()
    exec(compile(gen.code, "<feature>", "exec"), namespace)
    out = namespace["feature"](frame, frame.head(3))
    assert close(out.to_list(), want), out.to_list()
    if gen.sql is not None:  # only for printable names, quoted as identifiers
        assert name.isprintable()
        con = duckdb.connect()
        con.register("data", frame.to_arrow())
        con.register("ref", frame.head(3).to_arrow())
        got = sorted((r[0] for r in con.execute(gen.sql).fetchall()), key=lambda v: (v is None, v or 0))
        assert close(got, sorted(want, key=lambda v: (v is None, v or 0))), gen.sql
    else:
        assert not name.isprintable() or len(name) > 1024


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=HOSTILE_IDS)
def test_feature_names_from_hostile_columns_are_plain_identifiers(name: str) -> None:
    import re

    from processors.operators import feature_name

    for spec, *_ in _hostile_cases(name):
        assert re.fullmatch(r"[a-z0-9_]{1,60}", feature_name(spec)), feature_name(spec)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ((("offset", float("inf")),), "not finite"),
        ((("offset", "1); import os; (1"),), "not a number"),
        ((("offset", float("nan")),), "not finite"),
    ],
)
def test_hostile_params_are_refused(params: tuple, fragment: str) -> None:
    with pytest.raises(UnsupportedSpec, match=fragment):
        generate_code(FeatureSpec("log", ("c",), params))


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec("date_part", ("d",), (("part", "month()\nimport os\n"),)),
        FeatureSpec("cyclic_sin", ("d",), (("part", "month"), ("period", "12)); import os; ((1"))),
        FeatureSpec("formula", ("c",), (("expr", "x0 + 1e999"),)),
        FeatureSpec("formula", ("c",), (("expr", "x0 + " * 1000 + "1"),)),
        FeatureSpec("formula", ("c",), (("expr", "x0+" * 600 + "1"),)),
        FeatureSpec("bin", ("c",), (("n_bins", 10**9),)),
    ],
    ids=["part", "period", "inf-constant", "long-formula", "deep-formula", "n-bins"],
)
def test_hostile_params_and_formulas_are_refused(spec: FeatureSpec) -> None:
    with pytest.raises(UnsupportedSpec):
        generate_code(spec)


def test_is_generated_refuses_generated_code_the_policy_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from processors import codegen

    spec = FeatureSpec("ratio", ("a b", "c"))
    code = generate_code(spec).code
    assert codegen.is_generated(json.dumps(spec.to_dict()), code)
    monkeypatch.setattr(codegen, "check_code", lambda code: ["forbidden something"])
    assert not codegen.is_generated(json.dumps(spec.to_dict()), code)
