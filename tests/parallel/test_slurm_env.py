"""Threads per rank and the PMI check read SLURM's task environment correctly (no SLURM needed here;
tests/test_slurm_real.py checks the same under a real srun)."""
from __future__ import annotations

import os

import pytest

from tvbinv_hpc.parallel import mpi

LAUNCHER_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "HYDI_CONTROL_FD",
                 "PMIX_RANK", "PMI_RANK", "PMI_FD", "PMI_SIZE", "PMI_LOCAL_SIZE", "PMI_CONTROL_PORT", "PALS_RANKID")


@pytest.fixture
def srun_env(monkeypatch):
    """A clean environment for one srun task (2 tasks on 1 node of 2 allocated CPUs unless changed)."""
    for var in list(os.environ):
        if var.startswith("SLURM_") or var in LAUNCHER_VARS:
            monkeypatch.delenv(var)
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NODEID", "0")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "2")
    monkeypatch.setenv("SLURM_JOB_CPUS_PER_NODE", "2")
    monkeypatch.setenv("PMIX_RANK", "0")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)  # task/none: all
    return monkeypatch


def test_bare_srun_without_cpus_per_task_gives_each_task_its_share(srun_env):
    # The real case of issue 13: `srun -n 2` on a 2-CPU node reported 2 threads per rank.
    assert mpi.local_size() == 2
    assert mpi.cores_per_rank() == 1
    srun_env.setenv("SLURM_CPUS_ON_NODE", "16")
    assert mpi.cores_per_rank() == 8


def test_cpus_per_task_wins_and_the_affinity_caps_it(srun_env):
    srun_env.setenv("SLURM_CPUS_PER_TASK", "4")
    assert mpi.cores_per_rank() == 4
    srun_env.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert mpi.cores_per_rank() == 2


def test_per_node_lists_are_read_for_this_node(srun_env):
    srun_env.setenv("SLURM_STEP_TASKS_PER_NODE", "3(x2),1")
    srun_env.setenv("SLURM_JOB_CPUS_PER_NODE", "12(x3)")
    srun_env.delenv("SLURM_CPUS_ON_NODE")
    srun_env.setenv("SLURM_NODEID", "1")
    assert mpi.local_size() == 3 and mpi.cores_per_rank() == 4
    srun_env.setenv("SLURM_NODEID", "2")
    assert mpi.local_size() == 1 and mpi.cores_per_rank() == 12


def test_unknown_layout_under_srun_is_one_thread(srun_env):
    for var in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_CPUS_ON_NODE", "SLURM_JOB_CPUS_PER_NODE"):
        srun_env.delenv(var)
    assert mpi.cores_per_rank() == 1


def test_mpiexec_inside_a_job_uses_its_own_rank_count(srun_env):
    # mpiexec inside an allocation starts its daemons with srun: the ranks see that step's SLURM_* values.
    srun_env.setenv("SLURM_STEP_TASKS_PER_NODE", "1")
    srun_env.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    assert mpi.local_size() == 4 and mpi.cores_per_rank() == 4


def test_srun_without_pmi_is_detected(srun_env):
    assert not mpi.srun_without_pmi()          # --mpi=pmix
    srun_env.delenv("PMIX_RANK")
    assert mpi.srun_without_pmi()              # --mpi=none
    srun_env.setenv("PMI_FD", "11")
    assert not mpi.srun_without_pmi()          # --mpi=pmi2
    srun_env.delenv("PMI_FD")
    srun_env.setenv("SLURM_STEP_NUM_TASKS", "1")
    assert not mpi.srun_without_pmi()          # one task: let the MPI library try a singleton
    srun_env.setenv("SLURM_STEP_NUM_TASKS", "2")
    srun_env.delenv("SLURM_STEP_ID")
    assert not mpi.srun_without_pmi()          # the batch shell itself, not an srun task
