"""tvbinv_hpc: simulation-based inference over TVB's MPR + BOLD models, MPI-parallel."""
from tvbinv_hpc._version import __version__

__all__ = ["__version__"]
