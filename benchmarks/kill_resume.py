"""A 2,000-record job whose driver is SIGKILLed twice mid-run, then run to completion: how many records
were redone, and the final counts (every id exactly once).

    .venv/bin/python benchmarks/kill_resume.py [--records 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from batchgen.toy import corpus

ROOT = Path(__file__).resolve().parents[1]


def committed_ids(out: Path) -> list[str]:
    return [i for f in sorted(out.glob("*.parquet")) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in.jsonl").write_text("".join(
            json.dumps({"id": f"r{i}", "prompt": corpus.steps_prompt(corpus.WORDS[i % 30]), "max_thinking_tokens": 8})
            + "\n" for i in range(args.records)))
        spec = yaml.safe_load((ROOT / "jobs" / "demo.yaml").read_text())
        spec.update(input={"uri": str(tmp / "in.jsonl")}, output={"uri": str(tmp / "out"), "min_rows_per_file": 50})
        spec["defaults"]["max_tokens"] = 24
        spec["scaling"]["batch_size"] = 32
        (tmp / "job.yaml").write_text(yaml.safe_dump(spec))
        command = [sys.executable, "-m", "batchgen.cli.app", "run", str(tmp / "job.yaml")]
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        generated = 0
        for kill_at in (0.25, 0.6):
            before = len(committed_ids(tmp / "out"))
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    text=True, start_new_session=True)
            while len(committed_ids(tmp / "out")) < kill_at * args.records:
                time.sleep(0.5)
            proc.send_signal(signal.SIGKILL)
            _, stderr = proc.communicate()
            time.sleep(3)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the local Ray the driver had started
            except ProcessLookupError:
                pass
            done = [int(n) for n in re.findall(r"(\d+) records done", stderr)]
            after = len(committed_ids(tmp / "out"))
            generated += max(done, default=0)
            print(f"killed at {after} committed ({after - before} this run); replicas had reported "
                  f"at least {max(done, default=0)} generated this run")
        final = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        stats = json.loads((tmp / "out" / "_stats.json").read_text())
        ids = committed_ids(tmp / "out")
        generated += stats["records"] - stats["skipped_already_done"]
        print(final.stdout.strip().splitlines()[-1])
        print(f"final: {len(ids)} rows, {len(set(ids))} distinct ids of {args.records}; skipped on the last run "
              f"{stats['skipped_already_done']}; generated over all runs >= {generated}; "
              f"redone >= {generated - args.records}")


if __name__ == "__main__":
    main()
