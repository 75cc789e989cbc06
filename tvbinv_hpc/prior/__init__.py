"""The prior: named distributions over simulator attributes (``named``), drawn from (seed, row index), and
their torch twin for sbi (``torch_prior``, imported only when a posterior is trained or loaded)."""
from __future__ import annotations

from tvbinv_hpc.prior.named import DISTS, PRIOR_STREAM, Marginal, Prior, validate

__all__ = ["DISTS", "PRIOR_STREAM", "Marginal", "Prior", "validate"]
