"""``tvb_inversion.parameters``: ``SimSeq`` (template, params, values) and the ``Metric`` base class."""
from tvbinv_hpc.compat.metrics import Metric
from tvbinv_hpc.compat.model import SimSeq

__all__ = ["Metric", "SimSeq"]
