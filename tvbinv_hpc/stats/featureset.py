"""Build a :class:`FeatureSet` from the config's ``[[features]]`` tables and apply it to BOLD.

Config format (one table per feature; unknown names, parameters or values raise ``ConfigError`` keyed
``features[i].<param>``)::

    [[features]]
    name = "bold_fcd_for_sbi"
    win_len = 20          # TR samples; or win_len_s = 40.0 (seconds, a whole number of TRs)
    win_sp = 1
    hemispheres = "auto"     # the connectome's pairing; or "halves", "interleaved", {left = [...], right = [...]}

The burn-in (ms of BOLD, converted with the TR and rounded up to whole samples) is cut before every
feature.  A simulation whose BOLD is not finite, or for which any feature is NaN (e.g. a region constant
within a window), gets an all-NaN row; the other rows are unaffected.
"""
from __future__ import annotations

import copy
import math
import numbers
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..schema import Key, config_key
from .fc import as_batch
from .features import COMMON_PARAMS, FEATURES, Batch, Feature
from .hemispheres import Hemispheres, RegionInfo
from .params import Context, seconds_to_samples
from .preprocess import Preprocess, build_preprocess

__all__ = ["FeatureSet", "build_features", "feature_defaults", "DEFAULT_FEATURES"]

# For G, eta and noise from ~150 TRs of 76-region BOLD: tvb-inversion's five (comparability with the seed),
# FC distribution and spectrum (coupling), FCD distribution (noise / excitability driven dynamics).
DEFAULT_FEATURES: list[dict[str, Any]] = [
    {"name": "bold_fcd_for_sbi", "win_len": 20, "win_sp": 1, "hemispheres": "auto"},
    {"name": "fc_stats"},
    {"name": "fc_eigenvalues", "n": 3},
    {"name": "homotopic_fc", "hemispheres": "auto"},
    {"name": "fcd_stats", "win_len": 20, "win_sp": 1, "include_last": False, "min_lag": 20},
]

# The [stats] section of the config (validated by config.py; burn-in, preprocessing and the feature list
# are this module's inputs).
STATS_SCHEMA: dict[str, Key] = {
    "burn_in": config_key(float, 0.0, "Milliseconds of BOLD dropped before every feature."),
    "detrend": config_key(str, "none", "Remove each region's mean ('constant') or linear trend ('linear') after the "
                         "burn-in; observed and simulated BOLD alike.", choices=("none", "constant", "linear")),
    "bandpass": config_key(list, [], "[low, high] Hz zero-phase Butterworth band-pass (low 0: low-pass), e.g. "
                          "[0.01, 0.1]; [] for none. Applied to observed and simulated BOLD alike."),
    "gsr": config_key(bool, False, "Global signal regression: regress the mean over regions out of every region "
                     "(after detrend and band-pass)."),
    "zscore": config_key(bool, False, "z-score every region's series last (FC and FCD do not change; per-region "
                        "BOLD statistics do)."),
    "features": config_key(list, None, "List of feature tables ([[stats.features]], name + parameters); "
                          "default: tvbinv_hpc.stats.DEFAULT_FEATURES."),
}



def _params(cls: type[Feature]):
    return {**cls.params, **COMMON_PARAMS}


def feature_defaults() -> dict[str, dict]:
    """Per feature name: ``{param: {"default": value, "doc": one line}}`` (for the config reference)."""
    return {name: {p: {"default": copy.deepcopy(spec.default), "doc": spec.doc}
                   for p, spec in _params(cls).items()}
            for name, cls in FEATURES.items()}


def _build_one(i: int, spec: Any, ctx: Context) -> Feature:
    where = f"features[{i}]"
    if not isinstance(spec, dict):
        raise ConfigError(where, f"must be a table with a 'name', got {spec!r}")
    name = spec.get("name")
    if not isinstance(name, str) or name not in FEATURES:
        raise ConfigError(f"{where}.name", f"unknown feature {name!r}; known: {sorted(FEATURES)}")
    params = _params(FEATURES[name])
    values: dict[str, Any] = {}
    for key, raw in spec.items():
        if key == "name":
            continue
        target = key[:-2] if key.endswith("_s") and key[:-2] in params else key
        p = params.get(target)
        if p is None or (target != key and not p.seconds_alias):
            raise ConfigError(f"{where}.{key}", f"unknown parameter for feature '{name}'; "
                              f"known: {sorted(params)}")
        if target in values:
            raise ConfigError(f"{where}.{key}", f"give either {target} or {target}_s, not both")
        try:
            if target != key:
                values[target] = seconds_to_samples(raw, ctx, 1)
                values[target] = p.check(values[target], ctx)
            else:
                values[target] = p.check(raw, ctx)
        except ValueError as e:
            raise ConfigError(f"{where}.{key}", str(e)) from None
    for p_name, p in params.items():  # defaults go through the same check (e.g. 'halves' vs odd N)
        if p_name not in values:
            try:
                values[p_name] = p.check(copy.deepcopy(p.default), ctx)
            except ValueError as e:
                raise ConfigError(f"{where}.{p_name}", f"default {p.default!r}: {e}") from None
    return FEATURES[name]({k: values[k] for k in params}, ctx)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def build_features(specs: list[dict], *, n_regions: int, tr_ms: float, burn_in: float = 0.0,
                   regions: RegionInfo | None = None, preprocess: dict | None = None) -> FeatureSet:
    """Validate the ``[[features]]`` tables and return the :class:`FeatureSet` they describe.

    ``regions``: the connectome's labels, centres and hemisphere statement (for ``hemispheres = "auto"``);
    ``preprocess``: the BOLD preprocessing applied after the burn-in and before every feature
    (:mod:`tvbinv_hpc.stats.preprocess`; None: none)."""
    if not (isinstance(n_regions, (int, np.integer)) and n_regions >= 2):
        raise ValueError(f"n_regions must be an integer >= 2, got {n_regions!r}")
    if not (_is_real(tr_ms) and math.isfinite(tr_ms) and tr_ms > 0):
        raise ValueError(f"tr_ms must be a positive number, got {tr_ms!r}")
    if not (_is_real(burn_in) and math.isfinite(burn_in) and burn_in >= 0):
        raise ConfigError("burn_in", f"must be a number of ms >= 0, got {burn_in!r}")
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ConfigError("features", "must be a non-empty list of [[features]] tables")
    ctx = Context(int(n_regions), float(tr_ms), regions)
    feats = [_build_one(i, s, ctx) for i, s in enumerate(specs)]
    seen: dict[str, int] = {}
    for i, f in enumerate(feats):
        for n in f.names:
            if n in seen:
                raise ConfigError(f"features[{i}].label", f"name '{n}' is already produced by "
                                  f"features[{seen[n]}]; set a distinct label")
            seen[n] = i
    n_burn = math.ceil(burn_in / tr_ms - 1e-9)
    return FeatureSet(feats, ctx, float(burn_in), n_burn, build_preprocess(preprocess, float(tr_ms)))


class FeatureSet:
    """An ordered list of features; ``compute`` maps BOLD ``(B, T, N)`` to ``x (B, k)``.

    ``names``: the k names in order; ``min_samples``: BOLD length needed, burn-in included;
    ``burn_in_ms`` / ``burn_in_samples``: the cut applied first; ``preprocess``: what follows it
    (:meth:`prepare` does both, for anything else that must see the BOLD as the features do).
    """

    def __init__(self, features: list[Feature], ctx: Context, burn_in_ms: float, burn_in_samples: int,
                 preprocess: Preprocess | None = None):
        self.features = features
        self.n_regions = ctx.n_regions
        self.tr_ms = ctx.tr_ms
        self.burn_in_ms = burn_in_ms
        self.burn_in_samples = burn_in_samples
        self.preprocess = preprocess or Preprocess()
        self.names: list[str] = [n for f in features for n in f.names]
        self.min_samples: int = burn_in_samples + max(max(f.min_samples() for f in features),
                                                      self.preprocess.min_samples(self.tr_ms))
        self.hemispheres = next((v for f in features for v in f.values.values() if isinstance(v, Hemispheres)),
                                None)
        self._slices = []
        k = 0
        for f in features:
            self._slices.append(slice(k, k + len(f.names)))
            k += len(f.names)

    def __len__(self) -> int:
        return len(self.names)

    def warnings(self, n_bold: int) -> list[str]:
        """Features that can be computed on ``n_bold`` samples but say little there (see Feature.warnings)."""
        return [w for f in self.features for w in f.warnings(n_bold - self.burn_in_samples)]

    def describe(self) -> list[dict]:
        """The effective specs, every default filled in; valid input to :func:`build_features`."""
        return [f.describe() for f in self.features]

    def prepare(self, bold: np.ndarray) -> np.ndarray:
        """BOLD ``(..., T, N)`` as every feature sees it: burn-in cut, then the preprocessing (float64)."""
        return self.preprocess.apply(np.asarray(bold)[..., self.burn_in_samples:, :], self.tr_ms)

    def compute(self, bold: np.ndarray) -> np.ndarray:
        """``(B, T, N)`` float32/64 -> ``(B, k)`` float64; a non-finite or failing simulation -> NaN row."""
        x, _ = as_batch(bold)
        if np.asarray(bold).ndim != 3:
            raise ValueError(f"compute expects BOLD (B, T, N), got shape {np.shape(bold)}; "
                             "use compute_empirical for one (T, N) series")
        n_sim, n_t, n_reg = x.shape
        if n_reg != self.n_regions:
            raise ValueError(f"BOLD has {n_reg} regions, the features were built for {self.n_regions}")
        if n_t < self.min_samples:
            raise ValueError(f"BOLD has {n_t} samples, the features need >= {self.min_samples} "
                             f"(burn-in {self.burn_in_samples} included)")
        out = np.full((n_sim, len(self.names)), np.nan)
        ok = np.isfinite(x).all(axis=(1, 2))
        if ok.any():
            batch = Batch(np.ascontiguousarray(self.prepare(x[ok])))
            vals = np.empty((int(ok.sum()), len(self.names)))
            with np.errstate(invalid="ignore", divide="ignore"):
                for f, sl in zip(self.features, self._slices):
                    vals[:, sl] = f.compute(batch)
            vals[~np.isfinite(vals).all(axis=1)] = np.nan  # one NaN feature marks the whole row
            out[ok] = vals
        return out

    def compute_empirical(self, bold: np.ndarray) -> np.ndarray:
        """One subject's BOLD ``(T, N)`` -> ``(k,)``, refusing input the features cannot use (InputError)."""
        try:
            a = np.asarray(bold, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(f"empirical BOLD is not a numeric array: {e}") from None
        if a.ndim != 2:
            raise InputError(f"empirical BOLD must be 2-D (time, regions), got shape {a.shape}")
        n_t, n_reg = a.shape
        if n_reg != self.n_regions:
            hint = " (is it (regions, time)? transpose it)" if n_t == self.n_regions else ""
            raise InputError(f"empirical BOLD has {n_reg} regions (columns), the connectome has "
                             f"{self.n_regions}{hint}")
        if n_t < self.min_samples:
            raise InputError(f"empirical BOLD has {n_t} samples, the features need at least "
                             f"{self.min_samples} (burn-in of {self.burn_in_samples} samples included)")
        bad = np.flatnonzero(~np.isfinite(a).all(axis=0))
        if bad.size:
            raise InputError(f"empirical BOLD has NaN/inf in region(s) {bad.tolist()}")
        kept = a[self.burn_in_samples:]
        const = np.flatnonzero(kept.max(axis=0) == kept.min(axis=0))
        if const.size:
            raise InputError(f"empirical BOLD is constant in region(s) {const.tolist()} after the burn-in; "
                             "correlations with them are undefined")
        x = self.compute(a[None])[0]
        if not np.isfinite(x).all():
            # compute() NaNs the whole row; recompute per feature to name the culprits
            batch = Batch(np.ascontiguousarray(self.prepare(a[None])))
            with np.errstate(invalid="ignore", divide="ignore"):
                failed = [n for f in self.features
                          for n, v in zip(f.names, f.compute(batch)[0]) if not np.isfinite(v)]
            raise InputError(f"features {failed} are NaN for this empirical BOLD (e.g. a region constant "
                             "within a sliding window)")
        return x
