"""Timing benchmark (not a test): NPE on 10^4 simulations x 20 features x 3 parameters, 1 thread,
then (with --diagnose) the [diagnose] defaults on 200 test rows.

Run: .venv/bin/python tests/inference/bench_train.py [density_estimator] [--diagnose]   (target: maf <= 60 s)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
import torch

torch.set_num_threads(1)

from sbi.utils import BoxUniform  # noqa: E402

from tvbinv_hpc.inference import diagnose, train_posterior  # noqa: E402


def _simulate(theta: np.ndarray, w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Mildly non-linear, informative features with noise: a stand-in for summary statistics.
    noise = 0.05 * rng.standard_normal((len(theta), w.shape[1]))
    return np.tanh(theta @ w) + 0.1 * theta[:, [0]] ** 2 + noise


def main(estimator: str = "maf", run_diagnose: bool = False) -> None:
    rng = np.random.default_rng(0)
    n, d, k = 10_000, 3, 20
    theta = rng.uniform(0, 1, (n, d))
    w = rng.standard_normal((d, k))
    x = _simulate(theta, w, rng)
    prior = BoxUniform(torch.zeros(d), torch.ones(d))
    os.chdir(tempfile.mkdtemp())  # prove nothing lands in the cwd
    names, feats = [f"p{i}" for i in range(d)], [f"f{j}" for j in range(k)]
    t0, c0 = time.perf_counter(), time.process_time()
    trained = train_posterior(theta, x, prior, {"density_estimator": estimator, "threads": 1, "seed": 0},
                              param_names=names, feature_names=feats, prior_spec={},
                              meta={"config_hash": "b"})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0   # cpu: robust to a busy machine
    s = trained.summary
    print(f"{estimator}: {n} sims x {k} features x {d} params, 1 thread: {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{s['epochs']} epochs ({wall / s['epochs']:.3f} s/epoch), "
          f"best val loss {s['best_validation_loss']:.3f}")
    if run_diagnose:
        theta_test = rng.uniform(0, 1, (200, d))
        t0 = time.perf_counter()
        diagnose(trained, x_obs=_simulate(theta_test[:1], w, rng)[0], theta_true=theta_test[0],
                 theta_test=theta_test, x_test=_simulate(theta_test, w, rng),
                 prior_samples=prior.sample((1000,)).numpy(), prior_std=np.full(d, 12**-0.5),
                 settings={"threads": 1}, outdir="diag", log=lambda m: None)
        print(f"diagnose with defaults (10^4 samples, 200 rows x 1000 draws, expected coverage, plots): "
              f"{time.perf_counter() - t0:.1f} s")
    print(f"cwd after: {sorted(os.listdir('.'))}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(*args, run_diagnose="--diagnose" in sys.argv)
