"""The adaptive scheme's slow path: nodes whose fixed Heun step leaves the explicit step's accurate range
are integrated again over that step in Heun sub-steps (see README, Physics and numerics)."""
from __future__ import annotations

import numba as nb
import numpy as np

from tvbinv_hpc.sim.params import (
    P_A,
    P_B,
    P_CR,
    P_CV,
    P_DELTA_PT,
    P_ETA,
    P_I,
    P_INV_TAU,
    P_JTAU,
    P_PI2TAU2,
    P_PITAU,
    P_RATE,
    P_SIG_R,
    P_SIG_V,
)

# adaptive scheme: a node whose rate * dt exceeds H_MAX takes sub-steps of rate * h <= H_SUB. In the down
# state rate * dt ~ 0.04, in the up state (r ~ 1.5) ~ 0.1 with excursions to ~0.3, in TVB's own start-up
# transients up to ~0.5: there the fixed Heun step (TVB's) is taken, bit for bit, and is accurate (local
# error ~ (rate dt)^3 / 6 < 4 %); the sub-steps start where V runs away (|V| ~ 30), a step or two before
# the explicit step overflows.
H_MAX = 0.6
H_SUB = 0.2
MAX_SUBSTEPS = 4096


@nb.njit(cache=True, error_model="numpy")
def _substeps(r, V, par, f, crr, cvv, nr, nv_, dt, h_max, max_sub):
    """One step dt of node f from (r, V): the step's noise increment first (r clamped at 0), then the
    deterministic flow with the step's coupling held, in Heun sub-steps h with rate * h <= h_max (at most
    max_sub).  Noise first (a Lie splitting): spread over the sub-steps, a negative r increment would pin r
    at its clamp for the whole step, and with r = 0 the V^2 term blows up; from r >= 0 the flow itself is
    bounded (r grows as exp(2 int V) and its -pi^2 r^2 term turns V around), and resolving its spikes takes
    only ~ 10 ln(V_peak / V_0) sub-steps. Returns (r, V, sub-steps)."""
    inv_tau = par[P_INV_TAU, f]
    r = r + nr
    if r < 0.0:
        r = 0.0
    V = V + nv_
    # a strong input c makes V' = V^2 + c turn over in ~1 / sqrt(c) even from V = 0
    drive = np.sqrt(abs(par[P_ETA, f] + par[P_I, f] + crr + cvv))
    t = 0.0
    cnt = 0
    while dt - t > 1e-12 * dt:
        h = dt - t
        lam = par[P_RATE, f] * max(abs(V), par[P_PITAU, f] * r, drive)
        if lam * h > h_max and cnt < max_sub - 1:
            h = h_max / lam
        d0r = inv_tau * (par[P_DELTA_PT, f] + 2 * V * r)
        d0v = inv_tau * (V * V - par[P_PI2TAU2, f] * (r * r) + par[P_ETA, f] + par[P_JTAU, f] * r
                         + par[P_I, f] + crr + cvv)
        ri = r + h * d0r
        if ri < 0.0:
            ri = 0.0
        vi = V + h * d0v
        d1r = inv_tau * (par[P_DELTA_PT, f] + 2 * vi * ri)
        d1v = inv_tau * (vi * vi - par[P_PI2TAU2, f] * (ri * ri) + par[P_ETA, f] + par[P_JTAU, f] * ri
                         + par[P_I, f] + crr + cvv)
        r = r + (d0r + d1r) * h / 2.0
        if r < 0.0:
            r = 0.0
        V = V + (d0v + d1v) * h / 2.0
        t += h
        cnt += 1
        if not (np.isfinite(r) and np.isfinite(V)):
            break
    return r, V, cnt


@nb.njit(cache=True, inline="always", error_model="numpy")
def stiff(par, f, dt, h_max, r0, v0, r1, v1):
    """Whether node f's fixed step from (r0, v0) to (r1, v1) is outside the explicit step's accurate range:
    rate * dt > h_max at either end, or a non-finite end (an overflow); the flow's rate is
    2 |1/tau| max(|V|, pi |tau| r)."""
    a = par[P_RATE, f] * dt * max(abs(v0), par[P_PITAU, f] * r0)
    b = par[P_RATE, f] * dt * max(abs(v1), par[P_PITAU, f] * r1)
    return not (a <= h_max and b <= h_max)


@nb.njit(cache=True, error_model="numpy")
def redo_stiff(x, x0, par, acct, selfw, z, k, nv, dt, h_max, hbuf, lane, nsub):
    """The adaptive scheme's slow path: nodes whose rate * dt at the step's start or end exceeds h_max are
    integrated again from x0 in sub-steps (rate * h <= H_SUB), with the drive (coupling, noise) of the
    fixed step.
    hbuf: one element of the history precision (self-coupling reads the state as the ring holds it)."""
    for f in range(x.shape[1]):
        r, V = x0[0, f], x0[1, f]
        if not stiff(par, f, dt, h_max, r, V, x[0, f], x[1, f]):
            continue
        hbuf[0] = r
        c_r = par[P_A, f] * np.float64(acct[0, k, f] + selfw[f] * hbuf[0]) + par[P_B, f]
        hbuf[0] = V
        c_v = par[P_A, f] * np.float64(acct[nv - 1, k, f] + selfw[f] * hbuf[0]) \
            + par[P_B, f] if nv == 2 else par[P_B, f]
        nr = par[P_SIG_R, f] * np.float64(z[0, f])
        nv_ = par[P_SIG_V, f] * np.float64(z[1, f])
        x[0, f], x[1, f], cnt = _substeps(r, V, par, f, par[P_CR, f] * c_r, par[P_CV, f] * c_v, nr, nv_, dt,
                                        min(h_max, H_SUB), MAX_SUBSTEPS)
        nsub[lane[f]] += cnt
