"""``tvb_inversion.sbi.demo``: ``BoldFCDForSBI``, its five FC/FCD statistics of the BOLD that the engine
makes (tvb-inversion's made the BOLD from the temporal average inside the metric)."""
from tvbinv_hpc.compat.metrics import BoldFCDForSBI

__all__ = ["BoldFCDForSBI"]
