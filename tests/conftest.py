"""Shared test helpers: run commands under real mpiexec with a hard timeout (no test can hang CI)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")


def mpiexec(n: int, args: list[str], timeout: float = 300, env: dict | None = None,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python ARGS`` with this machine's Open MPI flags; killed after ``timeout`` seconds."""
    from tvbinv_hpc.launch import mpiexec_command

    cmd = mpiexec_command(n) + [sys.executable, *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n {n} {' '.join(args)} hung for {timeout} s\n{exc.stdout}\n{exc.stderr}")


def cli(args: list[str], timeout: float = 300, cwd: str | Path | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """``tvbinv-hpc ARGS`` as a plain process (no launcher)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tvbinv_hpc", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=full_env)


@pytest.fixture
def run_mpi():
    return mpiexec


@pytest.fixture
def run_cli():
    return cli
