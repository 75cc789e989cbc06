"""Session fixtures: the easy problem of inference_problem.py, trained once."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from inference_problem import FEATURES, PARAMS, SMALL_NET, make_prior, simulate

# Two shared cores: torch's default thread count oversubscribes them (~100x slower training).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def problem():
    rng = np.random.default_rng(42)
    theta = rng.uniform(0, 1, (2000, 3))
    x = simulate(theta, rng)
    x[:25, 1] = np.nan  # diverged simulations: must be excluded and counted
    x[25:30, 0] = np.inf
    theta_test = rng.uniform(0, 1, (120, 3))
    x_test = simulate(theta_test, rng)
    x_test[5] = np.nan  # a failed test row: skipped by the diagnostics
    theta_true = np.array([0.3, 0.6, 0.8])
    return {
        "theta": theta,
        "x": x,
        "theta_test": theta_test,
        "x_test": x_test,
        "theta_true": theta_true,
        "x_obs": simulate(theta_true, rng)[0],
        "rng": rng,
    }


@pytest.fixture(scope="session")
def clean_cwd(tmp_path_factory):
    """An empty directory that training and diagnosing run in; it must stay empty (no ./sbi-logs)."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="session")
def trained(problem, clean_cwd):
    from tvbinv_hpc.inference import train_posterior

    old = os.getcwd()
    os.chdir(clean_cwd)
    try:
        return train_posterior(
            problem["theta"],
            problem["x"],
            make_prior(),
            dict(SMALL_NET),
            param_names=PARAMS,
            feature_names=FEATURES,
            prior_spec={"kind": "box", "low": [0, 0, 0], "high": [1, 1, 1]},
            meta={"config_hash": "abc123", "seed": 3},
            log=lambda m: None,
        )
    finally:
        os.chdir(old)
