"""UCI Adult (census income), shipped compressed with labkit: a real table for DP queries."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

__all__ = ["ADULT_COLUMNS", "load_adult"]

ADULT_PATH = Path(__file__).resolve().parents[1] / "datasets" / "adult" / "adult.data.gz"
ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country", "income",
)  # fmt: skip
_NUMERIC = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}


def load_adult() -> dict[str, np.ndarray]:
    """Return the 32,561 UCI Adult training records as columns (int64 or str arrays)."""
    with gzip.open(ADULT_PATH, "rt", encoding="ascii") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if len(r) == len(ADULT_COLUMNS)]
    cols = list(zip(*rows, strict=True))
    return {
        name: np.array(col, dtype=np.int64 if name in _NUMERIC else str)
        for name, col in zip(ADULT_COLUMNS, cols, strict=True)
    }
