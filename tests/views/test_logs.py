"""Quiet by default: what is written to fds 1 and 2 (C++ code, child processes, Python) goes to the log file;
batchgen's own lines reach the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

from batchgen.views.logs import captured


def test_everything_but_batchgens_own_lines_goes_to_the_log_file(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("BATCHGEN_LOG_DIR", str(tmp_path / "logs"))
    with captured("job") as logs:
        os.write(2, b"written to fd 2, as Ray's C++ core worker does\n")
        subprocess.run([sys.executable, "-c", "print('a child process, as ray.init starts')"], check=True)
        # the process's own stderr object (pytest swaps `sys.stderr`; Ray's log handlers hold the original)
        print("Python's stderr, as Ray's loggers", file=sys.__stderr__, flush=True)
        print("a progress line", file=logs.terminal)
    assert logs.path.parent == tmp_path / "logs" and logs.path.name.startswith("job-")
    log = logs.path.read_text()
    for line in ("written to fd 2", "a child process", "Python's stderr"):
        assert line in log
    seen = capfd.readouterr()
    assert "a progress line" in seen.err and "fd 2" not in seen.err + seen.out and "child" not in seen.out
    assert "(full log: " in logs.hint() and str(logs.path) in logs.hint()
    os.write(2, b"after the block\n")  # fds are restored
    assert "after the block" in capfd.readouterr().err and "after the block" not in logs.path.read_text()


def test_verbose_leaves_the_terminal_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHGEN_LOG_DIR", str(tmp_path / "logs"))
    with captured("job", verbose=True) as logs:
        pass
    assert logs.path is None and logs.hint() == "" and not (tmp_path / "logs").exists()
