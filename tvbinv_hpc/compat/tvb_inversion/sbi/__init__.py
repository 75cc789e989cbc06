"""``tvb_inversion.sbi``: the prior and the SBI estimator (see tvbinv_hpc.compat.tvb_inversion)."""
from tvbinv_hpc.compat.estimator import EstimatorSBI
from tvbinv_hpc.compat.prior import Prior

__all__ = ["EstimatorSBI", "Prior"]
