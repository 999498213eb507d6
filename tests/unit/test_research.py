import json

import polars as pl

from domain.spec import FeatureSpec
from processors.knowledge import load_knowledge_base
from processors.profiling import profile_table
from processors.research import Research, research


def concrete() -> pl.DataFrame:
    rows = 60
    return pl.DataFrame(
        {
            "cement": [200.0 + i * 5 for i in range(rows)],
            "blast_furnace_slag": [float(i % 7) * 20 for i in range(rows)],
            "fly_ash": [float(i % 5) * 30 for i in range(rows)],
            "water": [150.0 + i % 40 for i in range(rows)],
            "age": [float(1 + i % 90) for i in range(rows)],
            "strength": [10.0 + (i * 37) % 23 + (i % 3) for i in range(rows)],
        }
    )


def test_knowledge_base_has_required_domains_with_sources() -> None:
    kb = load_knowledge_base()
    names = {d.name for d in kb.domains}
    assert {"credit", "medical", "retail", "insurance", "mobility", "real_estate", "materials"} <= names
    for domain in kb.domains:
        for t in domain.transformations:
            assert t.source.startswith("https://"), t.name
            assert 0 < t.prior <= 1


def test_concrete_detects_materials_and_water_cement_ratio() -> None:
    p = profile_table(concrete(), "strength", "regression")
    r = research(p, load_knowledge_base())
    assert r.domains[0].domain == "materials" and r.domains[0].confidence > 0.5
    specs = {f.name: f.spec for f in r.features}
    assert specs["water_cement_ratio"].op == "ratio"
    assert specs["water_cement_ratio"].columns == ("water", "cement")
    assert specs["water_binder_ratio"].columns == ("water", "cement", "blast_furnace_slag", "fly_ash")
    finding = r.finding("cement")
    assert finding is not None and finding.fits is True and finding.source
    assert "water_cement_ratio" in finding.transformations
    assert all(u.startswith("https://") for u in r.sources)


def test_out_of_range_values_are_reported() -> None:
    df = concrete().with_columns(pl.col("water") * 100)  # grams, not kg
    r = research(profile_table(df, "strength", "regression"), load_knowledge_base())
    finding = r.finding("water")
    assert finding is not None and finding.fits is False


def test_target_never_bound_and_unknown_domain_gives_nothing() -> None:
    df = pl.DataFrame(
        {
            "Gr_Liv_Area": [float(800 + i * 10) for i in range(50)],
            "Year_Built": [1950 + i for i in range(50)],
            "Year_Sold": [2008 + i % 3 for i in range(50)],
            "Sale_Price": [1e5 + i * 1e3 for i in range(50)],
        }
    )
    r = research(profile_table(df, "Sale_Price", "regression"), load_knowledge_base())
    assert all("Sale_Price" not in f.spec.columns for f in r.features)
    assert FeatureSpec("diff", ("Year_Sold", "Year_Built")).columns in {f.spec.columns for f in r.features}
    odd = pl.DataFrame({"foo": [1.0, 2, 3, 4] * 5, "bar": [3.0, 1, 2, 2] * 5, "y": [0, 1] * 10})
    assert research(profile_table(odd, "y", "auto"), load_knowledge_base()).features == ()


def test_research_round_trips_json() -> None:
    r = research(profile_table(concrete(), "strength", "regression"), load_knowledge_base())
    assert Research.from_dict(json.loads(json.dumps(r.to_dict()))) == r
