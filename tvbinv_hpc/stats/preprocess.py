"""BOLD preprocessing shared by observed and simulated series: detrend, band-pass, global-signal
regression, z-score — in that order, after the burn-in and before any feature.

One code path serves both (``FeatureSet`` applies it to every (T, N) series it summarises), so the
observation can never be treated differently from the simulations it is compared with.  Each series is
processed on its own, so a simulation's features never depend on its batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tvbinv_hpc.errors import ConfigError

DETRENDS = ("none", "constant", "linear")
BANDPASS_ORDER = 2   # Butterworth order per pass; zero-phase forward-backward doubles it (fMRI's usual choice)


@dataclass(frozen=True)
class Preprocess:
    detrend: str = "none"                       # remove each region's mean ("constant") or line ("linear")
    bandpass: tuple[float, float] | None = None  # Hz; low = 0 is a low-pass
    gsr: bool = False                           # regress the mean over regions out of every region
    zscore: bool = False                        # unit variance per region (FC/FCD are unchanged by it)

    @property
    def active(self) -> bool:
        return self.detrend != "none" or self.bandpass is not None or self.gsr or self.zscore

    def describe(self) -> str:
        steps = []
        if self.detrend != "none":
            steps.append(f"{self.detrend} detrend")
        if self.bandpass is not None:
            lo, hi = self.bandpass
            steps.append(f"band-pass {lo:g}-{hi:g} Hz" if lo > 0 else f"low-pass {hi:g} Hz")
        if self.gsr:
            steps.append("global signal regression")
        if self.zscore:
            steps.append("z-score")
        return ", ".join(steps) or "none"

    def _sos(self, tr_ms: float) -> np.ndarray:
        from scipy.signal import butter

        lo, hi = self.bandpass  # type: ignore[misc]
        fs = 1000.0 / tr_ms
        if lo > 0:
            return butter(BANDPASS_ORDER, [lo, hi], btype="bandpass", fs=fs, output="sos")
        return butter(BANDPASS_ORDER, hi, btype="lowpass", fs=fs, output="sos")

    def min_samples(self, tr_ms: float) -> int:
        """Samples the filter needs (scipy's sosfiltfilt pads 3 x its order on each side)."""
        if self.bandpass is None:
            return 3 if self.detrend == "linear" else 2
        sos = self._sos(tr_ms)
        return 3 * (2 * len(sos) + 1) + 1

    def apply(self, bold: np.ndarray, tr_ms: float) -> np.ndarray:
        """(B, T, N) or (T, N) float -> float64 of the same shape, each series on its own."""
        a = np.array(bold, dtype=np.float64)
        if not self.active:
            return a
        sos = self._sos(tr_ms) if self.bandpass is not None else None
        series = a[None] if a.ndim == 2 else a
        for b in range(series.shape[0]):
            series[b] = self._one(series[b], sos)
        return a

    def _one(self, x: np.ndarray, sos: np.ndarray | None) -> np.ndarray:
        # Projections as explicit column sums rather than BLAS products: numpy's reduction order is fixed,
        # so the result is the same bits whatever the BLAS library or its thread count.
        if self.detrend != "none" or sos is not None or self.gsr:
            x = x - x.mean(axis=0)       # the filter and the regression act on fluctuations
        if self.detrend == "linear":
            t = np.arange(x.shape[0], dtype=np.float64)
            t -= t.mean()
            x = x - np.outer(t, (t[:, None] * x).sum(axis=0) / np.sum(t * t))
        if sos is not None:
            from scipy.signal import sosfiltfilt

            x = sosfiltfilt(sos, x, axis=0)
        if self.gsr:
            g = x.mean(axis=1)
            gg = np.sum(g * g)
            if gg > 0:
                x = x - np.outer(g, (g[:, None] * x).sum(axis=0) / gg)
        if self.zscore:
            sd = x.std(axis=0)
            x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        return x


def build_preprocess(spec: dict[str, Any] | None, tr_ms: float) -> Preprocess:
    """Check the ``[stats]`` preprocessing keys (detrend, bandpass, gsr, zscore) against the TR."""
    spec = dict(spec or {})
    detrend = spec.get("detrend", "none")
    if detrend not in DETRENDS:
        raise ConfigError("detrend", f"{detrend!r} is not one of {', '.join(map(repr, DETRENDS))}")
    band = spec.get("bandpass") or []
    nyquist = 500.0 / tr_ms
    if band:
        if (not isinstance(band, (list, tuple)) or len(band) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in band)):
            raise ConfigError("bandpass", f"expected [low, high] in Hz (low 0: low-pass) or [], got {band!r}")
        lo, hi = float(band[0]), float(band[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi < nyquist):
            raise ConfigError("bandpass", f"[{lo:g}, {hi:g}] Hz: need 0 <= low < high < {nyquist:g} Hz "
                                          f"(the Nyquist frequency of TR {tr_ms:g} ms)")
        bandpass: tuple[float, float] | None = (lo, hi)
    else:
        bandpass = None
    for key in ("gsr", "zscore"):
        if not isinstance(spec.get(key, False), bool):
            raise ConfigError(key, f"expected true/false, got {spec.get(key)!r}")
    return Preprocess(detrend, bandpass, bool(spec.get("gsr", False)), bool(spec.get("zscore", False)))
