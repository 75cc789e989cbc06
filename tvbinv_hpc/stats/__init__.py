"""Summary statistics of BOLD: FC, sliding-window FCD and a registry of named features.

``build_features(specs, n_regions=..., tr_ms=..., burn_in=...)`` -> :class:`FeatureSet` whose
``compute(bold (B, T, N)) -> x (B, k)`` and ``compute_empirical(bold (T, N)) -> (k,)`` share one code
path; ``names`` lists the k scalars in a stable order.
"""
from .fc import fc
from .fcd import fcd, fcd_filtered, window_starts
from .features import FEATURES
from .featureset import DEFAULT_FEATURES, FeatureSet, build_features, feature_defaults

__all__ = ["fc", "fcd", "fcd_filtered", "window_starts", "FeatureSet", "build_features", "FEATURES",
           "feature_defaults", "DEFAULT_FEATURES"]
