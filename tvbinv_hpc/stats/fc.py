"""Static functional connectivity and the small reductions shared by the features.

``fc`` runs a numba kernel (kernels.py) parallel over simulations.
"""
from __future__ import annotations

import numpy as np

from .kernels import fc_kernel, row_moments

__all__ = ["as_batch", "fc", "triu_values", "row_stats", "moments", "MOMENTS"]


def as_batch(bold: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``bold`` as a C-contiguous float64 ``(B, T, N)`` array and whether it was ``(T, N)``."""
    x = np.asarray(bold)
    if x.ndim == 2:
        return np.ascontiguousarray(x[None], dtype=np.float64), True
    if x.ndim == 3:
        return np.ascontiguousarray(x, dtype=np.float64), False
    raise ValueError(f"BOLD must have shape (B, T, N) or (T, N), got shape {x.shape}")


def fc(bold: np.ndarray) -> np.ndarray:
    """Pearson correlation between regions: ``(B, T, N) -> (B, N, N)`` or ``(T, N) -> (N, N)``.

    Same values as ``np.corrcoef(bold[b].T)`` (clipped to [-1, 1]); a constant region gives a NaN row
    and column, as in numpy, without a warning (see kernels.py for "constant").
    """
    x, single = as_batch(bold)
    c = np.empty((x.shape[0], x.shape[2], x.shape[2]))
    fc_kernel(x, c)
    return c[0] if single else c


def triu_values(mats: np.ndarray, k: int = 1) -> np.ndarray:
    """Upper triangle (offset ``k``) of each matrix in ``(B, n, n)`` as ``(B, n_pairs)``, row-major order."""
    i, j = np.triu_indices(mats.shape[-1], k=k)
    return mats[:, i, j]


def row_stats(values: np.ndarray, stats: list[str]) -> np.ndarray:
    """Named population moments of each row of ``values (B, m)``, ``(B, len(stats))``.

    mean, std, var, skew (m3 / m2^1.5) and kurtosis (Fisher: m4 / m2^2 - 3), as scipy.stats' defaults.
    """
    mo = row_moments(np.ascontiguousarray(values, dtype=np.float64))
    mu, m2, m3, m4 = mo.T
    table = {"mean": lambda: mu, "std": lambda: np.sqrt(m2), "var": lambda: m2,
             "skew": lambda: m3 / m2**1.5, "kurtosis": lambda: m4 / m2**2 - 3.0}
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([table[s]() for s in stats], axis=1) if stats else np.empty((len(mu), 0))


MOMENTS = ("mean", "std", "var", "skew", "kurtosis")


def moments(values: np.ndarray, stats: list[str], quantiles: list[float]) -> np.ndarray:
    """Row statistics of ``values (B, m)``: the named moments then the quantiles, ``(B, len(stats)+len(q))``.

    A row containing NaN yields NaN everywhere; a constant row yields NaN skewness and kurtosis.
    Quantiles: numpy's default 'linear' method.
    """
    out = np.empty((values.shape[0], len(stats) + len(quantiles)))
    out[:, :len(stats)] = row_stats(values, stats)
    if quantiles:
        out[:, len(stats):] = np.quantile(values, quantiles, axis=1).T  # NaN rows give NaN
    return out
