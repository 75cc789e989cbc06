"""Training benchmark: NPE on 10^4 simulations x 20 features x 3 parameters on one thread, then (with
--diagnose) the [diagnose] defaults on 200 test rows.

Run: ``tvbinv-hpc bench --train [--estimator maf] [--diagnose]``   (target: maf <= 60 s)
At scale: ``tvbinv-hpc bench --train --rows 100000 --features 100 --params 10 --threads 0 [--device auto]``
(threads 0: every core this process may use).
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


def run(estimator: str = "maf", run_diagnose: bool = False, n: int = 10_000, k: int = 20, d: int = 3,
        threads: int = 1, device: str = "cpu", max_epochs: int = 1000) -> None:
    import torch
    from sbi.utils import BoxUniform

    from tvbinv_hpc.inference import diagnose, train_posterior
    from tvbinv_hpc.inference.train import resolve_threads

    threads = resolve_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, 1, (n, d))
    w = rng.standard_normal((d, k))
    x = _simulate(theta, w, rng)
    prior = BoxUniform(torch.zeros(d), torch.ones(d))
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp())  # prove nothing lands in the cwd
    names, feats = [f"p{i}" for i in range(d)], [f"f{j}" for j in range(k)]
    t0, c0 = time.perf_counter(), time.process_time()
    theta, x = theta.astype(np.float32), x.astype(np.float32)  # as training reads the store
    trained = train_posterior(theta, x, prior, {"density_estimator": estimator, "threads": threads, "seed": 0,
                                                "device": device, "max_epochs": max_epochs},
                              param_names=names, feature_names=feats, prior_spec={},
                              meta={"config_hash": "b"})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0   # cpu: robust to a busy machine
    s = trained.summary
    print(f"{estimator}: {n} sims x {k} features x {d} params, {threads} thread(s), device {device}: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU, "
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
    ap.add_argument("--rows", type=int, default=10_000, help="simulations (default 10000)")
    ap.add_argument("--features", type=int, default=20, help="summary statistics per simulation (default 20)")
    ap.add_argument("--params", type=int, default=3, help="parameters (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: every core; default 1)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    ap.add_argument("--max-epochs", type=int, default=1000, help="upper bound on epochs (default 1000)")
    a = ap.parse_args(argv)
    from tvbinv_hpc.inference.settings import validate_train

    device = validate_train({"device": a.device})["device"]
    run(a.estimator, a.diagnose, a.rows, a.features, a.params, a.threads, device, a.max_epochs)
    return 0
