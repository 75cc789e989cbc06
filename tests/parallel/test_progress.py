"""Rank 0's progress lines: counts across sessions, and no repeated final line."""
from __future__ import annotations

import logging

from tvbinv_hpc.parallel.progress import Progress


def test_final_line_is_not_repeated(caplog):
    bar = Progress(10, 4, mode="log", interval=0.0, already_diverged=1)
    with caplog.at_level(logging.INFO, logger="tvbinv_hpc"):
        bar.update(6, 2)              # the last in-loop line: all done
        bar.update(6, 2, force=True)  # the session's closing line would say the same
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("10/10 sims done, 3 diverged, 0 pending")
    with caplog.at_level(logging.INFO, logger="tvbinv_hpc"):
        bar.update(6, 3, force=True)  # new counts: printed
    assert len(caplog.records) == 2
