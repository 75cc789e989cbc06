"""Rank 1 fails inside its first batch while the store is open with parallel HDF5: the job must abort
(rank 1's traceback shown), never hang in the collective file close."""
import sys

from tvbinv_hpc import cli
from tvbinv_hpc.parallel import driver, mpi

real = driver.simulate_batch
calls = {"n": 0}


def failing(setup, theta, index):
    calls["n"] += 1
    if mpi.rank() == 1 and calls["n"] == 1:
        raise FloatingPointError("deliberate failure inside a batch on rank 1")
    return real(setup, theta, index)


driver.simulate_batch = failing
sys.exit(cli.main(["simulate", sys.argv[1]]))
