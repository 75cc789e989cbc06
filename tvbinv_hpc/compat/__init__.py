"""tvb-inversion's API (PytorchPrior, sbiModel, SimSeq, metrics, run_local, run_dask, EstimatorSBI, shrinkage,
zscore) as thin layers over tvbinv_hpc's engine, store, driver and inference code.

``tvbinv_hpc.compat.tvb_inversion`` mirrors tvb-inversion's module paths (``tvb_inversion.sbi``, ``.utils``,
...), so that its users' code runs with only the import lines changed.

Names load on first use, so that importing the package (or a simulating MPI rank) does not pay for torch
and sbi until a name that needs them is touched.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Prior": "prior", "PytorchPrior": "prior",
    "SimSeq": "model", "sbiModel": "model", "SBIModel": "model",
    "Metric": "metrics", "BoldFCDForSBI": "metrics",
    "RunSummary": "run", "run_local": "run", "run_mpi": "run", "run_dask": "dask_run",
    "EstimatorSBI": "estimator", "Posterior": "estimator", "SummaryStats": "estimator",
}
_INFERENCE = ("shrinkage", "zscore")  # re-exported from tvbinv_hpc.inference

__all__ = [*_LAZY, *_INFERENCE]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"tvbinv_hpc.compat.{_LAZY[name]}"), name)
    if name in _INFERENCE:
        return getattr(importlib.import_module("tvbinv_hpc.inference"), name)
    raise AttributeError(f"module 'tvbinv_hpc.compat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
