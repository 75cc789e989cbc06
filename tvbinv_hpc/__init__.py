"""tvbinv_hpc: simulation-based inference over TVB's MPR + BOLD models, MPI-parallel.

The tvb-inversion style API (``PytorchPrior``, ``sbiModel``, ``BoldFCDForSBI``, ``run_local``,
``EstimatorSBI``, ...) is importable from here; it lives in ``tvbinv_hpc.compat`` and loads on first use.
"""
from __future__ import annotations

from typing import Any

from tvbinv_hpc._version import __version__

_COMPAT = ("Prior", "PytorchPrior", "SimSeq", "sbiModel", "SBIModel", "Metric", "BoldFCDForSBI", "RunSummary",
           "run_local", "run_mpi", "run_dask", "EstimatorSBI", "Posterior", "SummaryStats", "shrinkage", "zscore")

__all__ = ["__version__", *_COMPAT]


def __getattr__(name: str) -> Any:
    if name in _COMPAT:
        from tvbinv_hpc import compat

        return getattr(compat, name)
    raise AttributeError(f"module 'tvbinv_hpc' has no attribute {name!r}")
