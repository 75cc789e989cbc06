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


def test_agree_serial():
    assert mpi.agree(True) is True
    assert mpi.agree(False) is False
