"""Sliding-window functional connectivity dynamics (FCD), batched over simulations (kernels.py).

For each simulation and window the kernel z-scores the window, takes the upper triangle (k = 1) of the
window FC and keeps the ``(n_windows, n_pairs)`` stack in a per-simulation buffer; the FCD is then the
correlation between the rows of that stack (one BLAS product).  The batch stack is never materialised:
memory is O(threads * n_windows * n_pairs), not O(B * ...).
"""
from __future__ import annotations

import numpy as np

from .fc import as_batch
from .kernels import fcd_kernel

__all__ = ["window_starts", "fcd", "fcd_filtered"]


def window_starts(n_samples: int, win_len: int, win_sp: int, include_last: bool = True) -> np.ndarray:
    """Start indices of the windows ``[t0, t0 + win_len)``.

    ``include_last=True`` gives every full window, ``range(0, T - win_len + 1, win_sp)``;
    ``include_last=False`` is tvb-inversion's ``range(0, T - win_len, win_sp)``, which omits the last
    possible window.
    """
    if win_len < 2 or win_sp < 1:
        raise ValueError(f"need win_len >= 2 and win_sp >= 1, got win_len={win_len}, win_sp={win_sp}")
    stop = n_samples - win_len + (1 if include_last else 0)
    return np.arange(0, max(stop, 0), win_sp, dtype=np.int64)


def _run(bold, win_len, win_sp, include_last, filt_mask):
    x, single = as_batch(bold)
    n_sim, n_t, n_reg = x.shape
    starts = window_starts(n_t, win_len, win_sp, include_last)
    if starts.size < 2:
        raise ValueError(f"{n_t} samples give {starts.size} window(s) of length {win_len}, step {win_sp}; "
                         "FCD needs at least 2")
    pair_i, pair_j = np.triu_indices(n_reg, k=1)
    pair_i = pair_i.astype(np.int64)
    pair_j = pair_j.astype(np.int64)
    with_filt = filt_mask is not None
    filt = (np.asarray(filt_mask, dtype=np.float64)[pair_i, pair_j] if with_filt
            else np.zeros(1))
    n_win = starts.size
    fcd_out = np.empty((n_sim, n_win, n_win))
    fcdf_out = np.empty((n_sim, n_win, n_win) if with_filt else (1, 1, 1))
    stdf_out = np.empty(n_sim if with_filt else 1)
    fcd_kernel(x, starts, int(win_len), pair_i, pair_j, filt, with_filt, fcd_out, fcdf_out, stdf_out)
    return single, fcd_out, fcdf_out, stdf_out


def fcd(bold: np.ndarray, window: int, step: int, *, include_last: bool = True) -> np.ndarray:
    """FCD matrix: correlation between the upper triangles (k = 1) of the sliding-window FCs.

    ``(B, T, N) -> (B, W, W)`` or ``(T, N) -> (W, W)``, windows from :func:`window_starts`.
    Equals ``np.corrcoef(np.array([np.corrcoef(b[t0:t0+window].T)[np.triu_indices(N, 1)] ...]))``.
    A region constant within a window makes that window's row NaN.
    """
    single, out, _, _ = _run(bold, int(window), int(step), include_last, None)
    return out[0] if single else out


def fcd_filtered(bold: np.ndarray, window: int, step: int, mask: np.ndarray, *,
                 include_last: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FCD, FCD of the filtered window FCs ``fc * (fc > 0) * mask`` and the std of the filtered stack.

    This is tvb-inversion's ``compute_fcd`` + ``compute_fcd_filt`` in one pass: returns
    ``(fcd (B, W, W), fcd_filtered (B, W, W), stack_std (B,))`` (leading axis dropped for ``(T, N)``);
    the std is over the whole ``(W, N(N-1)/2)`` stack, zeros included, ddof 0.
    """
    single, out, outf, stdf = _run(bold, int(window), int(step), include_last, mask)
    if single:
        return out[0], outf[0], stdf[0]
    return out, outf, stdf
