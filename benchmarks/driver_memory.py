"""The driver's peak memory (its own RSS, sampled) for the demo job's input and a 10x larger one: Ray Data
streams, so it should stay flat. Ray's own processes are not the driver and are not counted.

    .venv/bin/python benchmarks/driver_memory.py [--scale 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from pathlib import Path

import psutil

from batchgen.pipeline import run
from batchgen.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_during(fn) -> tuple[object, int]:
    process, peak, done = psutil.Process(), [0], threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return fn(), peak[0]
    finally:
        done.set()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--copies", type=int, default=10, help="demo prompts per copy of the 1x input")
    args = parser.parse_args()
    lines = (ROOT / "jobs" / "demo-prompts.jsonl").read_text().splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, args.scale):
            source = Path(tmp) / f"in-{scale}.jsonl"
            copies = args.copies * scale
            source.write_text("".join(
                json.dumps({**json.loads(line), "id": f"{c}-{json.loads(line)['id']}"}) + "\n"
                for c in range(copies) for line in lines
            ))
            spec = load_spec(ROOT / "jobs" / "demo.yaml", [
                f"input.uri={source}", f"output.uri={tmp}/out-{scale}", "defaults.max_tokens=24",
                "scaling.batch_size=64",
            ])
            stats, peak = peak_rss_during(lambda: run(spec))
            print(f"input x{scale}: {stats['records']} records, {stats['wall_time_s']} s, driver peak RSS {peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
