"""``tvbinv-hpc bench --stability [--n 64] [--length 30000] [--scheme fixed adaptive]``: the diverged fraction
of TVB's fixed Heun step and of the adaptive scheme at the seed's settings (raw connectivity_76 weights,
a ~ U(0.1, 1.2), nsig [0.035, 0.07], tvb-inversion's MPR), where the explicit step blows up.

The long run of the CI test ``tests/sim/test_stability.py``; prints one line per scheme (diverged count, the
coupling values that diverged, sub-stepped node-steps, wall time).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

SEED_FIXED = {"model.tau": 1.0, "model.I": 0.0, "model.Delta": 0.7, "model.J": 14.5, "model.eta": -4.6,
              "model.cr": 1.0, "model.cv": 0.0, "coupling.a": 0.5, "coupling.b": 0.0,
              "integrator.noise.nsig": [0.035, 0.07]}


def measure(n: int, length: float, scheme: str, seed: int = 3) -> dict:
    from tvbinv_hpc.sim import Engine
    from tvbinv_hpc.sim.connectome import load_connectome

    conn = load_connectome("connectivity_76", 3.0, "none", False)
    eng = Engine(conn, dt=0.01, length=length, fixed=SEED_FIXED, seed=seed, ms_per_unit=10.0, tavg_period=0.1,
                 bold_tr=100.0, scheme=scheme)
    a = np.random.default_rng(0).uniform(0.1, 1.2, n)
    t0 = time.perf_counter()
    res = eng.simulate({"coupling.a": a}, np.arange(n))
    bad = res.status != 1
    return {"scheme": scheme, "n": n, "diverged": int(bad.sum()), "a_diverged": np.sort(a[bad]).tolist(),
            "substep_fraction": float(res.substeps.sum() / (n * eng.nstep * eng.n_regions)),
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tvbinv-hpc bench --stability", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=64, help="simulations (default 64)")
    p.add_argument("--length", type=float, default=30000.0, help="model units each (default 30000, the seed's)")
    p.add_argument("--scheme", nargs="+", default=["fixed", "adaptive"], choices=["fixed", "adaptive"])
    args = p.parse_args(argv)
    for scheme in args.scheme:
        m = measure(args.n, args.length, scheme)
        lo = f", smallest diverged a {m['a_diverged'][0]:.3f}" if m["a_diverged"] else ""
        print(f"{scheme:8s}: {m['diverged']}/{m['n']} diverged ({100 * m['diverged'] / m['n']:.1f} %){lo}; "
              f"{m['substep_fraction']:.3f} sub-steps per node-step; {m['seconds']:.0f} s", flush=True)
    return 0
