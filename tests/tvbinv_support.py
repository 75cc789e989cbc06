"""Shared test helpers (imported by tests/conftest.py and tests that need them by this unique name):
real mpiexec runs with a hard timeout (no test can hang CI) and a small, fast config."""
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
    from tvbinv_hpc.cli.launch import mpiexec_command

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


SMALL_TOML = """
[run]
name = "small"
output = "{out}"
seed = 7
progress = "log"
progress_interval = 0.5

[connectome]
source = "{npz}"
speed = 3.0
hemispheres = "halves"

[coupling]
a = 0.2

[integrator]
dt = 0.02
nsig = [0.01, 0.02]

[simulation]
length = 1000.0
ms_per_unit = 10.0

[bold]
tavg_period = 0.1
tr = 500.0
warmup = 500.0
transient = 500.0

[stats]
features = [{{ name = "fc_stats" }}, {{ name = "fcd_stats", win_len = 5, min_lag = 2 }},
            {{ name = "homotopic_fc" }}]

[budget]
n_sims = {n_sims}
test_fraction = 0.2
batch_size = {batch}

[prior."coupling.a"]
dist = "uniform"
low = 0.0
high = {a_high}

[prior."model.eta"]
dist = "normal"
loc = -4.6
scale = 0.2
{extra}
"""


def write_small_connectome(path: Path, n: int = 8, seed: int = 3) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    w = rng.uniform(0, 1, (n, n)) * (rng.uniform(size=(n, n)) < 0.6)
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.5)
    tl = rng.uniform(15, 60, (n, n))
    tl = (tl + tl.T) / 2
    np.fill_diagonal(tl, 0.0)
    np.savez(path, weights=w, tract_lengths=tl, region_labels=np.array([f"r{i}" for i in range(n)]))
    return path


def store_rows(path: Path) -> dict:
    """The row datasets of a store (theta, x, status, split), read-only."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("theta", "x", "status", "split")}


def assert_same_store(a: Path, b: Path) -> None:
    """Two stores hold bit-identical rows."""
    ra, rb = store_rows(a), store_rows(b)
    for k in ra:
        assert ra[k].tobytes() == rb[k].tobytes(), f"{k} differs between {a} and {b}"
