"""Delayed linear coupling for the MPR kernel: the connectivity split by delay, and the numba loops that sum
it from the history ring.

Time-blocked coupling: an edge with delay d >= L only reads states at least L steps old, so its input to L
consecutive steps is known when they start: one streaming multiply-add over a contiguous window of the
source's history.  Edges are grouped into levels by delay: a level of window L holds the edges with
L <= d < 2L (the top level, L = K, every d >= K) and is summed once every L steps for the next L steps.
A dense connectome with a few short tracts (d of 8 steps) thus keeps long windows for almost all of its
edges instead of shrinking the block of every edge to the shortest delay.  Zero-delay edges are summed each
step from the current state (self-connections as a flat weight, others from a small ``local`` list).

History ring (see mpr.py): ``hist[v, j, pos * nb + b]``, pos = t mod R, its first K slots mirrored after
slot R-1, so that every window of up to K consecutive times is contiguous.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from tvbinv_hpc.sim.vmath import wide_vectors


@dataclass
class Topology:
    """Sparse, delay-split connectivity for the kernel: delayed edges in levels, each a CSR over targets."""

    lvl_k: np.ndarray    # (L,) int64 window of each level, descending; lvl_k[0] == block
    lvl_ptr: np.ndarray  # (L, N + 1) int64 CSR pointers of each level into far_src / far_w / far_d
    far_src: np.ndarray
    far_w: np.ndarray
    far_d: np.ndarray
    loc_ptr: np.ndarray
    loc_src: np.ndarray
    loc_w: np.ndarray
    self_w: np.ndarray  # (N,) zero-delay self-connection weights, applied per step from the current state
    block: int      # K: the longest window (the ring's mirror length)
    horizon: int    # max delay + 1 (TVB's horizon)
    tvb_order: bool = False

    @property
    def nnz(self) -> int:
        return self.far_src.size + self.loc_src.size + int(np.count_nonzero(self.self_w))

    @property
    def far_ptr(self) -> np.ndarray:
        """CSR pointers of the top level (every delayed edge in tvb_order mode)."""
        return self.lvl_ptr[0]


def _levels(block: int) -> list[int]:
    """Windows: the block, then the powers of two below it, down to 1."""
    out = [block]
    p = 1 << (block.bit_length() - 1)
    p = p // 2 if p == block else p
    while p >= 1:
        out.append(p)
        p //= 2
    return out


def make_topology(weights: np.ndarray, idelays: np.ndarray, dtype: type, max_block: int = 128,
                  tvb_order: bool = False) -> Topology:
    """Split non-zero weights into delay levels (delay >= 1) and a local list (delay 0); choose K.

    K = min(max_block, the longest delay): every edge with d >= K is summed over windows of K steps, a
    shorter one over the longest window L <= d of the levels K, 2^m, ..., 2, 1.  tvb_order: one level of
    window 1 with every edge, and the kernel sums each row as TVB does (validation)."""
    n = weights.shape[0]
    nz = weights != 0.0
    horizon = int(idelays[nz].max(initial=0)) + 1
    positive = idelays[nz & (idelays > 0)]
    block = int(min(max_block, positive.max())) if positive.size else int(max_block)
    diag = np.eye(n, dtype=bool)
    selfw = np.where(nz & diag & (idelays == 0), weights, 0.0).diagonal().astype(dtype)
    windows = _levels(block)
    level = np.full(idelays.shape, -1)
    for i, win in reversed(list(enumerate(windows))):     # the longest window L <= d
        level[nz & (idelays >= win)] = i
    loc = nz & (idelays == 0) & ~diag
    if tvb_order:
        if nz.sum(axis=1).max() > 900:
            raise ValueError("tvb_order supports at most 900 non-zero weights per row")
        block, windows, selfw = 1, [1], np.zeros_like(selfw)
        level, loc = np.where(nz, 0, -1), np.zeros_like(nz)
    used = [i for i in range(len(windows)) if i == 0 or np.any(level == i)]
    ptrs, src, w, d = [], [], [], []
    offset = 0
    for i in used:
        rows, cols = np.nonzero(level == i)     # row-major: targets ascending, sources ascending (as TVB)
        ptrs.append(offset + _csr_ptr(rows, n))
        offset += rows.size
        src.append(cols)
        w.append(weights[rows, cols])
        d.append(idelays[rows, cols])
    lrows, lcols = np.nonzero(loc)
    return Topology(np.array([windows[i] for i in used], np.int64), np.array(ptrs, np.int64),
                    np.concatenate(src).astype(np.int64), np.concatenate(w).astype(dtype),
                    np.concatenate(d).astype(np.int64), _csr_ptr(lrows, n), lcols.astype(np.int64),
                    weights[lrows, lcols].astype(dtype), selfw, block, horizon, tvb_order)


def _csr_ptr(rows: np.ndarray, n: int) -> np.ndarray:
    ptr = np.zeros(n + 1, np.int64)
    np.add.at(ptr, rows + 1, 1)
    return np.cumsum(ptr)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _window(hist, v, src, p, kbb):
    """kbb contiguous history values of source src from ring position p (lanes innermost)."""
    return hist[v, src, p:p + kbb]


@nb.njit(cache=True, error_model="numpy", fastmath={"contract"})
def add_level(hist, v, lvl_ptr, lvl, src, w, d, q, R, kl, k, acc, acct, lanes_t):
    """acct[v, k + j, i * nb + b] += the input of level lvl's edges to target i at step k + j, j < kl, for
    every target.  q: ring position of the state before step k (the newest state); every edge of the
    level has d >= kl, so each window is already in the ring.  Within a target the sum keeps the edge order,
    ((0 + w0 h0) + w1 h1) + ..., eight (then four) edges per pass: more windows in flight (the loads stall
    on L2/L3) and one pass over the accumulator."""
    wide_vectors()
    nb_ = len(lanes_t)           # compile-time: the transposition below unrolls
    kbb = kl * nb_
    a_ = acc[:kbb]
    n = lvl_ptr.shape[1] - 1
    nb_u = np.uint64(nb_)
    for i in range(n):
        a_[:] = 0
        e, e_end = lvl_ptr[lvl, i], lvl_ptr[lvl, i + 1]
        while e + 8 <= e_end:
            h0 = _window(hist, v, src[e], _pos(q, d[e], R, nb_), kbb)
            h1 = _window(hist, v, src[e + 1], _pos(q, d[e + 1], R, nb_), kbb)
            h2 = _window(hist, v, src[e + 2], _pos(q, d[e + 2], R, nb_), kbb)
            h3 = _window(hist, v, src[e + 3], _pos(q, d[e + 3], R, nb_), kbb)
            h4 = _window(hist, v, src[e + 4], _pos(q, d[e + 4], R, nb_), kbb)
            h5 = _window(hist, v, src[e + 5], _pos(q, d[e + 5], R, nb_), kbb)
            h6 = _window(hist, v, src[e + 6], _pos(q, d[e + 6], R, nb_), kbb)
            h7 = _window(hist, v, src[e + 7], _pos(q, d[e + 7], R, nb_), kbb)
            w0, w1, w2, w3 = w[e], w[e + 1], w[e + 2], w[e + 3]
            w4, w5, w6, w7 = w[e + 4], w[e + 5], w[e + 6], w[e + 7]
            for m in range(kbb):
                a_[m] = a_[m] + w0 * h0[m] + w1 * h1[m] + w2 * h2[m] + w3 * h3[m] + w4 * h4[m] \
                    + w5 * h5[m] + w6 * h6[m] + w7 * h7[m]
            e += 8
        while e + 4 <= e_end:
            h0 = _window(hist, v, src[e], _pos(q, d[e], R, nb_), kbb)
            h1 = _window(hist, v, src[e + 1], _pos(q, d[e + 1], R, nb_), kbb)
            h2 = _window(hist, v, src[e + 2], _pos(q, d[e + 2], R, nb_), kbb)
            h3 = _window(hist, v, src[e + 3], _pos(q, d[e + 3], R, nb_), kbb)
            w0, w1, w2, w3 = w[e], w[e + 1], w[e + 2], w[e + 3]
            for m in range(kbb):
                a_[m] = a_[m] + w0 * h0[m] + w1 * h1[m] + w2 * h2[m] + w3 * h3[m]
            e += 4
        while e < e_end:
            h0 = _window(hist, v, src[e], _pos(q, d[e], R, nb_), kbb)
            w0 = w[e]
            for m in range(kbb):
                a_[m] += w0 * h0[m]
            e += 1
        iu = np.uint64(i)
        for j in range(kl):                       # to step-major order (indices, not views)
            ju = np.uint64(j)
            row = np.uint64(k) + ju
            for b in range(nb_u):
                acct[v, row, iu * nb_u + b] = acct[v, row, iu * nb_u + b] + a_[ju * nb_u + b]


@nb.njit(cache=True, inline="always", error_model="numpy")
def _pos(q, d, R, nb_):
    """Flat ring offset of the state d steps before the one at position q (no integer division: d < R)."""
    p = q - d
    if p < 0:
        p += R
    return p * nb_


@nb.njit(cache=True, error_model="numpy")
def add_local(hist, loc_ptr, loc_src, loc_w, nv, nb_, pcur, loc, acct, k):
    """Zero-delay edges between different regions, from the current state (flat offset pcur), added to
    acct[:, k] after the delayed input: (delayed + local) + self, the order of the sum."""
    wide_vectors()
    n = loc_ptr.size - 1
    nflat = n * nb_
    for v in range(nv):
        for f in range(nflat):
            loc[v, f] = 0
        for i in range(n):
            for e in range(loc_ptr[i], loc_ptr[i + 1]):
                w = loc_w[e]
                j = loc_src[e]
                for b in range(nb_):
                    loc[v, i * nb_ + b] += w * hist[v, j, pcur + b]
        for f in range(nflat):
            acct[v, k, f] = acct[v, k, f] + loc[v, f]


@nb.njit(cache=True, error_model="numpy")
def tvb_order_step(hist, far_ptr, far_src, far_w, far_d, nv, nb_, s0, R, prod, zero, acct):
    """TVB's products and summation order for step s0 (K = 1, every edge in one list): acct[v, 0]."""
    n = far_ptr.size - 1
    for v in range(nv):
        for i in range(n):
            lo_, cnt = far_ptr[i], far_ptr[i + 1] - far_ptr[i]
            for b in range(nb_):
                for e in range(lo_, lo_ + cnt):
                    prod[e - lo_] = far_w[e] * hist[v, far_src[e], ((s0 - 1 - far_d[e]) % R) * nb_ + b]
                acct[v, 0, i * nb_ + b] = prod[0] + pairwise_sum(prod, 1, cnt - 1, zero) if cnt > 0 else zero


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
