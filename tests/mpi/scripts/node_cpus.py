"""Under a launcher that binds each rank to one core, rank 0 leads on every core the ranks own."""
import os

from tvbinv_hpc.inference.train import resolve_threads
from tvbinv_hpc.parallel import mpi

c = mpi.comm()
own = os.sched_getaffinity(0)
allowed = mpi.node_cpus()
if c.Get_rank() == 0:
    with mpi.cpus(allowed):
        inside = resolve_threads(0)
    print(f"own {len(own)} node {len(allowed)} threads {inside} after {len(os.sched_getaffinity(0))}")
