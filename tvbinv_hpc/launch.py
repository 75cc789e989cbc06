"""Moved to ``tvbinv_hpc.cli.launch``; this name stays only for ``bench_store.py`` until the benchmarks
move into their own package (issue 15, item 4), then goes."""
from tvbinv_hpc.cli.launch import mpiexec_command

__all__ = ["mpiexec_command"]
