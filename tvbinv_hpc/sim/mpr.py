"""Numba kernel: a few MPR simulations ("lanes") on one connectome, stochastic Heun with delayed linear
coupling, TVB's scheme step for step; temporal average, Balloon BOLD and divergence checks online.

Layout: lane b of node i lives at flat index ``i * nb + b`` (lanes innermost, so every per-step loop is one
flat, vectorisable loop).  History is a ring ``hist[v, j, pos * nb + b]``, pos = t mod R (R >= horizon),
whose first K slots are mirrored after slot R-1, so that any window of K consecutive times is contiguous.

Time-blocked coupling: an edge with delay d >= K only reads states at least K steps old, all known when a
block of K steps starts, so its contribution to the whole block is one streaming multiply-add over a
contiguous window (``far`` edges).  Zero-delay edges are added per step from the current state:
self-connections as a flat per-node weight, any others from a small CSR list (``local`` edges).
K <= the smallest non-zero delay, so no edge is left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.binding as llb
import numba as nb
import numpy as np

from tvbinv_hpc.sim.bold import balloon_steady, balloon_step2, bold_signal
from tvbinv_hpc.sim.rng import box_muller32, halves, hash2

# Numba cannot mark array arguments noalias, so LLVM vectorises a loop only behind runtime overlap checks,
# and gives up beyond 8 of them (the Heun loop needs ~40).  Raising the limit roughly halves its cost.
llb.set_option("", "--runtime-memory-check-threshold=128")

STATUS_OK = 1
STATUS_DIVERGED = 2
# rows of the per-lane parameter table (derived as TVB evaluates them, so rounding matches)
P_INV_TAU, P_DELTA_PT, P_PI2TAU2, P_JTAU, P_ETA, P_I, P_CR, P_CV, P_A, P_B, P_SIG_R, P_SIG_V = range(12)
# and for the adaptive scheme: the local rate of the (r, V) flow is ~ 2 |1/tau| max(|V|, pi |tau| r) (the
# Jacobian's eigenvalues are 2V/tau +- 2i pi r for large r)
P_RATE, P_PITAU = 12, 13
N_PAR = 14
# adaptive scheme: a node whose rate * dt exceeds H_MAX takes sub-steps of rate * h <= H_SUB. In the down
# state rate * dt ~ 0.04, in the up state (r ~ 1.5) ~ 0.1 with excursions to ~0.3, in TVB's own start-up
# transients up to ~0.5: there the fixed Heun step (TVB's) is taken, bit for bit, and is accurate (local
# error ~ (rate dt)^3 / 6 < 4 %); the sub-steps start where V runs away (|V| ~ 30), a step or two before
# the explicit step overflows.
H_MAX = 0.6
H_SUB = 0.2
MAX_SUBSTEPS = 4096


@dataclass
class Topology:
    """Sparse, delay-split connectivity for the kernel (CSR over targets)."""

    far_ptr: np.ndarray
    far_src: np.ndarray
    far_w: np.ndarray
    far_d: np.ndarray
    loc_ptr: np.ndarray
    loc_src: np.ndarray
    loc_w: np.ndarray
    self_w: np.ndarray  # (N,) zero-delay self-connection weights, applied per step from the current state
    block: int      # K
    horizon: int    # max delay + 1 (TVB's horizon)
    tvb_order: bool = False

    @property
    def nnz(self) -> int:
        return self.far_src.size + self.loc_src.size + int(np.count_nonzero(self.self_w))


def make_topology(weights: np.ndarray, idelays: np.ndarray, dtype: type, max_block: int = 64,
                  tvb_order: bool = False) -> Topology:
    """Split non-zero weights into far (delay >= K) and local (delay 0) CSR lists; choose K.

    tvb_order: every edge in the far list, K = 1, and the kernel sums each row as TVB does (validation)."""
    nz = weights != 0.0
    horizon = int(idelays[nz].max(initial=0)) + 1
    positive = idelays[nz & (idelays > 0)]
    block = int(min(max_block, positive.min())) if positive.size else int(max_block)
    diag = np.eye(weights.shape[0], dtype=bool)
    selfw = np.where(nz & diag & (idelays == 0), weights, 0.0).diagonal().astype(dtype)
    selections = (nz & (idelays > 0), nz & (idelays == 0) & ~diag)
    if tvb_order:
        if nz.sum(axis=1).max() > 900:
            raise ValueError("tvb_order supports at most 900 non-zero weights per row")
        block, selections, selfw = 1, (nz, np.zeros_like(nz)), np.zeros_like(selfw)
    ptrs, lists = [], []
    for sel in selections:
        rows, cols = np.nonzero(sel)           # row-major: targets ascending, sources ascending (as TVB)
        ptr = np.zeros(weights.shape[0] + 1, np.int64)
        np.add.at(ptr, rows + 1, 1)
        ptrs.append(np.cumsum(ptr))
        lists.append((cols.astype(np.int64), weights[rows, cols].astype(dtype),
                      idelays[rows, cols].astype(np.int64)))
    (fs, fw, fd), (ls, lw, _) = lists
    return Topology(ptrs[0], fs, fw, fd, ptrs[1], ls, lw, selfw, block, horizon, tvb_order)


@nb.njit(cache=True, error_model="numpy")
def _pairwise_block(a, lo, n, zero):
    """numpy's pairwise_sum for n <= 128: 8 accumulators, then the remainder, in a's precision."""
    if n < 8:
        res = zero
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@nb.njit(cache=True, error_model="numpy")
def _split(n):
    n2 = n // 2
    return n2 - n2 % 8


@nb.njit(cache=True, error_model="numpy")
def _pairwise_242(a, lo, n, zero):
    if n <= 128:
        return _pairwise_block(a, lo, n, zero)
    n2 = _split(n)                        # both halves <= 128 for n <= 242
    return _pairwise_block(a, lo, n2, zero) + _pairwise_block(a, lo + n2, n - n2, zero)


@nb.njit(cache=True, error_model="numpy")
def _pairwise_469(a, lo, n, zero):
    if n <= 128:
        return _pairwise_block(a, lo, n, zero)
    n2 = _split(n)
    return _pairwise_242(a, lo, n2, zero) + _pairwise_242(a, lo + n2, n - n2, zero)


@nb.njit(cache=True, error_model="numpy")
def pairwise_sum(a, lo, n, zero):
    """numpy's pairwise summation of a[lo:lo + n] (n <= 900) in a's precision: the order in which TVB's
    sparse coupling (np.add.reduceat over float32 products) adds a row.  Each level is numpy's recursion
    step, written out (numba's cache cannot reload recursive functions)."""
    if n <= 128:
        return _pairwise_block(a, lo, n, zero)
    n2 = _split(n)
    return _pairwise_469(a, lo, n2, zero) + _pairwise_469(a, lo + n2, n - n2, zero)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _window(hist, v, src, d, s0, R, nb_, kbb):
    """The kbb contiguous history values of source src, d steps before the block that starts at step s0."""
    p = ((s0 - 1 - d) % R) * nb_
    return hist[v, src, p:p + kbb]


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


@nb.njit(cache=True, nogil=True, error_model="numpy")
def run_lanes(far_ptr, far_src, far_w, far_d, loc_ptr, loc_src, loc_w, selfw, K, R,
              hist, x, par, k1, k2, nctr, lane,
              dt, nstep, istep, has_noise, couple_v, tvb_order,
              bold_dt, bold_every, bold_first, bold_out, status, rec_tavg, rec_raw, lanes_t,
              h_max, hemo_j0, warm_n, nsub):
    """Advance nb lanes by nstep steps from time 0 (state x, history ring hist); returns steps done.

    hist (2, N, (R+K)*nb), x (2, N*nb) float64, par (N_PAR, N*nb), selfw (N*nb) zero-delay self weights,
    k1/k2 (N*nb) lane keys, nctr (N*nb) uint64 node index (noise counter = step * N + node), lane (N*nb)
    lane index; bold_out (nb, n_bold, N) float32; status (nb,) int8; rec_tavg (nb, n_tavg, 2, N) or empty;
    rec_raw (nb, nstep, 2, N) or empty; lanes_t: any tuple of nb items (one compiled kernel per nb).
    tvb_order: K must be 1 and all edges in the far list (validation).
    h_max > 0: adaptive scheme (nodes with rate * dt > h_max take sub-steps, see _substeps; nsub (nb,) counts
    the sub-stepped node-steps per lane); 0: TVB's fixed Heun step everywhere.
    Balloon start: the state is set at tavg sample hemo_j0 to the steady state of the mean r over samples
    hemo_j0 - warm_n + 1 .. hemo_j0 (warm_n = 0: the resting state at sample 0, TVB's BalloonModel).
    """
    n = far_ptr.size - 1
    nb_ = len(lanes_t)          # a tuple's length is a compile-time constant: the lane loops unroll
    nflat = n * nb_
    nv = 2 if couple_v else 1
    hdt = hist.dtype.type
    acc = np.zeros(K * nb_, dtype=hist.dtype)          # one target's block coupling (stays in L1)
    acct = np.zeros((nv, K, nflat), dtype=hist.dtype)
    loc = np.zeros((2, nflat), dtype=hist.dtype)
    z = np.zeros((2, nflat), dtype=np.float32)         # the step's normals (stay 0 without noise)
    xh = np.zeros((2, nflat), dtype=hist.dtype)        # the new state in the history precision
    nb_u = np.uint64(nb_)
    n_u = np.uint64(n)
    zw = np.zeros((2, nflat), dtype=np.uint32)         # the step's random words, as 32-bit halves
    prod = np.zeros(n + 1, dtype=hist.dtype)
    zero = hdt(0.0)
    has_local = loc_src.size > 0
    tsum = np.zeros((2, nflat))
    tmean = np.zeros((2, nflat))
    balloon = np.ones((4, nflat))
    balloon[0] = 0.0
    wsum = np.zeros(nflat)                              # r summed over the Balloon's warm-up window
    x0 = np.zeros((2, nflat))                           # the step's start state, kept for sub-steps
    hbuf = np.zeros(1, dtype=hist.dtype)
    adaptive = h_max > 0.0
    btmp = np.zeros((8, nflat))
    n_bold = bold_out.shape[1]
    n_written = 0
    bad = np.zeros(nb_, np.bool_)
    for b in range(nb_):
        bad[b] = status[b] != STATUS_OK
    do_raw = rec_raw.shape[1] > 0
    do_tavg = rec_tavg.shape[1] > 0
    for s0 in range(1, nstep + 1, K):
        kb = min(K, nstep - s0 + 1)
        kbb = kb * nb_
        if tvb_order:                       # K = 1, all edges: TVB's products and summation order
            for v in range(nv):
                for i in range(n):
                    lo_, cnt = far_ptr[i], far_ptr[i + 1] - far_ptr[i]
                    for b in range(nb_):
                        for e in range(lo_, lo_ + cnt):
                            prod[e - lo_] = far_w[e] * hist[v, far_src[e], ((s0 - 1 - far_d[e]) % R) * nb_ + b]
                        acct[v, 0, i * nb_ + b] = prod[0] + pairwise_sum(prod, 1, cnt - 1, zero) if cnt > 0 \
                            else zero
        # far edges: the coupling of the whole block from windows of known history
        for v in range(nv if not tvb_order else 0):
            for i in range(n):
                a_ = acc[:kbb]
                a_[:] = 0
                # eight (then four) edges per pass: more windows in flight (the loads stall on L3) and one
                # pass over the accumulator; the sum keeps the edge order, ((a + w0 h0) + w1 h1) + ..., so
                # the result is bit-identical to one edge at a time
                e, e_end = far_ptr[i], far_ptr[i + 1]
                while e + 8 <= e_end:
                    h0 = _window(hist, v, far_src[e], far_d[e], s0, R, nb_, kbb)
                    h1 = _window(hist, v, far_src[e + 1], far_d[e + 1], s0, R, nb_, kbb)
                    h2 = _window(hist, v, far_src[e + 2], far_d[e + 2], s0, R, nb_, kbb)
                    h3 = _window(hist, v, far_src[e + 3], far_d[e + 3], s0, R, nb_, kbb)
                    h4 = _window(hist, v, far_src[e + 4], far_d[e + 4], s0, R, nb_, kbb)
                    h5 = _window(hist, v, far_src[e + 5], far_d[e + 5], s0, R, nb_, kbb)
                    h6 = _window(hist, v, far_src[e + 6], far_d[e + 6], s0, R, nb_, kbb)
                    h7 = _window(hist, v, far_src[e + 7], far_d[e + 7], s0, R, nb_, kbb)
                    w0, w1, w2, w3 = far_w[e], far_w[e + 1], far_w[e + 2], far_w[e + 3]
                    w4, w5, w6, w7 = far_w[e + 4], far_w[e + 5], far_w[e + 6], far_w[e + 7]
                    for m in range(kbb):
                        a_[m] = a_[m] + w0 * h0[m] + w1 * h1[m] + w2 * h2[m] + w3 * h3[m] + w4 * h4[m] \
                            + w5 * h5[m] + w6 * h6[m] + w7 * h7[m]
                    e += 8
                while e + 4 <= e_end:
                    h0 = _window(hist, v, far_src[e], far_d[e], s0, R, nb_, kbb)
                    h1 = _window(hist, v, far_src[e + 1], far_d[e + 1], s0, R, nb_, kbb)
                    h2 = _window(hist, v, far_src[e + 2], far_d[e + 2], s0, R, nb_, kbb)
                    h3 = _window(hist, v, far_src[e + 3], far_d[e + 3], s0, R, nb_, kbb)
                    w0, w1, w2, w3 = far_w[e], far_w[e + 1], far_w[e + 2], far_w[e + 3]
                    for m in range(kbb):
                        a_[m] = a_[m] + w0 * h0[m] + w1 * h1[m] + w2 * h2[m] + w3 * h3[m]
                    e += 4
                while e < e_end:
                    h0 = _window(hist, v, far_src[e], far_d[e], s0, R, nb_, kbb)
                    w0 = far_w[e]
                    for m in range(kbb):
                        a_[m] += w0 * h0[m]
                    e += 1
                iu = np.uint64(i)
                for k in range(kb):                       # to step-major order (indices, not views)
                    ku = np.uint64(k)
                    for b in range(nb_u):
                        acct[v, ku, iu * nb_u + b] = a_[ku * nb_u + b]
        for k in range(kb):
            s = s0 + k
            pcur = ((s - 1) % R) * nb_
            # zero-delay (local) edges from the current state; no array slicing in per-step loops (each
            # view costs an allocation-like overhead)
            if has_local:
                for v in range(nv):
                    for f in range(nflat):
                        loc[v, f] = 0
                    for i in range(n):
                        for e in range(loc_ptr[i], loc_ptr[i + 1]):
                            w = loc_w[e]
                            j = loc_src[e]
                            for b in range(nb_):
                                loc[v, i * nb_ + b] += w * hist[v, j, pcur + b]
                    for f in range(nflat):          # (far + local) + self below: the order of the sum as before
                        acct[v, k, f] = acct[v, k, f] + loc[v, f]
            if has_noise:
                # apart from the Heun loop, and in two loops: the 64-bit hash runs at 8 SIMD lanes, Box-Muller
                # on its 32-bit halves at 16 (together: ~2.7 -> ~1.3 ns per pair of normals)
                base = np.uint64(s) * n_u
                for f in range(nflat):
                    zw[0, f], zw[1, f] = halves(hash2(base + nctr[f], k1[f], k2[f]))
                for f in range(nflat):
                    z[0, f], z[1, f] = box_muller32(zw[0, f], zw[1, f])
            if adaptive:
                for f in range(nflat):
                    x0[0, f] = x[0, f]
                    x0[1, f] = x[1, f]
            for f in range(nflat):
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
                x[0, f] = rn
                x[1, f] = V + (d0v + d1v) * dt / 2.0 + nv_
            if adaptive:
                # a node is stiff when its rate * dt exceeds h_max at the step's start or end (or the step
                # overflowed): rare, then redo those nodes from the step's start in sub-steps
                n_stiff = 0
                for f in range(nflat):
                    n_stiff += _stiff(par, f, dt, h_max, x0[0, f], x0[1, f], x[0, f], x[1, f])
                if n_stiff > 0:
                    _redo_stiff(x, x0, par, acct, selfw, z, k, nv, dt, h_max, hbuf, lane, nsub)
            for f in range(nflat):          # apart from the Heun loop: fewer arrays there for LLVM to check
                tsum[0, f] += x[0, f]
                tsum[1, f] += x[1, f]
                xh[0, f] = hdt(x[0, f])
                xh[1, f] = hdt(x[1, f])
            # the new state enters the ring (and its mirror) in the history precision; unsigned indices:
            # no wraparound selects, which LLVM would turn into slow scatters
            q = s % R
            pq = np.uint64(q) * nb_u
            pm = np.uint64(q + R) * nb_u
            for v in range(nv):
                for i in range(n):
                    iu = np.uint64(i)
                    for b in range(nb_u):
                        hist[v, iu, pq + b] = xh[v, iu * nb_u + b]
                    if q < K:
                        for b in range(nb_u):
                            hist[v, iu, pm + b] = xh[v, iu * nb_u + b]
            if do_raw:
                for f in range(nflat):
                    rec_raw[lane[f], s - 1, 0, f // nb_] = x[0, f]
                    rec_raw[lane[f], s - 1, 1, f // nb_] = x[1, f]
            if s % istep == 0:
                j = s // istep - 1                       # 0-based temporal-average sample
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
                if do_tavg:
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
                if j >= bold_first and (j - bold_first) % bold_every == 0 and n_written < n_bold:
                    for f in range(nflat):
                        y = bold_signal(balloon, f)
                        if not np.isfinite(y):
                            bad[lane[f]] = True
                        bold_out[lane[f], n_written, f // nb_] = np.float32(y)
                    n_written += 1
                n_bad = 0
                for b in range(nb_):
                    if bad[b]:
                        status[b] = STATUS_DIVERGED
                        n_bad += 1
                if n_bad == nb_:
                    return s
    return nstep


@nb.njit(cache=True, inline="always", error_model="numpy")
def _stiff(par, f, dt, h_max, r0, v0, r1, v1):
    """Whether node f's fixed step from (r0, v0) to (r1, v1) is outside the explicit step's accurate range:
    rate * dt > h_max at either end, or a non-finite end (an overflow); the flow's rate is
    2 |1/tau| max(|V|, pi |tau| r)."""
    a = par[P_RATE, f] * dt * max(abs(v0), par[P_PITAU, f] * r0)
    b = par[P_RATE, f] * dt * max(abs(v1), par[P_PITAU, f] * r1)
    return not (a <= h_max and b <= h_max)


@nb.njit(cache=True, error_model="numpy")
def _redo_stiff(x, x0, par, acct, selfw, z, k, nv, dt, h_max, hbuf, lane, nsub):
    """The adaptive scheme's slow path: nodes whose rate * dt at the step's start or end exceeds h_max are
    integrated again from x0 in sub-steps (rate * h <= H_SUB), with the drive (coupling, noise) of the
    fixed step.
    hbuf: one element of the history precision (self-coupling reads the state as the ring holds it)."""
    for f in range(x.shape[1]):
        r, V = x0[0, f], x0[1, f]
        if not _stiff(par, f, dt, h_max, r, V, x[0, f], x[1, f]):
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
