"""Evidently's data drift preset on the same files (runs in its own virtualenv: Evidently 0.7 needs pandas < 3).

Run: .cache/bench-evidently/bin/python benchmarks/drift_evidently.py REFERENCE.parquet CURRENT.parquet
→ JSON list of the columns Evidently reports as drifted.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

P_VALUE_METHODS = ("K-S", "chi-square", "Z-test", "p_value", "Anderson", "Cramer", "Fisher", "Epps", "T-Test")


def main() -> None:
    reference = pd.read_parquet(sys.argv[1])
    current = pd.read_parquet(sys.argv[2])
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        is_p_value = any(marker in config["method"] for marker in P_VALUE_METHODS)
        if (value < threshold) if is_p_value else (value >= threshold):
            drifted.append(config["column"])
    print(json.dumps(drifted))


if __name__ == "__main__":
    main()
