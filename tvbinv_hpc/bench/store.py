"""Store operations and per-rank memory at 10^4 .. 10^6 rows: the constants of the README's scaling model.

``tvbinv-hpc bench --store [--rows 10000 1000000] [--params 80] [--ranks 2] [--seconds 30]`` makes, for each
row count, a store of that many rows with ``--params`` parameters (coupling + per-region eta on a random
dense connectome of params - 1 regions), then measures on this machine:

- creation (theta drawn from (seed, i) and written chunk by chunk) and the restart check;
- ``simulate`` under ``mpiexec -n RANKS`` for ``--seconds``, stopped with SIGUSR1 as a scheduler would: rows
  per second, the HDF5 write time per row and every rank's peak resident memory, from the session record;
- ``status`` while that job writes, and ``status`` / ``inspect`` afterwards;
- reading the train split as training does (float32, ok rows), after marking every row ok with stand-in
  features (throwaway store).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = """
[run]
name = "bench-store"
output = "{out}"
seed = 1
progress = "log"
progress_interval = 5.0

[connectome]
source = "{npz}"
speed = 5.0
hemispheres = "halves"

[integrator]
dt = 0.02

[simulation]
length = 1000.0
ms_per_unit = 10.0

[bold]
tavg_period = 0.1
tr = 500.0
warmup = 500.0
transient = 500.0

[stats]
features = [{{ name = "fc_stats" }}]

[budget]
n_sims = {rows}
test_fraction = 0.1
batch_size = 4
threads = 1

[prior."coupling.a"]
dist = "uniform"
low = 0.0
high = 0.3

[prior."model.eta"]
dist = "uniform"
low = -5.0
high = -4.0
shape = "regions"
"""


def _connectome(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, (n, n))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    tl = rng.uniform(10, 150, (n, n))
    tl = (tl + tl.T) / 2
    np.fill_diagonal(tl, 0.0)
    np.savez(path, weights=w, tract_lengths=tl, region_labels=np.array([f"r{i}" for i in range(n)]))


def _clean_env() -> dict[str, str]:
    """The environment for a child mpiexec, given explicitly: this process initialised MPI as a singleton
    (prepare, ensure_store), which sets variables below os.environ that a child would otherwise inherit."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_", "OPAL_"))}


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _simulate_for(cfg: Path, store_path: Path, ranks: int, seconds: float) -> dict[str, Any]:
    """Run ``simulate`` under mpiexec, time ``status`` while it writes, stop it with SIGUSR1."""
    from tvbinv_hpc.cli.inspect import status_text
    from tvbinv_hpc.cli.launch import mpiexec_command
    from tvbinv_hpc.parallel import store

    def pending() -> np.ndarray:
        return store.read_columns(store_path)[0] == 0

    cmd = mpiexec_command(ranks) + [sys.executable, "-m", "tvbinv_hpc", "simulate", str(cfg)]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_clean_env())
    while job.poll() is None and pending().all():  # start-up and JIT: the ranks install their handlers first
        time.sleep(1.0)
    t0 = time.monotonic()
    status_live = None
    while time.monotonic() - t0 < seconds and job.poll() is None:
        time.sleep(1.0)
        if status_live is None and time.monotonic() - t0 > seconds / 2:
            status_live = _timed(lambda: status_text(store_path))[0]
    # A job that has written every row is ending on its own: a SIGUSR1 now would reach an mpiexec that is
    # tearing down (no handler any more) and kill it, which says nothing about the store.
    if job.poll() is None and pending().any():
        job.send_signal(signal.SIGUSR1)  # Open MPI's mpiexec forwards it to every rank
    _, err = job.communicate(timeout=600)
    if job.returncode == -signal.SIGUSR1 and not pending().any():
        job.returncode = 0   # the signal raced the job's own end: every row was written before it
    if job.returncode not in (0, 75):
        raise SystemExit(f"bench --store: simulate failed ({job.returncode}):\n{err[-3000:]}")

    record = store.sessions(store_path)[-1]
    return {"session": record, "status_live_s": status_live}


def rma_latency(ranks: int, ops: int = 20000) -> dict[str, float]:
    """Microseconds per counter fetch-and-add and per work-list read (a batch's row numbers) on ranks
    1..P-1 against rank 0's windows, under mpiexec -n ``ranks``."""
    from tvbinv_hpc.cli.launch import mpiexec_command

    cmd = mpiexec_command(ranks) + [sys.executable, "-m", "tvbinv_hpc.bench.store", "--rma-child", str(ops)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_clean_env())
    if res.returncode != 0:
        raise SystemExit(f"bench --store: RMA latency run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _rma_child(ops: int) -> None:
    from tvbinv_hpc.parallel import mpi
    from tvbinv_hpc.parallel.counter import Counter, WorkList

    c = mpi.comm()
    ctr, wl = Counter(c), WorkList(c, np.arange(10**6) if c.Get_rank() == 0 else None)
    c.Barrier()
    t0 = time.perf_counter()
    for _ in range(ops):
        ctr.take(1)
    t1 = time.perf_counter()
    for i in range(ops):
        wl.get((i * 4) % (10**6 - 4), 4)
    t2 = time.perf_counter()
    times = c.gather(((t1 - t0) / ops * 1e6, (t2 - t1) / ops * 1e6), root=0)
    ctr.free()
    wl.free()
    if c.Get_rank() == 0:
        others = times[1:] or times
        print(json.dumps({"take_us": float(np.median([t[0] for t in others])),
                          "worklist_get_us": float(np.median([t[1] for t in others]))}))


def measure(rows: int, params: int, ranks: int, seconds: float) -> dict[str, Any]:
    from tvbinv_hpc import pipeline
    from tvbinv_hpc.cli.inspect import inspect_text, status_text
    from tvbinv_hpc.parallel import store
    from tvbinv_hpc.parallel.mpi import SerialComm

    with tempfile.TemporaryDirectory(prefix="tvbinv-bench-store-") as tmp:
        base = Path(tmp)
        _connectome(base / "conn.npz", params - 1)
        cfg = base / "bench.toml"
        cfg.write_text(CONFIG.format(out=base / "out", npz=base / "conn.npz", rows=rows))
        setup = pipeline.prepare(str(cfg))
        create_s, path = _timed(lambda: pipeline.ensure_store(setup))
        check_s, _ = _timed(lambda: pipeline.ensure_store(setup))
        sim = _simulate_for(cfg, path, ranks, seconds)
        status_s, _ = _timed(lambda: status_text(path))
        inspect_s, _ = _timed(lambda: inspect_text(path, show_config=False))
        k = len(setup.features.names)
        w = store.Writer(path, SerialComm(), "serial")   # throwaway store: every row ok, stand-in features
        for a in range(0, rows, store.CHUNK_ROWS):
            b = min(rows, a + store.CHUNK_ROWS)
            w.write(np.arange(a, b), np.random.default_rng(a).standard_normal((b - a, k)),
                    np.full(b - a, store.OK, np.int8), None)
        w.close()
        read_s, train = _timed(lambda: store.read_rows(path, split=store.TRAIN, ok_only=True, dtype=np.float32))
        s = sim["session"]
        return {
            "rows": rows, "params": params, "features": k, "ranks": ranks, "file_mb": path.stat().st_size / 2**20,
            "create_s": create_s, "check_s": check_s, "status_live_s": sim["status_live_s"], "status_s": status_s,
            "inspect_s": inspect_s, "read_train_s": read_s, "train_rows": int(train["index"].size),
            "sim_rows": s["rows_done"], "sim_wall_s": s["wall_seconds"],
            "write_s_per_row": s["write_seconds_max"] / max(1, s["rows_done"] / ranks),
            "peak_rss_mb": s.get("peak_rss_mb"), "worklist_bytes_rank0": s.get("worklist_bytes_rank0"),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tvbinv-hpc bench --store", description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--params", type=int, default=80, help="coupling + (params - 1) per-region eta")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0, help="simulate this long per row count")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--rma-child", type=int, help=argparse.SUPPRESS)  # the latency run, under mpiexec
    a = ap.parse_args(argv)
    if a.rma_child:
        _rma_child(a.rma_child)
        return 0
    rma = rma_latency(a.ranks)
    out = [measure(n, a.params, a.ranks, a.seconds) for n in a.rows]
    print(f"store operations, {a.params} parameters, simulate under mpiexec -n {a.ranks} (seconds)")
    print(f"{'rows':>9} {'file MB':>8} {'create':>7} {'check':>6} {'status*':>7} {'status':>6} {'inspect':>7} "
          f"{'read train':>10} {'sim rows':>8} {'write ms/row':>12}  peak RSS MB per rank")
    for r in out:
        print(f"{r['rows']:>9} {r['file_mb']:>8.0f} {r['create_s']:>7.2f} {r['check_s']:>6.3f} "
              f"{r['status_live_s'] or float('nan'):>7.3f} {r['status_s']:>6.3f} {r['inspect_s']:>7.3f} "
              f"{r['read_train_s']:>10.2f} {r['sim_rows']:>8} {1000 * r['write_s_per_row']:>12.3f}  "
              f"{r['peak_rss_mb']}")
    print("status*: while simulate writes the store. read train: the train split's ok rows as float32.")
    print(f"one-sided latency on ranks 1..{a.ranks - 1} against rank 0: counter fetch-and-add "
          f"{rma['take_us']:.2f} us, work-list read of a batch's rows {rma['worklist_get_us']:.2f} us")
    if a.json:
        a.json.write_text(json.dumps({"rma": rma, "stores": out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
