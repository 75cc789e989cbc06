"""Rank 1 raises while rank 0 waits in a collective: the abort hook must end the whole job."""
from tvbinv_hpc.parallel import mpi

c = mpi.comm()
if c.Get_rank() == 1:
    raise RuntimeError("deliberate failure on rank 1")
c.Barrier()  # rank 0 (and 2) would wait here forever without the abort hook
print("unreachable")
