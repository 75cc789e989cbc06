"""Balloon-Windkessel BOLD (TVB's ``analyzers.fmri_balloon.BalloonModel``: Stephan 2007, RBM coefficients,
nonlinear output, HeunDeterministic, no input demeaning), driven by the temporal average of r.

Time units: the Balloon constants are in seconds.  The neural clock is in model units; one unit is
``ms_per_unit`` ms (TVB: 1, tvb-inversion's MPR: 10).  A temporal average of period ``p`` units is a
Balloon step of ``p * ms_per_unit / 1000`` s.  Getting this factor wrong makes BOLD 10x-1000x too fast.

Indexing as TVB: input sample k drives the Balloon step k-1 -> k (input 0 is never used); sample 0 is the
resting state (y = 0).  The BOLD series is y[0], y[m], y[2m], ... with m = TR / (p * ms_per_unit).
"""
from __future__ import annotations

import numba as nb
import numpy as np

from tvbinv_hpc.sim.vmath import vexp, vlog

TAU_S = 1.54      # s, signal decay
TAU_F = 1.44      # s, autoregulation
TAU_O = 0.98      # s, transit time
ALPHA = 0.32      # Grubb's exponent
TE = 0.04         # s, echo time
V0 = 4.0          # resting venous volume (%)
E0 = 0.4          # resting oxygen extraction fraction
EPSILON = 0.5     # intra/extravascular signal ratio
NU_0 = 40.3       # Hz, frequency offset
R_0 = 25.0        # Hz, intravascular relaxation slope
K1 = 4.3 * NU_0 * E0 * TE           # RBM coefficients (TVB's compute_derived_parameters, RBM=True)
K2 = EPSILON * R_0 * E0 * TE
K3 = 1 - EPSILON
_LN_1ME0 = float(np.log(1.0 - E0))


@nb.njit(cache=True, inline="always", error_model="numpy")
def _dfun(s, f, v, q, x):
    # powers via exp/log polynomials (vmath): libm pow would keep the loop scalar (4 calls per node and step)
    vpow = vexp(vlog(v) * (1.0 / ALPHA))
    ds = x - (1.0 / TAU_S) * s - (1.0 / TAU_F) * (f - 1)
    dv = (1.0 / TAU_O) * (f - vpow)
    dq = (1.0 / TAU_O) * ((f * (1.0 - vexp(_LN_1ME0 / f)) / E0) - vpow * (q / v))
    return ds, s, dv, dq


@nb.njit(cache=True, inline="always", error_model="numpy")
def balloon_step(state: np.ndarray, x: np.ndarray, dt: float) -> None:
    """One Heun step (dt in s) of the Balloon state (4, n) = (s, f, v, q) in place, input x (n,)."""
    for k in range(x.size):
        s, f, v, q = state[0, k], state[1, k], state[2, k], state[3, k]
        ds0, df0, dv0, dq0 = _dfun(s, f, v, q, x[k])
        ds1, df1, dv1, dq1 = _dfun(s + dt * ds0, f + dt * df0, v + dt * dv0, q + dt * dq0, x[k])
        state[0, k] = s + (ds0 + ds1) * dt / 2.0
        state[1, k] = f + (df0 + df1) * dt / 2.0
        state[2, k] = v + (dv0 + dv1) * dt / 2.0
        state[3, k] = q + (dq0 + dq1) * dt / 2.0


@nb.njit(cache=True, inline="always", error_model="numpy")
def balloon_step2(state: np.ndarray, x: np.ndarray, dt: float, tmp: np.ndarray) -> None:
    """balloon_step in two loops, predictor then corrector, through tmp (8, n): the same operations (same
    results, bit for bit), but each iteration is half as long a dependency chain (~10 % faster)."""
    for k in range(x.size):
        s, f, v, q = state[0, k], state[1, k], state[2, k], state[3, k]
        ds0, df0, dv0, dq0 = _dfun(s, f, v, q, x[k])
        tmp[0, k], tmp[1, k], tmp[2, k], tmp[3, k] = ds0, df0, dv0, dq0
        tmp[4, k], tmp[5, k] = s + dt * ds0, f + dt * df0
        tmp[6, k], tmp[7, k] = v + dt * dv0, q + dt * dq0
    for k in range(x.size):
        ds1, df1, dv1, dq1 = _dfun(tmp[4, k], tmp[5, k], tmp[6, k], tmp[7, k], x[k])
        state[0, k] = state[0, k] + (tmp[0, k] + ds1) * dt / 2.0
        state[1, k] = state[1, k] + (tmp[1, k] + df1) * dt / 2.0
        state[2, k] = state[2, k] + (tmp[2, k] + dv1) * dt / 2.0
        state[3, k] = state[3, k] + (tmp[3, k] + dq1) * dt / 2.0


@nb.njit(cache=True, inline="always", error_model="numpy")
def bold_signal(state: np.ndarray, k: int) -> float:
    q, v = state[3, k], state[2, k]
    return V0 * (K1 * (1.0 - q) + K2 * (1.0 - q / v) + K3 * (1.0 - v))


@nb.njit(cache=True, error_model="numpy")
def balloon_steady(state: np.ndarray, k: int, x: float) -> None:
    """Node k of state (4, n) to the fixed point of the Balloon equations for a constant input x >= 0:
    s = 0, f = 1 + tau_f x, v = f^alpha, q = v (1 - (1 - E0)^(1/f)) / E0 (ds = df = dv = dq = 0)."""
    f = 1.0 + TAU_F * max(x, 0.0)
    v = vexp(vlog(f) * ALPHA)
    state[0, k] = 0.0
    state[1, k] = f
    state[2, k] = v
    state[3, k] = v * (1.0 - vexp(_LN_1ME0 / f)) / E0


# The slowest mode of the Balloon equations linearised at rest: the (s, f) oscillator with
# lambda^2 + lambda / tau_s + 1 / tau_f = 0, damped at rate 1 / (2 tau_s).  A perturbation of the start
# decays by e^-5 (< 1 %) in SETTLE_S seconds: the default BOLD transient after the neural warm-up.
SLOWEST_S = 2.0 * TAU_S
SETTLE_S = 5.0 * SLOWEST_S


@nb.njit(cache=True, error_model="numpy")
def _balloon_series(x, dt):
    nt, n = x.shape
    state = np.ones((4, n))
    state[0] = 0.0
    y = np.zeros((nt, n))
    for t in range(1, nt):
        balloon_step(state, x[t], dt)
        for k in range(n):
            y[t, k] = bold_signal(state, k)
    return y


def balloon_bold(x: np.ndarray, sample_period_ms: float) -> np.ndarray:
    """BOLD (T, N) of a whole neural series x (T, N) sampled every ``sample_period_ms`` ms, as TVB's
    BalloonModel (validation and post-hoc use; the engine integrates the same steps online)."""
    return _balloon_series(np.ascontiguousarray(x, dtype=np.float64), sample_period_ms / 1000.0)
