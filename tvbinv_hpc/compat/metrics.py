"""tvb-inversion's ``Metric`` signature over tvbinv_hpc's feature registry.

``metric(t, y) -> list[float]``: BOLD times in ms and BOLD ``(T, N)`` or TVB's ``(T, 1, N, 1)`` in, scalars
out; ``metric.names`` lists them.  A registry metric is only a ``[[features]]`` table: ``run_local`` joins
all metrics' tables into one ``build_features`` call, so the simulations are summarised batched by the same
FeatureSet code as ``tvbinv-hpc simulate``, and ``metric(t, y)`` on an observation is
``FeatureSet.compute_empirical`` of that same table.  A subclass that overrides ``__call__`` (a custom
Python metric) or any callable with ``.names`` also works in ``run_local``: it is called once per simulation
with the BOLD times (ms) and BOLD shaped as TVB's ``(T, 1, N, 1)``, as tvb-inversion's metrics were.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tvbinv_hpc.errors import InputError, TvbinvError


def as_bold(y: Any) -> np.ndarray:
    """(T, N) float64 from (T, N) or TVB's (T, n_svar, N, n_modes) (first state variable and mode)."""
    a = np.asarray(y, dtype=np.float64)
    if a.ndim == 4:
        a = a[:, 0, :, 0]
    if a.ndim != 2:
        raise InputError(f"BOLD must be (time, regions) or TVB's (time, 1, regions, 1), got shape {a.shape}")
    return a


def tr_from_times(t: Any, n: int) -> float:
    """The sampling period in ms of ``n`` samples at times ``t`` (must be uniform)."""
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if t.size != n or n < 2:
        raise InputError(f"times t must have one entry per BOLD sample ({n}), got {t.size}")
    dt = np.diff(t)
    if not (dt > 0).all() or np.ptp(dt) > 1e-6 * dt.mean():
        raise InputError("times t must be increasing and uniformly spaced (the BOLD TR)")
    return float(dt.mean())


class Metric:
    """A feature of ``tvbinv_hpc.stats.FEATURES`` by name: ``Metric('fc_stats', quantiles=[0.5])``.

    Parameters
    ----------
    feature
        The registry name (a subclass may set it as a class attribute instead).
    burn_in
        Milliseconds of BOLD cut before computing; all metrics of one run must share it.
    **params
        The feature's parameters (see the README's feature table); checked when the metric is bound to a
        run's region count and TR.

    Raises
    ------
    TvbinvError
        An unknown feature name.
    """

    feature: str | None = None

    def __init__(self, feature: str | None = None, *, burn_in: float = 0.0, **params: Any):
        from tvbinv_hpc.stats import FEATURES

        feature = feature or self.feature
        if not _is_custom(self) and feature not in FEATURES:
            raise TvbinvError(f"unknown feature {feature!r}; known: {', '.join(sorted(FEATURES))}")
        self.feature = feature
        self.params = dict(params)
        self.burn_in = float(burn_in)
        self._names: list[str] | None = None

    def __repr__(self) -> str:
        if _is_custom(self):
            return object.__repr__(self)
        args = [f"{k}={v!r}" for k, v in self.params.items()]
        if type(self).feature is None:  # the generic Metric names its feature; subclasses are one
            args.insert(0, repr(self.feature))
        return f"{type(self).__name__}({', '.join(args)})"

    @property
    def spec(self) -> dict[str, Any]:
        """The ``[[features]]`` table this metric stands for."""
        return {"name": self.feature, **self.params}

    def feature_set(self, n_regions: int, tr_ms: float) -> Any:
        from tvbinv_hpc.errors import ConfigError
        from tvbinv_hpc.stats import build_features

        try:
            fs = build_features([self.spec], n_regions=n_regions, tr_ms=tr_ms, burn_in=self.burn_in)
        except ConfigError as exc:
            raise TvbinvError(f"{self!r}: {str(exc).split(': ', 1)[-1]}") from None
        self._names = list(fs.names)
        return fs

    def bind(self, n_regions: int, tr_ms: float) -> Metric:
        """Fix the data size, so that ``names`` is known before the first call (run_local does this)."""
        self.feature_set(n_regions, tr_ms)
        return self

    @property
    def names(self) -> list[str]:
        names = getattr(self, "_names", None)
        if names is None:
            raise TvbinvError(f"{self!r}: names depend on the number of regions and the TR; call it once, "
                              "run it with run_local, or call .bind(n_regions, tr_ms)")
        return list(names)

    @names.setter
    def names(self, value: Sequence[str]) -> None:  # custom metrics declare theirs
        self._names = list(value)

    summary_stats_labels = names  # tvb-inversion's attribute name

    def __call__(self, t: Any, y: Any) -> list[float]:
        bold = as_bold(y)
        fs = self.feature_set(bold.shape[1], tr_from_times(t, bold.shape[0]))
        return [float(v) for v in fs.compute_empirical(bold)]


class BoldFCDForSBI(Metric):
    """tvb-inversion's five BOLD/FCD summary statistics (HOMO_FC, FCD_STACK_STD_INTER_TENS,
    FCD_SUBJ_DIFF_VAR_OV_TENS, FC_SUM, FCD_SUM) of BOLD (tvb-inversion's took the temporal average and
    made the BOLD itself; here the engine makes it, see ``run_local(bold_tr=...)``).

    Parameters
    ----------
    win_len, win_sp
        FCD sliding-window length and step, in BOLD samples.
    hemispheres
        How regions pair into homotopic pairs for HOMO_FC: ``'halves'`` (tvb-inversion's layout),
        ``'interleaved'``, ``'auto'`` or ``{'left': [...], 'right': [...]}``.
    burn_in
        Milliseconds of BOLD cut before computing.
    **params
        Further parameters of the ``bold_fcd_for_sbi`` feature.
    """

    feature = "bold_fcd_for_sbi"

    def __init__(self, win_len: int = 20, win_sp: int = 1, hemispheres: Any = "halves", *,
                 burn_in: float = 0.0, **params: Any):
        super().__init__(None, burn_in=burn_in, win_len=win_len, win_sp=win_sp, hemispheres=hemispheres,
                         **params)
        self.win_len, self.win_sp = win_len, win_sp
        try:  # its five names do not depend on the data: known from the start, as in tvb-inversion
            self.bind(2, 1000.0)
        except TvbinvError:
            pass


def _is_custom(m: Any) -> bool:
    return not isinstance(m, Metric) or type(m).__call__ is not Metric.__call__


class MetricFeatures:
    """A FeatureSet look-alike for the driver: registry metrics batched through one FeatureSet, custom
    metrics called per simulation with the BOLD times; columns in the order of the metrics."""

    def __init__(self, metrics: Sequence[Any], n_regions: int, tr_ms: float, times_ms: np.ndarray):
        from tvbinv_hpc.stats import build_features

        metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
        if not metrics:
            raise TvbinvError("give at least one metric, e.g. [BoldFCDForSBI(win_len=20)]")
        reg = [m for m in metrics if not _is_custom(m)]
        burn = {m.burn_in for m in reg}
        if len(burn) > 1:
            raise TvbinvError(f"all metrics of a run must share burn_in, got {sorted(burn)}")
        self.burn_in = burn.pop() if burn else 0.0
        self.metrics, self.times = metrics, np.asarray(times_ms, dtype=np.float64)
        self.fs = None
        if reg:
            for m in reg:  # per-metric checks name the offending metric
                m.bind(n_regions, tr_ms)
            self.fs = build_features([m.spec for m in reg], n_regions=n_regions, tr_ms=tr_ms,
                                     burn_in=self.burn_in)
        self.names: list[str] = []
        self._cols: list[tuple[Any, slice]] = []
        for m in metrics:
            try:
                names = list(m.names)
            except (AttributeError, TvbinvError):
                names = list(getattr(m, "summary_stats_labels", None) or [])
            if not names:
                raise TvbinvError(f"custom metric {m!r} needs a .names list (one name per value it returns)")
            self._cols.append((m, slice(len(self.names), len(self.names) + len(names))))
            self.names += names
        if len(set(self.names)) != len(self.names):
            raise TvbinvError("two metrics produce the same names; give one of them label='...'")
        self.min_samples = self.fs.min_samples if self.fs is not None else 2

    def specs(self) -> list[Any]:
        """What identifies the computation: the effective feature tables (every default filled in) and
        each custom metric's class and attributes, in metric order."""
        full = iter(self.fs.describe() if self.fs is not None else [])
        return [next(full) if not _is_custom(m) else
                {"custom": f"{type(m).__module__}.{type(m).__qualname__}",
                 "attrs": {k: repr(v) for k, v in sorted(getattr(m, "__dict__", {}).items())}}
                for m in self.metrics]

    def compute(self, bold: np.ndarray) -> np.ndarray:
        out = np.full((bold.shape[0], len(self.names)), np.nan)
        x_reg = self.fs.compute(bold) if self.fs is not None else None
        k = 0
        for m, sl in self._cols:
            if not _is_custom(m):
                out[:, sl] = x_reg[:, k:k + sl.stop - sl.start]
                k += sl.stop - sl.start
                continue
            for b in range(bold.shape[0]):
                if np.isfinite(bold[b]).all():
                    try:
                        y = bold[b].astype(np.float64)[:, None, :, None]  # TVB's (T, 1, N, 1), as tvb-inversion
                        out[b, sl] = np.asarray(m(self.times.copy(), y), float)
                    except (ValueError, FloatingPointError, InputError):
                        pass  # a failing metric marks the row (status 'error'), like a NaN feature
        out[~np.isfinite(out).all(axis=1)] = np.nan
        return out
