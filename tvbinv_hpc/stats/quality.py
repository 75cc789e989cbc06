"""Quality check of simulated BOLD: is it dominated by a start-up transient common to all regions?

A Balloon model started away from its steady state (TVB's BalloonModel starts at rest while the neural
state is already active), or a transient shorter than its settling, leaves the same relaxation from the
first sample on in every region; FC then measures that shared relaxation, not the network's fluctuations.
The check: how much of each region's (standardised) BOLD lies along the global signal's part that relaxes
from the first sample with the Balloon's time scales, exp(-t / tau) for tau = 1x and 3x its signal decay
tau_s, averaged over regions (so one region switching state cannot dominate). Slower curves would also fit a
state switch of many regions half-way through a short run, which is dynamics, not an artefact.
"""
from __future__ import annotations

import numpy as np

from tvbinv_hpc.sim.bold import TAU_S

# Measured on the quickstart (42 s of BOLD at TR 1 s): 48 prior draws 0.01-0.13, the same after a rest
# start and a 10 s transient (FC mean 0.7) 0.34-0.7.
TREND_THRESHOLD = 0.25
TIME_SCALES_S = (TAU_S, 3.0 * TAU_S)


def startup_fraction(bold: np.ndarray, tr_ms: float) -> np.ndarray:
    """Per simulation, the fraction of BOLD variance in a start-up relaxation common to all regions.

    bold (B, T, N) or (T, N) sampled every ``tr_ms``: the mean over regions of the squared correlation with
    the common start-up relaxation; NaN where a region's series is not finite or constant.
    """
    y = np.asarray(bold, dtype=np.float64)
    single = y.ndim == 2
    y = y[None] if single else y
    t = np.arange(y.shape[1]) * tr_ms / 1000.0
    out = np.full(y.shape[0], np.nan)
    if t.size > len(TIME_SCALES_S) + 1:
        basis = np.column_stack([np.ones_like(t)] + [np.exp(-t / tau) for tau in TIME_SCALES_S])
        q, _ = np.linalg.qr(basis)
        for b in range(y.shape[0]):
            out[b] = _fraction(y[b] - y[b].mean(axis=0), q)
    return out[0] if single else out


def _fraction(yb: np.ndarray, q: np.ndarray) -> float:
    ss = np.sum(yb * yb, axis=0)
    if not np.all(np.isfinite(ss)) or np.any(ss == 0):
        return np.nan
    z = yb / np.sqrt(ss)                        # unit-norm regions: each counts the same
    trend = q @ (q.T @ z.mean(axis=1))          # the global signal's start-up part (zero mean)
    norm = float(np.sqrt(trend @ trend))
    if norm == 0:
        return 0.0
    proj = (trend / norm) @ z                   # each region's correlation with it
    return float(np.mean(proj * proj))


def dominated_by_startup(bold: np.ndarray, tr_ms: float) -> np.ndarray:
    """Boolean per simulation: startup_fraction above TREND_THRESHOLD."""
    return np.asarray(startup_fraction(bold, tr_ms) > TREND_THRESHOLD)
