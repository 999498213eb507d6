"""From a model's formula to a typed spec, and one canonical text per computation.

A model writes `weight / (height / 100) ** 2` (column names bare or in backticks);
`formula_spec` turns it into `FeatureSpec("formula", (weight, height), expr="x0 / (x1 / 100) ** 2")`,
which the code generator accepts or refuses (`UnsupportedSpec`). `canonical` gives the
same text for specs that compute the same thing however they were written
(`ratio(a, b)` and `a / b`; `a * b` and `b * a`), so proposals deduplicate across proposers.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

from domain.spec import FITTED_OPS, STATELESS_OPS, FeatureSpec
from processors.codegen import FUNCS, UnsupportedSpec, generate_code
from processors.operators import sanitize, spec_key

GRAMMAR_OPS = tuple(sorted((STATELESS_OPS | FITTED_OPS) - {"formula"}))
_TICKED = re.compile(r"`([^`]+)`")


def formula_spec(formula: str, columns: Iterable[str], label: str) -> FeatureSpec:
    """The spec of `formula` over the table's `columns`, checked by the code generator."""
    known = list(columns)
    names: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in known:
            raise UnsupportedSpec(f"{name!r} is not a column of the table")
        names.setdefault(f"_col{len(names)}_", name)
        return next(k for k, v in names.items() if v == name)

    text = _TICKED.sub(placeholder, formula.strip())
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise UnsupportedSpec(f"formula {formula!r} does not parse: {error.msg}") from None
    used: list[str] = []

    class Rename(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            node.args = [self.visit(a) for a in node.args]
            return node

        def visit_Name(self, node: ast.Name) -> ast.AST:
            column = names.get(node.id, node.id if node.id in known else None)
            if column is None:
                raise UnsupportedSpec(f"{node.id!r} in {formula!r} is not a column of the table")
            if column not in used:
                used.append(column)
            return ast.copy_location(ast.Name(id=f"x{used.index(column)}", ctx=ast.Load()), node)

    expr = ast.unparse(Rename().visit(tree))
    if not used:
        raise UnsupportedSpec(f"formula {formula!r} uses no column")
    spec = FeatureSpec("formula", tuple(used), tuple(sorted({"expr": expr, "label": sanitize(label)[:80]}.items())))
    generate_code(spec)  # raises UnsupportedSpec for anything the generator cannot write safely
    return spec


def grammar_spec(op: str, columns: Iterable[str], params: dict[str, object], label: str | None = None) -> FeatureSpec:
    """A spec of AFEP's typed grammar, checked by the code generator."""
    if op not in GRAMMAR_OPS:
        raise UnsupportedSpec(f"op {op!r} is not in the grammar ({', '.join(GRAMMAR_OPS)})")
    clean = {k: v for k, v in params.items() if k not in ("label", "expr")}
    spec = FeatureSpec(op, tuple(columns), tuple(sorted(clean.items())))
    generate_code(spec)
    return spec


def canonical(spec: FeatureSpec) -> str:
    """One text per computation: arithmetic specs as a normalised expression over column names."""
    expression = _arithmetic(spec)
    if expression is None:
        return spec_key(spec)
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return spec_key(spec)
    return "expr:" + _normal(tree, spec.columns)


def _arithmetic(spec: FeatureSpec) -> str | None:
    n = len(spec.columns)
    if spec.op == "formula":
        return str(spec.param("expr", ""))
    if spec.op == "ratio" and n == 2:
        return "x0 / x1"
    if spec.op == "diff" and n == 2:
        return "x0 - x1"
    if spec.op == "product" and n == 2:
        return "x0 * x1"
    if spec.op == "sum" and n >= 2:
        return " + ".join(f"x{i}" for i in range(n))
    if spec.op == "square" and n == 1:
        return "x0 * x0"
    if spec.op == "reciprocal" and n == 1:
        return "1 / x0"
    if spec.op in ("log", "sqrt", "abs") and n == 1:
        offset = float(spec.param("offset", 0.0) or 0.0)
        return f"{spec.op}(x0 + {offset!r})" if offset else f"{spec.op}(x0)"
    return None


def _normal(node: ast.expr, columns: tuple[str, ...]) -> str:
    if isinstance(node, ast.Name):
        index = int(node.id[1:]) if node.id[1:].isdigit() else -1
        return repr(columns[index]) if 0 <= index < len(columns) else node.id
    if isinstance(node, ast.Constant):
        return repr(float(node.value)) if isinstance(node.value, int | float) else repr(node.value)
    if isinstance(node, ast.UnaryOp):
        return f"({type(node.op).__name__} {_normal(node.operand, columns)})"
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Add | ast.Mult):  # commutative and associative: flatten and sort
            kind = type(node.op)
            terms = sorted(_normal(t, columns) for t in _flatten(node, kind))
            return f"({kind.__name__} {' '.join(terms)})"
        return f"({type(node.op).__name__} {_normal(node.left, columns)} {_normal(node.right, columns)})"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCS:
        return f"({node.func.id} {' '.join(_normal(a, columns) for a in node.args)})"
    return ast.dump(node)


def _flatten(node: ast.expr, kind: type) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, kind):
        return [*_flatten(node.left, kind), *_flatten(node.right, kind)]
    return [node]
