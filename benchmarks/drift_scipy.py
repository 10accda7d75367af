"""The baseline users write by hand: pandas + a scipy test per column (KS for numbers, chi-square for categories).

Run: python benchmarks/drift_scipy.py REFERENCE.parquet CURRENT.parquet  → JSON list of drifted columns (p < 0.05).
"""

from __future__ import annotations

import json
import sys

import pandas as pd
from scipy import stats


def main() -> None:
    reference = pd.read_parquet(sys.argv[1])
    current = pd.read_parquet(sys.argv[2])
    drifted = []
    for column in reference.columns:
        if pd.api.types.is_numeric_dtype(reference[column]):
            p = stats.ks_2samp(reference[column].dropna(), current[column].dropna()).pvalue
        else:
            table = pd.concat([reference[column].value_counts(), current[column].value_counts()], axis=1).fillna(0)
            p = stats.chi2_contingency(table.T.to_numpy())[1]
        if p < 0.05:
            drifted.append(column)
    print(json.dumps(drifted))


if __name__ == "__main__":
    main()
