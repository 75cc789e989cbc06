"""Rank 0's progress display: done / diverged / pending, simulations per second and ETA for all ranks."""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("tvbinv_hpc")


class Progress:
    def __init__(self, total: int, already: int, mode: str = "auto", interval: float = 10.0, what: str = "sims",
                 already_diverged: int = 0):
        """``already`` / ``already_diverged``: rows done / diverged in earlier sessions (read from the store),
        so that a restarted job counts both across sessions."""
        self.total, self.already, self.what = total, already, what
        self.already_diverged = already_diverged
        self.t0 = self.last = time.monotonic()
        self.interval = interval
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode = mode
        self.printed: tuple[int, int] | None = None   # the counts of the last log line (no repeats)
        self.bar: Any = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=already, unit=what, dynamic_ncols=True)

    def update(self, done: int, diverged: int, force: bool = False) -> None:
        """``done``/``diverged``: rows finished in this session (all ranks); shown with earlier sessions'."""
        now = time.monotonic()
        if self.bar is not None:
            self.bar.n = self.already + done
            self.bar.set_postfix(diverged=self.already_diverged + diverged, refresh=False)
            self.bar.refresh()
            return
        if self.mode != "log" or (not force and now - self.last < self.interval):
            return
        if force and self.printed == (done, diverged):   # the final line would repeat the last one
            return
        self.last, self.printed = now, (done, diverged)
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        pending = self.total - self.already - done
        eta = pending / rate if rate > 0 else float("inf")
        log.info("%d/%d %s done, %d diverged, %d pending, %.2f %s/s, elapsed %s, ETA %s",
                 self.already + done, self.total, self.what, self.already_diverged + diverged, pending, rate, self.what,
                 _hms(elapsed), _hms(eta))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
