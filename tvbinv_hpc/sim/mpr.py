"""Numba kernel: a few MPR simulations ("lanes") on one connectome, stochastic Heun with delayed linear
coupling, TVB's scheme step for step; temporal average, Balloon BOLD and divergence checks online.

Layout: lane b of node i lives at flat index ``i * nb + b`` (lanes innermost, so every per-step loop is one
flat, vectorisable loop).  History is a ring ``hist[v, j, pos * nb + b]``, pos = t mod R (R >= horizon),
whose first K slots are mirrored after slot R-1, so that any window of up to K consecutive times is
contiguous.  The delayed input of a block of K steps is summed over such windows (coupling.py: edges in
levels by delay, the short ones over shorter windows); zero-delay edges are added per step.

Each call owns its arrays (history, state, outputs) and holds no GIL: lane groups run on worker threads.
"""
from __future__ import annotations

import types

import llvmlite.binding as llb
import numba as nb
import numpy as np

from tvbinv_hpc.sim.adaptive import H_MAX, redo_stiff, stiff
from tvbinv_hpc.sim.bold import balloon_steady, balloon_step2, bold_signal
from tvbinv_hpc.sim.coupling import Topology, add_level, add_local, make_topology, pairwise_sum, tvb_order_step
from tvbinv_hpc.sim.params import (
    N_PAR,
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
from tvbinv_hpc.sim.rng import box_muller32, halves, hash2

# Numba cannot mark array arguments noalias, so LLVM vectorises a loop only behind runtime overlap checks,
# and gives up beyond 8 of them (the Heun loop needs ~40).  Raising the limit roughly halves its cost.
llb.set_option("", "--runtime-memory-check-threshold=128")

STATUS_OK = 1
STATUS_DIVERGED = 2
FMA = {"contract"}     # fastmath flags of the fast path: fused multiply-adds only (NaN/inf semantics kept)
__all__ = ["STATUS_OK", "STATUS_DIVERGED", "N_PAR", "P_SIG_R", "P_SIG_V", "P_CV", "P_RATE", "P_PITAU", "H_MAX",
           "Topology", "make_topology", "pairwise_sum", "run_lanes"]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def run_lanes(lvl_k, lvl_ptr, far_src, far_w, far_d, loc_ptr, loc_src, loc_w, selfw, K, R,
              hist, x, par, k1, k2, nctr, lane,
              dt, nstep, istep, has_noise, couple_v, tvb_order,
              bold_dt, bold_every, bold_first, bold_out, status, rec_tavg, rec_raw, lanes_t,
              h_max, hemo_j0, warm_n, nsub, exact):
    """Advance nb lanes by nstep steps from time 0 (state x, history ring hist); returns steps done.

    lvl_k / lvl_ptr / far_*: the delayed edges in levels (coupling.Topology); hist (2, N, (R+K)*nb),
    x (2, N*nb) float64, par (N_PAR, N*nb), selfw (N*nb) zero-delay self weights, k1/k2 (N*nb) lane keys,
    nctr (N*nb) uint64 node index (noise counter = step * N + node), lane (N*nb) lane index; bold_out
    (nb, n_bold, N) float32; status (nb,) int8; rec_tavg (nb, n_tavg, 2, N) or empty; rec_raw
    (nb, nstep, 2, N) or empty; lanes_t: any tuple of nb items (one compiled kernel per nb).
    tvb_order: K must be 1 and all edges in one level (validation).
    h_max > 0: adaptive scheme (nodes with rate * dt > h_max take sub-steps, see adaptive.py; nsub (nb,)
    counts the sub-stepped node-steps per lane); 0: TVB's fixed Heun step everywhere.
    Balloon start: the state is set at tavg sample hemo_j0 to the steady state of the mean r over samples
    hemo_j0 - warm_n + 1 .. hemo_j0 (warm_n = 0: the resting state at sample 0, TVB's BalloonModel).
    exact: the Heun step rounds every operation as TVB does (no fused multiply-adds; validation).
    """
    n = lvl_ptr.shape[1] - 1
    nb_ = len(lanes_t)          # a tuple's length is a compile-time constant: the lane loops unroll
    nflat = n * nb_
    nv = 2 if couple_v else 1
    acc = np.zeros(K * nb_, dtype=hist.dtype)          # one target's windowed sum (stays in L1)
    acct = np.zeros((nv, K, nflat), dtype=hist.dtype)  # the block's delayed input, step-major
    loc = np.zeros((2, nflat), dtype=hist.dtype)
    z = np.zeros((2, nflat), dtype=np.float32)         # the step's normals (stay 0 without noise)
    xh = np.zeros((2, nflat), dtype=hist.dtype)        # the new state in the history precision
    zw = np.zeros((2, nflat), dtype=np.uint32)         # the step's random words, as 32-bit halves
    prod = np.zeros(n + 1, dtype=hist.dtype)
    zero = hist.dtype.type(0.0)
    has_local = loc_src.size > 0
    tsum = np.zeros((2, nflat))
    tmean = np.zeros((2, nflat))
    balloon = np.ones((4, nflat))
    balloon[0] = 0.0
    wsum = np.zeros(nflat)                              # r summed over the Balloon's warm-up window
    xn = np.empty_like(x)                               # the step's end state (x keeps its start)
    flipped = False
    hbuf = np.zeros(1, dtype=hist.dtype)
    btmp = np.zeros((8, nflat))
    n_written = 0
    bad = np.zeros(nb_, np.bool_)
    for b in range(nb_):
        bad[b] = status[b] != STATUS_OK
    for s0 in range(1, nstep + 1, K):
        kb = min(K, nstep - s0 + 1)
        for k in range(kb):
            s = s0 + k
            q = (s - 1) % R                              # ring position of the current state
            if tvb_order:                                # K = 1, all edges: TVB's products and order
                tvb_order_step(hist, lvl_ptr[0], far_src, far_w, far_d, nv, nb_, s, R, prod, zero, acct)
            else:
                _delayed_input(hist, lvl_k, lvl_ptr, far_src, far_w, far_d, nv, q, R, k, kb, acc, acct, lanes_t)
            if has_local:
                add_local(hist, loc_ptr, loc_src, loc_w, nv, nb_, q * nb_, loc, acct, k)
            if has_noise:
                _normals(np.uint64(s) * np.uint64(n), nctr, k1, k2, zw, z)
            # the step from x into xn; a stiff node (adaptive: rate * dt > h_max at the step's start or end,
            # or an overflow) is rare, and then redone from the step's start in sub-steps
            if exact:
                n_stiff = _heun_exact(x, xn, par, acct, selfw, z, k, nv, dt, h_max)
            else:
                n_stiff = _heun(x, xn, par, acct, selfw, z, k, nv, dt, h_max)
            if n_stiff > 0:
                redo_stiff(xn, x, par, acct, selfw, z, k, nv, dt, h_max, hbuf, lane, nsub)
            x, xn = xn, x
            flipped = not flipped
            _store(x, xh, tsum, hist, s % R, R, K, nv, lanes_t)
            if rec_raw.shape[1] > 0:
                for f in range(nflat):
                    rec_raw[lane[f], s - 1, 0, f // nb_] = x[0, f]
                    rec_raw[lane[f], s - 1, 1, f // nb_] = x[1, f]
            if s % istep == 0:
                n_written = _sample(s // istep - 1, istep, tsum, tmean, lane, bad, rec_tavg, balloon, btmp,
                                    wsum, bold_dt, bold_every, bold_first, hemo_j0, warm_n, bold_out, n_written)
                n_bad = 0
                for b in range(nb_):
                    if bad[b]:
                        status[b] = STATUS_DIVERGED
                        n_bad += 1
                if n_bad == nb_:
                    _final(x, xn, flipped)
                    return s
    _final(x, xn, flipped)
    return nstep


@nb.njit(cache=True, error_model="numpy")
def _final(x, x_caller, flipped):
    """The state swaps buffers every step: leave the final one in the caller's array."""
    if flipped:
        for f in range(x.shape[1]):
            x_caller[0, f] = x[0, f]
            x_caller[1, f] = x[1, f]


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def _delayed_input(hist, lvl_k, lvl_ptr, far_src, far_w, far_d, nv, q, R, k, kb, acc, acct, lanes_t):
    """At step k of a block of kb steps: every level whose window starts here sums its edges' input to the
    next min(window, kb - k) steps into acct; the first step of a block clears acct first."""
    n = lvl_ptr.shape[1] - 1
    if k == 0:
        acct[:, :kb] = 0
    for lvl in range(lvl_k.size):
        kl = lvl_k[lvl]
        if k % kl == 0 and lvl_ptr[lvl, n] > lvl_ptr[lvl, 0]:
            for v in range(nv):
                add_level(hist, v, lvl_ptr, lvl, far_src, far_w, far_d, q, R, min(kl, kb - k), k, acc, acct,
                          lanes_t)


@nb.njit(cache=True, error_model="numpy")
def _normals(base, nctr, k1, k2, zw, z):
    """The step's two normals per node and lane from (step, node, lane keys); apart from the Heun loop, and
    in two loops: the 64-bit hash runs at 8 SIMD lanes, Box-Muller on its 32-bit halves at 16."""
    for f in range(z.shape[1]):
        zw[0, f], zw[1, f] = halves(hash2(base + nctr[f], k1[f], k2[f]))
    for f in range(z.shape[1]):
        z[0, f], z[1, f] = box_muller32(zw[0, f], zw[1, f])


def _heun_step(x, xn, par, acct, selfw, z, k, nv, dt, h_max):
    """TVB's stochastic Heun step of every node and lane from x into xn, with the delayed input acct[:, k].
    h_max > 0 (adaptive scheme): returns how many nodes are stiff (see adaptive.stiff), else 0."""
    hdt = selfw.dtype.type
    n_stiff = 0
    for f in range(x.shape[1]):
        r = x[0, f]
        V = x[1, f]
        inv_tau = par[P_INV_TAU, f]
        # self-connections (delay 0) read the current state as the ring holds it: hdt(x)
        c_r = par[P_A, f] * np.float64(acct[0, k, f] + selfw[f] * hdt(r)) + par[P_B, f]
        c_v = par[P_A, f] * np.float64(acct[nv - 1, k, f] + selfw[f] * hdt(V)) \
            + par[P_B, f] if nv == 2 else par[P_B, f]
        crr = par[P_CR, f] * c_r          # added one by one, in TVB's order
        cvv = par[P_CV, f] * c_v
        nr = par[P_SIG_R, f] * np.float64(z[0, f])
        nv_ = par[P_SIG_V, f] * np.float64(z[1, f])
        d0r = inv_tau * (par[P_DELTA_PT, f] + 2 * V * r)
        d0v = inv_tau * (V * V - par[P_PI2TAU2, f] * (r * r) + par[P_ETA, f] + par[P_JTAU, f] * r
                         + par[P_I, f] + crr + cvv)
        ri = r + dt * d0r + nr
        if ri < 0.0:
            ri = 0.0
        vi = V + dt * d0v + nv_
        d1r = inv_tau * (par[P_DELTA_PT, f] + 2 * vi * ri)
        d1v = inv_tau * (vi * vi - par[P_PI2TAU2, f] * (ri * ri) + par[P_ETA, f] + par[P_JTAU, f] * ri
                         + par[P_I, f] + crr + cvv)
        rn = r + (d0r + d1r) * dt / 2.0 + nr
        if rn < 0.0:
            rn = 0.0
        vn = V + (d0v + d1v) * dt / 2.0 + nv_
        xn[0, f] = rn
        xn[1, f] = vn
        if h_max > 0.0:                   # in this loop: the state is in registers
            n_stiff += stiff(par, f, dt, h_max, r, V, rn, vn)
    return n_stiff


def _variant(fn, name: str, **flags):
    """fn compiled under its own name (numba names its cache files by the function's qualified name: two
    variants of one function would read each other's cached code)."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, name)
    copy.__qualname__ = name
    copy.__doc__ = fn.__doc__
    return nb.njit(cache=True, error_model="numpy", **flags)(copy)


# The fast Heun step lets LLVM fuse a * b + c into one FMA (one rounding instead of two: faster, and within
# rounding of the exact step); the exact one rounds every operation as TVB's numpy code does (tvb_order
# and Engine(exact=True)).  Neither reassociates: every lane, batch, thread and rank gets the same bits.
_heun = _variant(_heun_step, "_heun", fastmath=FMA)
_heun_exact = _variant(_heun_step, "_heun_exact")


@nb.njit(cache=True, error_model="numpy")
def _store(x, xh, tsum, hist, q, R, K, nv, lanes_t):
    """Add the new state to the temporal-average sums and write it into ring slot q (and its mirror) in
    the history precision; unsigned indices: no wraparound selects, which LLVM turns into slow scatters."""
    hdt = hist.dtype.type
    for f in range(x.shape[1]):     # apart from the Heun loop: fewer arrays there for LLVM to check
        tsum[0, f] += x[0, f]
        tsum[1, f] += x[1, f]
        xh[0, f] = hdt(x[0, f])
        xh[1, f] = hdt(x[1, f])
    nb_u = np.uint64(len(lanes_t))
    pq = np.uint64(q) * nb_u
    pm = np.uint64(q + R) * nb_u
    for v in range(nv):
        for i in range(hist.shape[1]):
            iu = np.uint64(i)
            for b in range(nb_u):
                hist[v, iu, pq + b] = xh[v, iu * nb_u + b]
            if q < K:
                for b in range(nb_u):
                    hist[v, iu, pm + b] = xh[v, iu * nb_u + b]


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def _sample(j, istep, tsum, tmean, lane, bad, rec_tavg, balloon, btmp, wsum, bold_dt, bold_every, bold_first,
            hemo_j0, warm_n, bold_out, n_written):
    """Temporal-average sample j (0-based): its mean, the Balloon step it drives, the BOLD sample when one is
    due, and the lanes that stopped being finite (bad).  Returns the BOLD samples written."""
    nflat = tsum.shape[1]
    nb_ = bad.size
    n_nonfinite = 0
    for f in range(nflat):
        tmean[0, f] = tsum[0, f] / istep
        tmean[1, f] = tsum[1, f] / istep
        tsum[0, f] = 0.0
        tsum[1, f] = 0.0
        n_nonfinite += not (np.isfinite(tmean[0, f]) and np.isfinite(tmean[1, f]))
    if n_nonfinite > 0:                      # rare: find the lanes
        for f in range(nflat):
            if not (np.isfinite(tmean[0, f]) and np.isfinite(tmean[1, f])):
                bad[lane[f]] = True
    if rec_tavg.shape[1] > 0:
        for f in range(nflat):
            rec_tavg[lane[f], j, 0, f // nb_] = tmean[0, f]
            rec_tavg[lane[f], j, 1, f // nb_] = tmean[1, f]
    if j > hemo_j0:                           # TVB: input sample j drives step j-1 -> j
        balloon_step2(balloon, tmean[0], bold_dt, btmp)
    elif j > hemo_j0 - warm_n:                # the warm-up window: its mean r sets the start
        for f in range(nflat):
            wsum[f] += tmean[0, f]
        if j == hemo_j0:
            for f in range(nflat):
                balloon_steady(balloon, f, wsum[f] / warm_n)
    if j >= bold_first and (j - bold_first) % bold_every == 0 and n_written < bold_out.shape[1]:
        for f in range(nflat):
            y = bold_signal(balloon, f)
            if not np.isfinite(y):
                bad[lane[f]] = True
            bold_out[lane[f], n_written, f // nb_] = np.float32(y)
        n_written += 1
    return n_written

