"""batchgen's tests, one folder per package layer (`tests/core/test_flow.py` tests `batchgen/core/flow.py`);
tests of the whole package (its public front, its layers, the benchmarks' entry) sit here."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
