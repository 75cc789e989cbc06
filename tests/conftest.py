"""Fixtures shared by every test folder; the helpers live in tvbinv_support.py (a unique module name)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from tvbinv_support import ROOT, SMALL_TOML, cli, mpiexec, write_small_connectome  # noqa: F401

# Every process the tests start (mpiexec ranks, job scripts, SLURM jobs) finds tests/hooks/sitecustomize.py,
# which slows batches down when a test sets TVBINV_TEST_BATCH_DELAY.
_HOOKS = str(Path(__file__).parent / "hooks")
os.environ["PYTHONPATH"] = os.pathsep.join([_HOOKS] + [p for p in os.environ.get("PYTHONPATH", "").split(
    os.pathsep) if p and p != _HOOKS])


@pytest.fixture
def run_mpi():
    return mpiexec


@pytest.fixture
def run_cli():
    return cli


@pytest.fixture
def small_config(tmp_path):
    """Factory: a fast config (8 regions, 50k steps per simulation) written under tmp_path."""

    def make(name: str = "cfg.toml", *, n_sims: int = 24, batch: int = 3, a_high: float = 0.4,
             extra: str = "", out: str = "out") -> Path:
        npz = tmp_path / "conn8.npz"
        if not npz.exists():
            write_small_connectome(npz)
        text = SMALL_TOML.format(out=out, npz=npz, n_sims=n_sims, batch=batch, a_high=a_high, extra=extra)
        path = tmp_path / name
        path.write_text(text)
        return path

    return make
