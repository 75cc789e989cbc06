"""Parallel efficiency of ``simulate`` (1 vs P ranks) and the share of wall time spent in HDF5 writes.

``tvbinv-hpc bench --scaling [--ranks 1 2] [--n-sims 64] [--length 2000]`` runs the quickstart's model
(76 regions, delays, noise) through the real driver and store under mpiexec, once per rank count, and
reads the timings that every session records in the store (loop wall time, seconds in row writes).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def _config(base: Path, n_sims: int, length: float) -> Path:
    from tvbinv_hpc.pipeline import quickstart_path

    text = quickstart_path().read_text()
    subs = {"n_sims": n_sims, "length": length, "warmup": 0.0, "transient": 0.0, "output": f'"{base}"'}
    for key, value in subs.items():  # whatever the quickstart's values are
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
        if n != 1:
            raise SystemExit(f"bench --scaling: the quickstart config has no '{key} = ' line")
    text += "\n[stats]\nfeatures = [{ name = \"fc_stats\" }]\n"
    cfg = base.parent / f"{base.name}.toml"
    cfg.write_text(text)
    return cfg


def measure(ranks: list[int], n_sims: int, length: float) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="tvbinv-scaling-") as tmp:
        for p in ranks:
            base = Path(tmp) / f"r{p}"
            cfg = _config(base, n_sims, length)
            cmd = [sys.executable, "-m", "tvbinv_hpc", "launch", "-n", str(p), "--", "simulate", str(cfg)]
            # One core per rank in every run, so that 1 -> P ranks measures parallel efficiency only.
            env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode:
                raise SystemExit(f"simulate with {p} ranks failed:\n{res.stderr[-3000:]}")
            from tvbinv_hpc.parallel.store import sessions

            s = sessions(base / "store.h5")[-1]
            out.append({"ranks": p, "rows": s["rows_done"], "wall": s["wall_seconds"],
                        "write": s["write_seconds_max"], "writer": s["writer"]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tvbinv-hpc bench --scaling", description=__doc__)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n-sims", type=int, default=64)
    ap.add_argument("--length", type=float, default=2000.0, help="model time units per simulation")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args(argv)
    rows = measure(a.ranks, a.n_sims, a.length)
    base = rows[0]["rows"] / rows[0]["wall"] / rows[0]["ranks"]
    print(f"simulate scaling: quickstart model (76 regions, delays, noise), {rows[0]['rows']} simulations "
          f"of {a.length:g} model units each, one core per rank")
    print(f"{'ranks':>5} {'wall s':>8} {'sims/s':>8} {'efficiency':>10} {'HDF5 write share':>17}  writer")
    for r in rows:
        rate = r["rows"] / r["wall"]
        r["efficiency"] = rate / (base * r["ranks"])
        r["write_share"] = r["write"] / r["wall"]
        print(f"{r['ranks']:>5} {r['wall']:>8.2f} {rate:>8.2f} {100 * r['efficiency']:>9.1f}% "
              f"{100 * r['write_share']:>16.3f}%  {r['writer']}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
