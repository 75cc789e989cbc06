"""Timing of the summary statistics on synthetic BOLD (a benchmark, never a test)."""
from __future__ import annotations

import time

import numpy as np

from tvbinv_hpc.stats.fc import fc
from tvbinv_hpc.stats.fcd import fcd
from tvbinv_hpc.stats.featureset import DEFAULT_FEATURES, build_features
from tvbinv_hpc.stats.hemispheres import RegionInfo

__all__ = ["bench_features"]


def _best(fn, repeat: int) -> float:
    fn()  # JIT compile / warm caches outside the timing
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return float(best)


def bench_features(B: int = 64, T: int = 150, N: int = 76, *, repeat: int = 3, win_len: int = 20,
                   tr_ms: float = 2000.0) -> dict:
    """Seconds per batch (best of ``repeat``, JIT excluded) for ``fc``, ``fcd`` and DEFAULT_FEATURES.

    BOLD is a smooth correlated random process (AR(1) with a shared component), float32 as the simulator
    emits.  Keys: fc_s, fcd_s, features_s, per_sim_ms, and the shape and feature count.
    """
    rng = np.random.default_rng(0)
    e = rng.standard_normal((B, T, N)) + 0.5 * rng.standard_normal((B, T, 1))
    bold = np.empty_like(e)
    bold[:, 0] = e[:, 0]
    for t in range(1, T):
        bold[:, t] = 0.8 * bold[:, t - 1] + e[:, t]
    bold = bold.astype(np.float32)
    # Synthetic regions have no labels: pair them by index halves (the cost is the same for any pairing).
    fs = build_features(DEFAULT_FEATURES, n_regions=N, tr_ms=tr_ms, regions=RegionInfo(stated="halves"))
    t_fc = _best(lambda: fc(bold), repeat)
    t_fcd = _best(lambda: fcd(bold, win_len, 1), repeat)
    t_all = _best(lambda: fs.compute(bold), repeat)
    return {"B": B, "T": T, "N": N, "k": len(fs.names), "fc_s": t_fc, "fcd_s": t_fcd,
            "features_s": t_all, "per_sim_ms": 1e3 * t_all / B}


if __name__ == "__main__":
    print(bench_features())
