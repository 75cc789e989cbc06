import os

import pytest

from tvbinv_hpc.errors import TvbinvError
from tvbinv_hpc.parallel import mpi


def test_decide_serial_returns_and_raises():
    assert mpi.decide(lambda: 41 + 1) == 42
    with pytest.raises(TvbinvError, match="nope"):
        mpi.decide(lambda: (_ for _ in ()).throw(TvbinvError("nope")))


def test_cores_per_rank_divides_affinity(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    ncpu = len(os.sched_getaffinity(0))
    assert mpi.cores_per_rank() == max(1, ncpu // 2)
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "1000")
    assert mpi.cores_per_rank() == 1


def test_threads_per_rank_is_decided_in_one_place(monkeypatch):
    for var in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_ID", "SLURM_NTASKS_PER_NODE",
                "PMI_LOCAL_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    assert mpi.threads_per_rank() == 6 == mpi.available_cores()      # no launcher: every core it may use
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3")
    assert mpi.threads_per_rank("auto") == 2                          # mpiexec: the node's cores / its ranks
    monkeypatch.setenv("NUMBA_NUM_THREADS", "4")
    assert mpi.threads_per_rank() == 4                                # a job script or the user said so
    assert mpi.threads_per_rank(5) == 5
    for bad in (-1, 1.5, "x", True):
        with pytest.raises(ValueError):
            mpi.threads_per_rank(bad)


def test_pin_threads_keeps_what_is_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("NUMBA_NUM_THREADS", "")                       # empty counts as unset
    for var in ("MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert mpi.pin_threads(3) == 3
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "3"


def test_agree_serial():
    assert mpi.agree(True) is True
    assert mpi.agree(False) is False



def test_rank0_may_use_the_node_cpus_while_it_leads():
    import os

    from tvbinv_hpc.parallel import mpi

    before = os.sched_getaffinity(0)
    assert mpi.node_cpus() == before           # one process: its own mask
    with mpi.cpus({min(before)}):
        assert os.sched_getaffinity(0) == {min(before)}
    assert os.sched_getaffinity(0) == before   # restored
    with mpi.cpus({10**6}):                    # a CPU this process cannot have: left as it was
        assert os.sched_getaffinity(0) == before
