"""Numba kernels for FC and sliding-window FCD; one simulation per parallel iteration, no I/O.

Every simulation is computed by the same scalar loops whatever the batch, so results are bit-identical
under any batch composition.  A series whose spread is at rounding level (std <= 1e-12 |mean|, e.g. a
constant region whose mean does not round exactly) is treated as constant: its correlations are NaN,
as np.corrcoef gives for an exactly constant series, instead of amplified rounding noise.
"""
from __future__ import annotations

import numba as nb
import numpy as np

REL_FLAT = 1e-12


@nb.njit(cache=True, error_model="numpy")
def _unit(v: np.ndarray) -> None:
    """In place: centre ``v`` and scale to unit norm (all NaN if flat)."""
    n = v.size
    mu = 0.0
    for k in range(n):
        mu += v[k]
    mu /= n
    ss = 0.0
    for k in range(n):
        v[k] -= mu
        ss += v[k] * v[k]
    inv = np.nan if ss <= n * (REL_FLAT * mu) ** 2 else 1.0 / np.sqrt(ss)
    for k in range(n):
        v[k] *= inv


# Reassociation lets LLVM vectorise the dot products; no 'nnan'/'ninf' so NaN still propagates.
_FAST = {"reassoc", "contract"}


@nb.njit(cache=True, error_model="numpy", fastmath=_FAST)
def _dot(x, y) -> float:
    s = 0.0
    for k in range(x.size):
        s += x[k] * y[k]
    return s


@nb.njit(cache=True, error_model="numpy")
def _clip(x: float) -> float:
    return 1.0 if x > 1.0 else (-1.0 if x < -1.0 else x)  # NaN passes through


@nb.njit(cache=True, error_model="numpy")
def _window_z(bold, b, t0, win_len, z) -> None:
    # z[n, :] = unit-norm centred BOLD of region n over [t0, t0 + win_len)
    for n in range(bold.shape[2]):
        for t in range(win_len):
            z[n, t] = bold[b, t0 + t, n]
        _unit(z[n])


@nb.njit(parallel=True, cache=True, error_model="numpy")
def fc_kernel(bold, out):
    n_sim, n_t, n_reg = bold.shape
    for b in nb.prange(n_sim):
        z = np.empty((n_reg, n_t))
        _window_z(bold, b, 0, n_t, z)
        for i in range(n_reg):
            for j in range(i, n_reg):
                out[b, i, j] = out[b, j, i] = _clip(_dot(z[i], z[j]))


@nb.njit(cache=True, error_model="numpy")
def _corr_rows(a, out) -> None:
    # out = correlation between the rows of a (a is overwritten)
    # own loops, not BLAS: BLAS threads inside the parallel loop oversubscribe the cores
    for w in range(a.shape[0]):
        _unit(a[w])
    for u in range(a.shape[0]):
        for v in range(u, a.shape[0]):
            out[u, v] = out[v, u] = _clip(_dot(a[u], a[v]))


@nb.njit(parallel=True, cache=True, error_model="numpy")
def fcd_kernel(bold, starts, win_len, pair_i, pair_j, filt, with_filt, fcd_out, fcdf_out, stdf_out):
    """Per simulation: the (windows, pairs) stack of window-FC upper triangles, its FCD and, if
    ``with_filt``, the FCD and std of the stack filtered as ``fc * (fc > 0) * filt``."""
    n_sim, _, n_reg = bold.shape
    n_win = starts.size
    n_pair = pair_i.size
    for b in nb.prange(n_sim):
        stack = np.empty((n_win, n_pair))
        stackf = np.empty((n_win if with_filt else 1, n_pair))
        z = np.empty((n_reg, win_len))
        for w in range(n_win):
            _window_z(bold, b, starts[w], win_len, z)
            for p in range(n_pair):
                i = pair_i[p]
                j = pair_j[p]
                s = _clip(_dot(z[i], z[j]))
                stack[w, p] = s
                if with_filt:
                    # fc * (fc > 0) * mask, written so that NaN stays NaN as in tvb-inversion
                    stackf[w, p] = s * (1.0 if s > 0.0 else 0.0) * filt[p]
        if with_filt:
            mu = 0.0
            for w in range(n_win):
                for p in range(n_pair):
                    mu += stackf[w, p]
            mu /= n_win * n_pair
            ss = 0.0
            for w in range(n_win):
                for p in range(n_pair):
                    d = stackf[w, p] - mu
                    ss += d * d
            stdf_out[b] = np.sqrt(ss / (n_win * n_pair))
            _corr_rows(stackf, fcdf_out[b])
        _corr_rows(stack, fcd_out[b])


@nb.njit(parallel=True, cache=True, error_model="numpy")
def row_moments(a):
    """Per row of ``a (B, m)``: mean and central moments m2, m3, m4 (population), two-pass.

    Sequential sums per row, so a row's result does not depend on the other rows (numpy's axis
    reductions may change summation order with the batch size)."""
    n_row, m = a.shape
    out = np.empty((n_row, 4))
    for r in nb.prange(n_row):
        mu = 0.0
        for k in range(m):
            mu += a[r, k]
        mu /= m
        m2 = m3 = m4 = 0.0
        for k in range(m):
            d = a[r, k] - mu
            d2 = d * d
            m2 += d2
            m3 += d2 * d
            m4 += d2 * d2
        out[r, 0] = mu
        out[r, 1] = m2 / m
        out[r, 2] = m3 / m
        out[r, 3] = m4 / m
    return out
