"""Structure–function comparisons: the FC upper triangle against the connectome's SC, log(1 + SC) and tract
lengths, one definition shared by the ``fc_pattern`` feature and the report's structural baselines.

SC is the connectome as read (symmetrised here, as FC is symmetric). log(1 + SC) is not scale-free, and
weights are often normalised by their maximum (where log(1 + w) is nearly linear and the comparison
collapses onto raw SC): SC is therefore expressed in units of its smallest non-zero off-diagonal weight
first, which turns max-normalised streamline counts back into counts (the smallest count is 1) and so
gives log(1 + count) exactly. Pairs without a tract (length 0) have no length and are left out of the
length comparison.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Structure", "triu_corr_rows"]


class Structure:
    """Upper-triangle vectors of one connectome: ``sc``, ``log_sc`` (``sc_log_unit`` = the unit of SC used)
    and ``length`` with the mask ``has_length`` of pairs that have a tract."""

    def __init__(self, sc: np.ndarray, lengths: np.ndarray | None = None):
        w = np.abs(np.asarray(sc, dtype=np.float64))
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise ValueError(f"SC must be a square matrix, got shape {w.shape}")
        self.n_regions = w.shape[0]
        self.iu = np.triu_indices(self.n_regions, k=1)
        off = w[~np.eye(self.n_regions, dtype=bool)]
        pos = off[off > 0]   # the unit from the weights as given: the smallest count is 1 again
        sym = (w + w.T) / 2
        self.sc_log_unit = float(pos.min()) if pos.size else 1.0
        self.sc = sym[self.iu]
        self.log_sc = np.log1p(self.sc / self.sc_log_unit)
        self.length = self.has_length = None
        if lengths is not None:
            ln = np.asarray(lengths, dtype=np.float64)
            if ln.shape != w.shape:
                raise ValueError(f"tract lengths {ln.shape} and SC {w.shape} differ in shape")
            ln = ((ln + ln.T) / 2)[self.iu]
            self.length, self.has_length = ln, ln > 0


def triu_corr_rows(values: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pearson r of each row of ``values (B, m)`` with ``target (m,)`` over ``mask`` (all when None).

    A row with a NaN, or a constant row or target, gives NaN."""
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if mask is not None:
        v, t = v[:, mask], t[mask]
    t = t - t.mean()
    vc = v - v.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (vc @ t) / (np.sqrt((vc * vc).sum(axis=1)) * np.sqrt(t @ t))
    return np.where(np.isfinite(r), r, np.nan)
