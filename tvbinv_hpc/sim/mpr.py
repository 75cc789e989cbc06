"""Numba kernel: a few MPR simulations ("lanes") on one connectome, stochastic Heun with delayed linear
coupling, TVB's scheme step for step; temporal average, Balloon BOLD and divergence checks online.

Layout: lane b of node i lives at flat index ``i * nb + b`` (lanes innermost, so every per-step loop is one
flat, vectorisable loop).  History is a ring ``hist[v, j, pos * nb + b]``, pos = t mod R (R >= horizon),
whose first K slots are mirrored after slot R-1, so that any window of up to K consecutive times is
contiguous.  The delayed input of a block of K steps is summed over such windows (coupling.py: edges in
levels by delay, the short ones over shorter windows); zero-delay edges are added per step.

The lanes work through the call's simulations as a queue (lanes.py): a lane whose simulation ends takes the
next pending one at a block boundary, with its own clock.  Each call owns its arrays (history, state,
outputs) and holds no GIL: chunks of a call run on worker threads.
"""
from __future__ import annotations

import llvmlite.binding as llb
import numba as nb
import numpy as np

from tvbinv_hpc.sim.adaptive import H_MAX, redo_stiff
from tvbinv_hpc.sim.coupling import Topology, add_level, add_local, make_topology, pairwise_sum, tvb_order_step
from tvbinv_hpc.sim.lanes import (
    L_FREE,
    L_SIM,
    N_LANE_FIELDS,
    block_len,
    check_lanes,
    complete,
    install,
    record_raw,
    sample_lanes,
)
from tvbinv_hpc.sim.params import (
    N_PAR,
    P_A,
    P_B,
    P_CR,
    P_CV,
    P_DELTA_PT,
    P_ETA,
    P_F_0,
    P_F_2T,
    P_F_AR,
    P_F_AV,
    P_F_DR,
    P_F_J,
    P_F_PP,
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
from tvbinv_hpc.sim.vmath import FMA, wide_vectors

# Numba cannot mark array arguments noalias, so LLVM vectorises a loop only behind runtime overlap checks,
# and gives up beyond 8 of them (the Heun loop needs ~40).  Raising the limit roughly halves its cost.
llb.set_option("", "--runtime-memory-check-threshold=128")

STATUS_OK = 1
STATUS_DIVERGED = 2
__all__ = ["STATUS_OK", "STATUS_DIVERGED", "N_PAR", "P_SIG_R", "P_SIG_V", "P_CV", "P_RATE", "P_PITAU", "H_MAX",
           "Topology", "make_topology", "pairwise_sum", "run_lanes"]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def run_lanes(lvl_k, lvl_ptr, far_src, far_w, far_d, loc_ptr, loc_src, loc_w, selfw, K, R,
              hist, x, tab, qk1, qk2, init_hist, ranges,
              dt, nstep, istep, has_noise, couple_v, tvb_order,
              bold_dt, bold_every, bold_first, bold_out, status, steps, nsub_out, rec_tavg, rec_raw, lanes_t,
              h_max, hemo_j0, warm_n, exact):
    """Run the call's nq simulations, nstep steps each, through nb lanes (a lane whose simulation ends takes
    the next pending one, see lanes.py); returns the global steps taken (lane-steps: nb times that).

    lvl_k / lvl_ptr / far_*: the delayed edges in levels (coupling.Topology); hist (2, N, (R+K)*nb) and
    x (2, N*nb) float64: scratch for the ring and the state; selfw (N*nb) zero-delay self weights;
    tab (N_PAR, N*nq) the simulations' parameters (flat i * nq + q); qk1/qk2 (nq,) their keys; init_hist
    (R, 2, N) float64 the given initial history, or (0, 2, N): a random one from the keys in ranges
    (r low, r span, V low, V span).  Outputs, per simulation q: bold_out (nq, n_bold, N) float32, status
    (nq,) int8 (STATUS_OK on entry), steps and nsub_out (nq,) int64, rec_tavg (nq, n_tavg, 2, N) or empty,
    rec_raw (nq, nstep, 2, N) or empty.  lanes_t: any tuple of nb items (one compiled kernel per nb).
    tvb_order: K must be 1 and all edges in one level (validation).
    h_max > 0: adaptive scheme (nodes with rate * dt > h_max take sub-steps, see adaptive.py; nsub_out counts
    the sub-stepped node-steps); 0: TVB's fixed Heun step everywhere.
    Balloon start: the state is set at tavg sample hemo_j0 to the steady state of the mean r over samples
    hemo_j0 - warm_n + 1 .. hemo_j0 (warm_n = 0: the resting state at sample 0, TVB's BalloonModel).
    exact: the Heun step rounds every operation as TVB does (no fused multiply-adds; validation).
    """
    wide_vectors()
    n = lvl_ptr.shape[1] - 1
    nb_ = len(lanes_t)          # a tuple's length is a compile-time constant: the lane loops unroll
    nflat = n * nb_
    nq = qk1.size
    nv = 2 if couple_v else 1
    acc = np.zeros(K * nb_, dtype=hist.dtype)          # one target's windowed sum (stays in L1)
    acct = np.zeros((nv, K, nflat), dtype=hist.dtype)  # the block's delayed input, step-major
    loc = np.zeros((2, nflat), dtype=hist.dtype)
    z = np.zeros((2, nflat), dtype=np.float32)         # the step's normals (stay 0 without noise)
    zw = np.zeros((2, nflat), dtype=np.uint32)         # the step's random words, as 32-bit halves
    prod = np.zeros(n + 1, dtype=hist.dtype)
    zero = hist.dtype.type(0.0)
    tsum, tmean, wsum = np.zeros((2, nflat)), np.zeros((2, nflat)), np.zeros(nflat)
    balloon, btmp = np.ones((4, nflat)), np.zeros((8, nflat))
    xn = np.empty_like(x)                               # the step's end state (x keeps its start)
    hbuf = np.zeros(1, dtype=hist.dtype)
    par = np.zeros((tab.shape[0], nflat))
    k1, k2, nctr = np.zeros(nflat, np.uint64), np.zeros(nflat, np.uint64), np.zeros(nflat, np.uint64)
    lane = np.arange(nflat) % nb_
    ls = np.zeros((N_LANE_FIELDS, nb_), np.int64)
    bad = np.zeros(nb_, np.bool_)
    nsub = np.zeros(nb_, np.int64)
    for b in range(nb_):        # lanes beyond nq run a copy of the first simulation, unrecorded
        install(b, min(b, nq - 1), 0, nstep, istep, hist, x, par, tab, k1, k2, nctr, qk1, qk2, init_hist, R, K,
                ranges, tsum, wsum, balloon, ls, bad, nsub)
        ls[L_SIM, b] = b if b < nq else -1
    nxt = min(nb_, nq)          # the next pending simulation
    s = 0                       # global step of the current state
    while True:
        kb = block_len(ls, s, K, nstep, nxt < nq)
        if kb == 0:
            return s
        for k in range(kb):
            s += 1
            q = (s - 1) % R                              # ring position of the current state
            if tvb_order:                                # K = 1, all edges: TVB's products and order
                tvb_order_step(hist, lvl_ptr[0], far_src, far_w, far_d, nv, nb_, s, R, prod, zero, acct)
            else:
                _delayed_input(hist, lvl_k, lvl_ptr, far_src, far_w, far_d, nv, q, R, k, kb, acc, acct, lanes_t)
            if loc_src.size > 0:
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
            _store(x, tsum, hist, s % R, R, K, nv, lanes_t)
            record_raw(s, x, lane, ls, rec_raw)
            freed = False
            if s % istep == 0:
                sample_lanes(s, istep, tsum, tmean, lane, ls, bad, rec_tavg, balloon, btmp, wsum, bold_dt,
                             bold_every, bold_first, hemo_j0, warm_n, bold_out)
                freed = check_lanes(s, istep, ls, bad, nsub, status, steps, nsub_out)
            complete(s, x, ls, nsub, nstep, istep, status, steps, nsub_out)
            if freed and nxt < nq:                       # refill that lane now: end the block here
                break
        for b in range(nb_):
            if nxt < nq and ls[L_SIM, b] < 0 and ls[L_FREE, b] <= s:
                install(b, nxt, s, nstep, istep, hist, x, par, tab, k1, k2, nctr, qk1, qk2, init_hist, R, K,
                        ranges, tsum, wsum, balloon, ls, bad, nsub)
                nxt += 1


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def _delayed_input(hist, lvl_k, lvl_ptr, far_src, far_w, far_d, nv, q, R, k, kb, acc, acct, lanes_t):
    """At step k of a block of kb steps: every level whose window starts here sums its edges' input to the
    next min(window, kb - k) steps into acct; the first step of a block clears acct first."""
    wide_vectors()
    n = lvl_ptr.shape[1] - 1
    if k == 0:
        acct[:, :kb] = 0
    for lvl in range(lvl_k.size):
        kl = lvl_k[lvl]
        if k % kl == 0 and lvl_ptr[lvl, n] > lvl_ptr[lvl, 0]:
            for v in range(nv):
                add_level(hist, v, lvl_ptr, lvl, far_src, far_w, far_d, q, R, min(kl, kb - k), k, acc, acct,
                          lanes_t)


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def _normals(base, nctr, k1, k2, zw, z):
    """The step's two normals per node and lane from (step, node, lane keys), rng.normals' values; apart
    from the Heun loop, and in two loops: the 64-bit hash runs at 8 SIMD lanes, Box-Muller on its 32-bit
    halves at 16."""
    wide_vectors()
    for f in range(z.shape[1]):
        zw[0, f], zw[1, f] = halves(hash2(base + nctr[f], k1[f], k2[f]))
    for f in range(z.shape[1]):
        z[0, f], z[1, f] = box_muller32(zw[0, f], zw[1, f])


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def _heun(x, xn, par, acct, selfw, z, k, nv, dt, h_max):
    """The stochastic Heun step of every node and lane from x into xn, with the delayed input acct[:, k]:
    TVB's scheme with the per-simulation constants folded (params.P_F_*) and fused multiply-adds (one
    rounding instead of two; within rounding of the exact step, tests/sim/test_mpr_vs_tvb.py).  No
    reassociation: every lane, batch, thread and rank gets the same bits.
    h_max > 0 (adaptive scheme): returns how many nodes are stiff (see adaptive.stiff), else 0."""
    wide_vectors()
    hdt = selfw.dtype.type
    half_dt = 0.5 * dt
    n_stiff = 0
    for f in range(x.shape[1]):
        r = x[0, f]
        V = x[1, f]
        # self-connections (delay 0) read the current state as the ring holds it: hdt(x)
        drive = par[P_F_0, f] + par[P_F_AR, f] * np.float64(acct[0, k, f] + selfw[f] * hdt(r))
        if nv == 2:
            drive += par[P_F_AV, f] * np.float64(acct[1, k, f] + selfw[f] * hdt(V))
        nr = par[P_SIG_R, f] * np.float64(z[0, f])
        nv_ = par[P_SIG_V, f] * np.float64(z[1, f])
        d0r = par[P_F_DR, f] + par[P_F_2T, f] * V * r
        d0v = par[P_INV_TAU, f] * (V * V) - par[P_F_PP, f] * (r * r) + par[P_F_J, f] * r + drive
        ri = r + dt * d0r + nr
        if ri < 0.0:
            ri = 0.0
        vi = V + dt * d0v + nv_
        d1r = par[P_F_DR, f] + par[P_F_2T, f] * vi * ri
        d1v = par[P_INV_TAU, f] * (vi * vi) - par[P_F_PP, f] * (ri * ri) + par[P_F_J, f] * ri + drive
        rn = r + (d0r + d1r) * half_dt + nr
        if rn < 0.0:
            rn = 0.0
        vn = V + (d0v + d1v) * half_dt + nv_
        xn[0, f] = rn
        xn[1, f] = vn
        # adaptive.stiff as a count, here (the state is in registers) and in plain arithmetic: a branch, or
        # the call itself, keeps this loop scalar (2-4x slower).  > 0 exactly where stiff() is true: an end
        # above h_max or a non-finite end (a non-finite start gives one).
        a_ = par[P_RATE, f] * dt * max(abs(V), par[P_PITAU, f] * r)
        b_ = par[P_RATE, f] * dt * max(abs(vn), par[P_PITAU, f] * rn)
        n_stiff += np.int64(a_ > h_max) + np.int64(b_ > h_max) + np.int64(not np.isfinite(rn + vn))
    return n_stiff if h_max > 0.0 else 0


@nb.njit(cache=True, error_model="numpy")
def _heun_exact(x, xn, par, acct, selfw, z, k, nv, dt, h_max):
    """_heun rounding every operation as TVB's numpy code does: its expressions in its order, no fused
    multiply-adds (tvb_order and Engine(exact=True))."""
    wide_vectors()
    hdt = selfw.dtype.type
    n_stiff = 0
    for f in range(x.shape[1]):
        r = x[0, f]
        V = x[1, f]
        inv_tau = par[P_INV_TAU, f]
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
        a_ = par[P_RATE, f] * dt * max(abs(V), par[P_PITAU, f] * r)
        b_ = par[P_RATE, f] * dt * max(abs(vn), par[P_PITAU, f] * rn)
        n_stiff += np.int64(a_ > h_max) + np.int64(b_ > h_max) + np.int64(not np.isfinite(rn + vn))
    return n_stiff if h_max > 0.0 else 0


@nb.njit(cache=True, error_model="numpy")
def _store(x, tsum, hist, q, R, K, nv, lanes_t):
    """Add the new state to the temporal-average sums and write it into ring slot q (and its mirror) in
    the history precision; unsigned indices: no wraparound selects, which LLVM turns into slow scatters."""
    wide_vectors()
    hdt = hist.dtype.type
    for f in range(x.shape[1]):     # apart from the Heun loop: fewer arrays there for LLVM to check
        tsum[0, f] += x[0, f]
        tsum[1, f] += x[1, f]
    nb_u = np.uint64(len(lanes_t))
    pq = np.uint64(q) * nb_u
    pm = np.uint64(q + R) * nb_u
    mirror = q < K
    for v in range(nv):
        for i in range(hist.shape[1]):
            iu = np.uint64(i)
            for b in range(nb_u):
                hist[v, iu, pq + b] = hdt(x[v, iu * nb_u + b])
            if mirror:
                for b in range(nb_u):
                    hist[v, iu, pm + b] = hdt(x[v, iu * nb_u + b])
