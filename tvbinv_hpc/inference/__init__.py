"""Inference on rank 0: train sbi's NPE, read the observation, diagnose and report the posterior.

The config tables and validators import eagerly (no torch); everything else loads on first use, so
reading a config or starting the simulating ranks does not pay for importing torch, sbi and matplotlib.
"""
from __future__ import annotations

import importlib
from typing import Any

from tvbinv_hpc.inference.settings import DIAGNOSE_DEFAULTS, TRAIN_DEFAULTS, validate_diagnose, validate_train

_LAZY = {
    "diagnose": "workflow", "calibrate": "workflow",
    "fc_compare": "diagnostics", "fcd_agreement": "diagnostics", "ppc_compare": "diagnostics",
    "sc_baselines": "diagnostics", "shrinkage": "diagnostics", "prior_predictive_check": "priorcheck",
    "summarize_samples": "diagnostics", "zscore": "diagnostics",
    "load_empirical_bold": "observe",
    "TrainedPosterior": "train", "min_train_rows": "train", "resolve_threads": "train", "train_posterior": "train",
    "is_trained": "posterior", "load_posterior": "posterior", "sample_posterior": "posterior",
    "save_posterior": "posterior",
}

__all__ = ["DIAGNOSE_DEFAULTS", "TRAIN_DEFAULTS", "validate_diagnose", "validate_train", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"tvbinv_hpc.inference.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tvbinv_hpc.inference' has no attribute {name!r}")
