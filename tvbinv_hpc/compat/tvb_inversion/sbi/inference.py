"""``tvb_inversion.sbi.inference``: ``EstimatorSBI`` and the ``shrinkage`` / ``zscore`` diagnostics."""
from tvbinv_hpc.compat.estimator import EstimatorSBI
from tvbinv_hpc.inference.diagnostics import shrinkage, zscore

__all__ = ["EstimatorSBI", "shrinkage", "zscore"]
