"""Training benchmark: NPE on 10^4 simulations x 20 features x 3 parameters on one thread, then (with
--diagnose) the [diagnose] defaults on 200 test rows.

Run: ``tvbinv-hpc bench --train [--estimator maf] [--diagnose]``   (target: maf <= 60 s)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def _simulate(theta: np.ndarray, w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Mildly non-linear, informative features with noise: a stand-in for summary statistics.
    noise = 0.05 * rng.standard_normal((len(theta), w.shape[1]))
    return np.tanh(theta @ w) + 0.1 * theta[:, [0]] ** 2 + noise


def run(estimator: str = "maf", run_diagnose: bool = False) -> None:
    import torch
    from sbi.utils import BoxUniform

    from tvbinv_hpc.inference import diagnose, train_posterior

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n, d, k = 10_000, 3, 20
    theta = rng.uniform(0, 1, (n, d))
    w = rng.standard_normal((d, k))
    x = _simulate(theta, w, rng)
    prior = BoxUniform(torch.zeros(d), torch.ones(d))
    cwd = os.getcwd()
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
    print(f"files left in the working folder: {sorted(os.listdir('.')) or 'none'}")
    os.chdir(cwd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tvbinv-hpc bench --train", description=__doc__.splitlines()[0])
    ap.add_argument("--estimator", default="maf", help="sbi density estimator (default maf)")
    ap.add_argument("--diagnose", action="store_true", help="also time diagnose with its defaults")
    a = ap.parse_args(argv)
    run(a.estimator, a.diagnose)
    return 0
