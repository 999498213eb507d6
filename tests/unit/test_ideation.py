import re

import numpy as np
import polars as pl
import pytest

from domain.spec import FeatureSpec
from processors.codegen import generate_code
from processors.ideation import Feedback, Proposal, propose
from processors.knowledge import load_knowledge_base
from processors.operators import spec_key, total_candidates
from processors.profiling import profile_table
from processors.research import research


def table() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 500
    income = rng.lognormal(5, 0.4, n)
    debt = rng.lognormal(4, 0.8, n)
    amount = rng.lognormal(7, 0.5, n)
    price = amount * rng.uniform(1.0, 2.0, n)
    job = rng.choice(["fixed", "freelance", "partime"], n)
    score = debt / income + amount / price + (job == "partime") * 0.2
    return pl.DataFrame(
        {
            "Income": income,
            "Debt": debt,
            "Amount": amount,
            "Price": price,
            "Job": job,
            "mean radius": rng.normal(10, 2, n),
            "Status": np.where(score > np.quantile(score, 0.7), "bad", "good"),
        }
    )


def setup() -> tuple:
    df = table()
    p = profile_table(df, "Status", "auto")
    return df, p, research(p, load_knowledge_base())


def test_round_one_puts_knowledge_first_then_operator_search() -> None:
    df, p, r = setup()
    props = propose(p, r, round=1, seen=set(), feedback=[], budget=20, seed=0)
    assert len(props) == 20
    kinds = [x.proposer for x in props]
    assert kinds[0] == "knowledge_base" and "operator_search" in kinds
    assert kinds.index("operator_search") > max(i for i, k in enumerate(kinds) if k == "knowledge_base")
    by_name = {x.name: x for x in props}
    assert by_name["debt_to_income"].spec == FeatureSpec("ratio", ("Debt", "Income"), (("label", "debt_to_income"),))
    assert by_name["debt_to_income"].domain_sources[0].startswith("https://")
    assert len({x.name for x in props}) == len(props)
    assert len({spec_key(x.spec) for x in props}) == len(props)
    for x in props:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", x.name), x.name
        assert 0 <= x.expected_value <= 1 and "Status" not in x.spec.columns
        out = _run(x, df)
        assert out.len() == df.height and out.dtype == pl.Float64


def test_no_single_column_monotone_transform_ranks_high() -> None:
    _, p, r = setup()
    props = propose(p, r, round=1, seen=set(), feedback=[], budget=15, seed=0)
    assert all(x.spec.op not in {"log", "sqrt", "rank", "square"} for x in props)


def test_deterministic_budget_and_seen() -> None:
    _, p, r = setup()
    a = propose(p, r, round=1, seen=set(), feedback=[], budget=12, seed=7)
    b = propose(p, r, round=1, seen=set(), feedback=[], budget=12, seed=7)
    assert a == b
    seen = {a[0].name, spec_key(a[1].spec)}
    c = propose(p, r, round=1, seen=seen, feedback=[], budget=5, seed=7)
    assert len(c) == 5 and a[0].name not in {x.name for x in c}
    assert spec_key(a[1].spec) not in {spec_key(x.spec) for x in c}
    assert propose(p, r, round=1, seen=set(), feedback=[], budget=0, seed=7) == []


def test_feedback_exploits_helpful_features() -> None:
    df, p, r = setup()
    first = propose(p, r, round=1, seen=set(), feedback=[], budget=10, seed=0)
    good = next(x for x in first if x.name == "debt_to_income")
    bad = next(x for x in first if x.name != "debt_to_income")
    fb = [Feedback(good.spec, 0.02, 0.001, True), Feedback(bad.spec, -0.01, 0.7, False)]
    second = propose(p, r, round=2, seen={x.name for x in first}, feedback=fb, budget=10, seed=0)
    assert second[0].proposer == "feedback"
    assert any({"Debt", "Income"} <= set(x.spec.columns) for x in second if x.proposer == "feedback")
    assert not {x.name for x in second} & {x.name for x in first}
    for x in second:
        assert _run(x, df).len() == df.height


def test_odd_column_names_are_sanitised_and_quoted() -> None:
    rng = np.random.default_rng(5)
    radius = rng.normal(10, 2, 200)
    df = pl.DataFrame(
        {
            "mean radius": radius,
            "worst 'area'": radius * rng.uniform(2, 3, 200),
            "y": (radius + rng.normal(0, 2, 200) > 10).astype(int),
        }
    )
    p = profile_table(df, "y", "auto")
    props = propose(p, research(p, load_knowledge_base()), round=1, seen=set(), feedback=[], budget=10, seed=0)
    assert props and all(" " not in x.name and "'" not in x.name for x in props)
    for x in props:
        assert _run(x, df).len() == df.height


def test_totals_add_columns_of_one_unit_and_one_magnitude_only() -> None:
    rng = np.random.default_rng(3)
    n = 400
    wheat, barley, oats = rng.gamma(4, 250, n), rng.gamma(1, 300, n), rng.gamma(3, 200, n)
    df = pl.DataFrame(
        {
            "Wheat_Kg": wheat,
            "BarleyKg": barley,  # camelCase: the same last word
            "Oats_kg": oats,
            "Seed_Kg": rng.gamma(0.5, 2.0, n),  # two orders of magnitude smaller: not a part
            "Full_Bath": rng.integers(1, 4, n).astype(float),
            "Half_Bath": rng.integers(0, 2, n).astype(float),  # two baths: the pair sums cover it
            "Year_Built": rng.integers(1950, 2010, n).astype(float),
            "Year_Sold": rng.integers(2006, 2011, n).astype(float),
            "Yr_Remod": rng.integers(1950, 2010, n).astype(float),  # years add up to nothing
            "revenue": wheat + barley + oats + rng.normal(0, 100, n),
        }
    )
    p = profile_table(df, "revenue", "auto")
    totals = [x for x in propose(p, research(p, load_knowledge_base()), round=1, seen=set(), feedback=[],
                                 budget=200, seed=0) if x.spec.op == "sum" and len(x.spec.columns) > 2]  # fmt: skip
    assert [(x.name, x.spec.columns) for x in totals] == [("total_kg", ("BarleyKg", "Oats_kg", "Wheat_Kg"))]
    assert _run(totals[0], df).to_numpy() == pytest.approx(wheat + barley + oats)
    # a research unit that does not add up (ages in years, levels, ratios) makes no total either
    years = {c: "years" for c in ("Wheat_Kg", "BarleyKg", "Oats_kg")}
    assert [c.spec.columns for c in total_candidates(p, years)] == []


def test_proposal_round_trip() -> None:
    _, p, r = setup()
    x = propose(p, r, round=1, seen=set(), feedback=[], budget=1, seed=0)[0]
    assert Proposal.from_dict(x.to_dict()) == x


def _run(x: Proposal, df: pl.DataFrame) -> pl.Series:
    ns: dict = {}
    exec(generate_code(x.spec).code, ns)
    return ns["feature"](df, df)
