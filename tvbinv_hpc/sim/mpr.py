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

from tvbinv_hpc.sim.bold import balloon_step, bold_signal
from tvbinv_hpc.sim.rng import hash2, normal_pair

# Numba cannot mark array arguments noalias, so LLVM vectorises a loop only behind runtime overlap checks,
# and gives up beyond 8 of them (the Heun loop needs ~40).  Raising the limit roughly halves its cost.
llb.set_option("", "--runtime-memory-check-threshold=128")

STATUS_OK = 1
STATUS_DIVERGED = 2
# rows of the per-lane parameter table (derived as TVB evaluates them, so rounding matches)
P_INV_TAU, P_DELTA_PT, P_PI2TAU2, P_JTAU, P_ETA, P_I, P_CR, P_CV, P_A, P_B, P_SIG_R, P_SIG_V = range(12)
N_PAR = 12


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


@nb.njit(cache=True, error_model="numpy")
def run_lanes(far_ptr, far_src, far_w, far_d, loc_ptr, loc_src, loc_w, selfw, K, R,
              hist, x, par, k1, k2, nctr, lane,
              dt, nstep, istep, has_noise, couple_v, tvb_order,
              bold_dt, bold_every, bold_first, bold_out, status, rec_tavg, rec_raw):
    """Advance nb lanes by nstep steps from time 0 (state x, history ring hist); returns steps done.

    hist (2, N, (R+K)*nb), x (2, N*nb) float64, par (N_PAR, N*nb), selfw (N*nb) zero-delay self weights,
    k1/k2 (N*nb) lane keys, nctr (N*nb) uint64 node index (noise counter = step * N + node), lane (N*nb)
    lane index; bold_out (nb, n_bold, N) float32; status (nb,) int8; rec_tavg (nb, n_tavg, 2, N) or empty;
    rec_raw (nb, nstep, 2, N) or empty.  tvb_order: K must be 1 and all edges in the far list (validation).
    """
    n = far_ptr.size - 1
    nb_ = x.shape[1] // n
    nflat = n * nb_
    nv = 2 if couple_v else 1
    hdt = hist.dtype.type
    acc = np.zeros((nv, n, K * nb_), dtype=hist.dtype)
    acct = np.zeros((nv, K, nflat), dtype=hist.dtype)
    loc = np.zeros((2, nflat), dtype=hist.dtype)
    prod = np.zeros(n + 1, dtype=hist.dtype)
    zero = hdt(0.0)
    has_local = loc_src.size > 0
    tsum = np.zeros((2, nflat))
    tmean = np.zeros((2, nflat))
    balloon = np.ones((4, nflat))
    balloon[0] = 0.0
    n_bold = bold_out.shape[1]
    n_written = 0
    bad = np.zeros(nb_, np.bool_)
    for b in range(nb_):
        bad[b] = status[b] != STATUS_OK
    do_raw = rec_raw.shape[1] > 0
    do_tavg = rec_tavg.shape[1] > 0
    n_u = np.uint64(n)
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
                a_ = acc[v, i, :kbb]
                a_[:] = 0
                for e in range(far_ptr[i], far_ptr[i + 1]):
                    p = ((s0 - 1 - far_d[e]) % R) * nb_
                    h = hist[v, far_src[e], p:p + kbb]
                    w = far_w[e]
                    for m in range(kbb):
                        a_[m] += w * h[m]
                for k in range(kb):                       # to step-major order (indices, not views)
                    for b in range(nb_):
                        acct[v, k, i * nb_ + b] = a_[k * nb_ + b]
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
            base = np.uint64(s) * n_u
            for f in range(nflat):
                if has_noise:                   # loop-invariant: LLVM unswitches it
                    zr, zv = normal_pair(hash2(base + nctr[f], k1[f], k2[f]))
                else:
                    zr, zv = np.float32(0.0), np.float32(0.0)
                r = x[0, f]
                V = x[1, f]
                inv_tau = par[P_INV_TAU, f]
                # self-connections (delay 0) read the current state as the ring holds it: hdt(x)
                c_r = par[P_A, f] * np.float64(acct[0, k, f] + loc[0, f] + selfw[f] * hdt(r)) + par[P_B, f]
                c_v = par[P_A, f] * np.float64(acct[nv - 1, k, f] + loc[1, f] + selfw[f] * hdt(V)) \
                    + par[P_B, f] if nv == 2 else par[P_B, f]
                crr = par[P_CR, f] * c_r          # added one by one, in TVB's order
                cvv = par[P_CV, f] * c_v
                nr = par[P_SIG_R, f] * np.float64(zr)
                nv_ = par[P_SIG_V, f] * np.float64(zv)
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
            for f in range(nflat):          # apart from the Heun loop: fewer arrays there for LLVM to check
                tsum[0, f] += x[0, f]
                tsum[1, f] += x[1, f]
            # the new state enters the ring (and its mirror) in the history precision
            q = s % R
            pq = q * nb_
            pm = (q + R) * nb_
            for v in range(nv):
                for i in range(n):
                    for b in range(nb_):
                        hist[v, i, pq + b] = hdt(x[v, i * nb_ + b])
                    if q < K:
                        for b in range(nb_):
                            hist[v, i, pm + b] = hist[v, i, pq + b]
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
                if j > 0:                                 # TVB: input sample j drives step j-1 -> j
                    balloon_step(balloon, tmean[0], bold_dt)
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
