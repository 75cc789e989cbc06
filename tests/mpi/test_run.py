"""`tvbinv-hpc run` end to end under mpiexec -n 2, phase skipping, and the checks made before training."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

pytestmark = pytest.mark.mpi

RUN_EXTRA = """
[observation]
theta = { "coupling.a" = 0.25, "model.eta" = -4.6 }

[train]
max_epochs = 60
hidden_features = 20
num_transforms = 2

[diagnose]
num_samples = 500
sbc_rows = 30
sbc_samples = 100
ppc_draws = 6
"""
FILES = ["posterior.nc", "summary.json", "report.md", "config.toml", "marginals.png", "pairs.png",
         "sbc_ranks.png", "shrinkage_zscore.png", "coverage.png", "ppc_features.png",
         "fc_observed_vs_predicted.png", "training_loss.png"]


def test_run_end_to_end_two_ranks_then_skip(run_mpi, small_config, tmp_path):
    cfg = small_config(n_sims=200, extra=RUN_EXTRA)
    res = run_mpi(2, ["-m", "tvbinv_hpc", "run", str(cfg)], timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "out"
    for name in FILES:
        f = out / "diagnostics" / name
        assert f.is_file() and f.stat().st_size > 0, name
    assert (out / "posterior.pt").is_file() and (out / "ppc.h5").is_file()
    assert not (tmp_path / "sbi-logs").exists()
    post = xr.open_dataset(out / "diagnostics" / "posterior.nc", group="posterior")
    assert post["theta"].shape[-1] == 2
    assert list(post["param"].values) == ["coupling.a", "model.eta"]
    diag = xr.open_dataset(out / "diagnostics" / "posterior.nc", group="diagnostics")
    for var in ("shrinkage", "zscore", "sbc_ks_pval", "sbc_rank", "test_shrinkage", "test_zscore", "ppc_z"):
        assert var in diag, var
    assert np.isfinite(diag["sbc_ks_pval"].values).all()
    obs = xr.open_dataset(out / "diagnostics" / "posterior.nc", group="observed_data")
    assert obs["x"].shape == (15,)
    summary = json.loads((out / "diagnostics" / "summary.json").read_text())
    assert summary["observation_source"] == "synthetic"
    # Every phase is done: a re-run skips all three.
    res = run_mpi(2, ["-m", "tvbinv_hpc", "run", str(cfg)], timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "train: " in res.stderr and "up to date, skipping" in res.stderr
    assert "diagnose: " in res.stderr and res.stderr.count("up to date, skipping") == 2


@pytest.mark.parametrize("make,message", [
    (lambda: np.random.default_rng(0).normal(size=(20, 9)), "region"),
    (lambda: np.where(np.arange(160).reshape(20, 8) == 17, np.nan, np.random.default_rng(0).normal(size=(20, 8))),
     "NaN"),
    (lambda: np.random.default_rng(0).normal(size=(4, 8)), "time points"),
])
def test_bad_observation_fails_before_any_simulation(run_mpi, small_config, tmp_path, make, message):
    np.save(tmp_path / "obs.npy", make())
    cfg = small_config(extra=f'\n[observation]\nsource = "{tmp_path / "obs.npy"}"\n')
    res = run_mpi(2, ["-m", "tvbinv_hpc", "run", str(cfg)], timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "obs.npy" in res.stderr
    assert not (tmp_path / "out" / "store.h5").exists()


def test_too_few_rows_for_training_says_how_many(run_cli, small_config, tmp_path):
    cfg = small_config(n_sims=20)
    assert run_cli(["simulate", str(cfg)], cwd=tmp_path).returncode == 0
    res = run_cli(["train", str(cfg)], cwd=tmp_path)
    assert res.returncode == 2
    assert "16" in res.stderr and "at least" in res.stderr, res.stderr


def test_train_before_simulate_is_refused(run_cli, small_config, tmp_path):
    cfg = small_config(n_sims=20)
    res = run_cli(["diagnose", str(cfg)], cwd=tmp_path)
    assert res.returncode == 2 and "run `tvbinv-hpc train` first" in res.stderr
