"""batchgen's tests, one folder per package layer (`tests/core/test_flow.py` tests `batchgen/core/flow.py`);
tests of the whole package (its public front, its layers, the benchmarks' entry) sit here."""

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository


def free_port() -> int:
    """A loopback TCP port nothing holds at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
