"""The progress display: snapshots, the plain lines of a log, the bar of a terminal."""

from __future__ import annotations

import io

from batchgen.views.progress import LogProgress, Snapshot, TerminalProgress, display


def snap(records=0, errors=0, tokens=0, total=100, before=0, elapsed=10.0, generating=None, waiting="") -> Snapshot:
    return Snapshot(records=records, errors=errors, completion_tokens=tokens, total=total, done_before=before,
                    elapsed_s=elapsed, generating_s=generating, waiting=waiting)


def test_done_counts_earlier_runs_and_never_passes_the_total():
    assert snap(records=30, before=50).done == 80
    assert snap(records=70, before=50).done == 100  # a retried batch counted twice does not pass 100%


def test_eta_is_at_this_runs_rate_after_engine_start_up():
    # 20 records in the 10 s since the engine was ready: 60 left at 2 records/s, whatever start-up took
    assert snap(records=20, before=20, elapsed=95.0, generating=10.0).eta_s == 30.0
    assert snap(records=0, generating=5.0).eta_s is None and snap(records=5).eta_s is None


def test_plain_line_has_done_of_total_percent_rate_errors_elapsed_and_time_left():
    line = snap(records=1200, errors=2, tokens=31_000, total=5000, elapsed=65.0, generating=10.0).line()
    assert line == "1,200/5,000 records (24%) | 3,100 tokens/s | 2 errors | 1m05s | about 31s left"
    assert snap(elapsed=9.0).line().endswith("| 9s | starting the engine")
    assert snap(generating=3.0, elapsed=4000.0).line().endswith("| 1h06m | first records running")


def test_a_job_the_cluster_cannot_hold_says_what_it_waits_for_in_place_of_time_left():
    waiting = "waiting for a node with 2 more CPU: the job needs 4 CPU (...), the cluster has 2 CPU"
    assert snap(records=40, elapsed=70.0, generating=50.0, waiting=waiting).line().endswith(f"| 1m10s | {waiting}")
    assert snap(elapsed=70.0, waiting=waiting).line().endswith(f"| {waiting}")
    # a log prints the moment the job starts and stops waiting, whatever its period
    out = io.StringIO()
    shown = LogProgress(out, every=3600)
    for snapshot in (snap(records=1, generating=1.0), snap(records=2, generating=2.0, waiting=waiting),
                     snap(records=2, generating=3.0, waiting=waiting), snap(records=3, generating=4.0)):
        shown(snapshot)
    assert [line.endswith(waiting) for line in out.getvalue().splitlines()] == [False, True, False]


def test_a_log_gets_a_line_at_start_when_the_engine_is_ready_every_period_and_at_the_end():
    out = io.StringIO()
    shown = LogProgress(out, every=3600)
    shown(snap(elapsed=1.0))  # first snapshot: printed
    shown(snap(elapsed=3.0))  # within the period: not printed
    shown(snap(records=5, elapsed=5.0, generating=1.0))  # the engine became ready: printed
    shown(snap(records=9, elapsed=7.0, generating=3.0))  # within the period again
    shown.close()  # the last snapshot, once
    shown.close()
    lines = out.getvalue().splitlines()
    assert [line.split(" records")[0].strip() for line in lines] == ["0/100", "5/100", "9/100"]
    every = io.StringIO()
    periodic = LogProgress(every, every=0)
    for n in range(3):
        periodic(snap(records=n, elapsed=n))
    assert len(every.getvalue().splitlines()) == 3


def test_a_terminal_gets_a_bar_with_total_percent_and_time_left():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    shown = display(out)
    assert isinstance(shown, TerminalProgress)
    shown(snap(elapsed=1.0))
    shown(snap(records=37, errors=3, tokens=1094, total=37, elapsed=3.0, generating=2.0))
    shown.close()
    text = out.getvalue()
    assert "37/37" in text and "100%" in text and "547 tok/s" in text and "3 errors" in text and "left" in text
    assert isinstance(display(io.StringIO()), LogProgress)
