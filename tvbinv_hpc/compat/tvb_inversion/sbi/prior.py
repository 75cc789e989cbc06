"""``tvb_inversion.sbi.prior``: ``Prior(['coupling.a'], dist)`` and its ``generate_sim_seq(sim, n)``."""
from tvbinv_hpc.compat.prior import Prior

__all__ = ["Prior"]
