"""tvb-inversion's module paths over tvbinv_hpc.compat, so that tvb-inversion code runs with only its
import lines changed: ``tvb_inversion`` becomes ``tvbinv_hpc.compat.tvb_inversion`` (``from tvb_inversion.sbi
import Prior`` -> ``from tvbinv_hpc.compat.tvb_inversion.sbi import Prior``).

It is a subpackage of tvbinv_hpc, never a top-level ``tvb_inversion``, so it cannot shadow a real
tvb-inversion installation: both can be installed, and a script names the one it wants.  The submodules
mirror tvb-inversion's ``sbi`` (``Prior``, ``EstimatorSBI``), ``sbi.prior``, ``sbi.inference``
(``shrinkage``, ``zscore``), ``sbi.demo`` (``BoldFCDForSBI``), ``utils`` (``run_local``, ``data_path``) and
``parameters`` (``SimSeq``, ``Metric``).
"""
