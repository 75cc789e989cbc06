"""An expected error decided on rank 0 reaches every rank as the same exception; no rank hangs."""
import sys

from tvbinv_hpc.errors import TvbinvError
from tvbinv_hpc.parallel import mpi

c = mpi.comm()


def check() -> int:
    raise TvbinvError("bad value for key 'budget.n_sims'")


try:
    mpi.decide(check)
except TvbinvError as exc:
    print(f"rank {c.Get_rank()} got: {exc}", flush=True)
    c.Barrier()  # every rank is here: nobody hangs
    sys.exit(2)
assert mpi.decide(lambda: c.Get_rank() * 10 + 7) == 7  # root's value everywhere
