"""Nothing left running (`batchgen.cli.reaper`): a process orphaned under `batchgen` (as a Ray worker and
its engine are when their raylet dies) is adopted and ended. Real processes, no Ray."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, os, subprocess, sys, psutil
from batchgen.cli.reaper import adopt_orphans, end_descendants
adopted = adopt_orphans()
# A child that starts a long-lived grandchild and dies at once, as a raylet killed under its workers.
spawn = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
         "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")
orphan = int(subprocess.run([sys.executable, "-c", spawn], capture_output=True, text=True).stdout)
parent = psutil.Process(orphan).ppid()
ended = end_descendants(grace_s=5)
alive = psutil.pid_exists(orphan) and psutil.Process(orphan).status() != psutil.STATUS_ZOMBIE
print(json.dumps({"adopted": adopted, "ours": parent == os.getpid(), "ended": orphan in ended, "alive": alive}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are Linux's")
def test_an_orphaned_grandchild_is_adopted_and_ended():
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == {"adopted": True, "ours": True, "ended": True, "alive": False}
