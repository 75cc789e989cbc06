"""Simulation health for the report: how many simulations diverged, where in the prior they lie, and how
many produced BOLD dominated by a start-up relaxation common to all regions (an artefact).

Diverged rows are excluded from training, so the posterior is conditional on "did not diverge": a prior
region that mostly diverges is silently cut away. The report shows the fraction per parameter bin.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_BINS = 5                 # quintiles of each parameter's prior draws
WARN_DIVERGED = 0.05       # above this fraction the posterior is visibly conditional on not diverging
WARN_TREND = 0.01          # start-up-dominated rows: a few in a thousand are dynamics (a state switch early in
                           # a short run); above 1 % the setup leaves an artefact


def divergence_by_parameter(theta: np.ndarray, diverged: np.ndarray, names: Sequence[str],
                            n_bins: int = N_BINS) -> dict[str, Any]:
    """Per parameter: bin edges (quantiles of the simulated theta) and the diverged fraction per bin."""
    theta = np.asarray(theta, dtype=np.float64)
    diverged = np.asarray(diverged, dtype=bool)
    per: dict[str, Any] = {}
    for j, name in enumerate(names):
        col = theta[:, j]
        edges = np.quantile(col, np.linspace(0.0, 1.0, n_bins + 1))
        which = np.clip(np.searchsorted(edges, col, side="right") - 1, 0, n_bins - 1)
        frac = [float(diverged[which == b].mean()) if np.any(which == b) else None for b in range(n_bins)]
        per[name] = {"edges": [float(e) for e in edges], "diverged_fraction": frac}
    return per


def simulation_health(theta: np.ndarray, status: np.ndarray, names: Sequence[str], *, diverged_code: int,
                      done_codes: Sequence[int], sessions: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The report's health section from the store's theta (n, d), status (n,) and session records."""
    status = np.asarray(status)
    done = np.isin(status, list(done_codes))
    div = status == diverged_code
    n_done = int(done.sum())
    out: dict[str, Any] = {"n_rows": int(status.size), "n_done": n_done, "n_diverged": int(div.sum()),
                           "diverged_fraction": float(div.sum() / n_done) if n_done else 0.0}
    if div.any() and n_done:
        out["by_parameter"] = divergence_by_parameter(np.asarray(theta)[done], div[done], names)
    trend = [s.get("rows_common_trend") for s in sessions if s.get("kind", "sims") == "sims"]
    out["n_common_trend"] = int(sum(t for t in trend if t)) if trend else None
    out["warnings"] = _warnings(out)
    return out


def _worst_bin(by_param: dict[str, Any]) -> tuple[str, float, float, float]:
    name, best = "", (-1.0, 0.0, 0.0)
    for p, e in by_param.items():
        for b, f in enumerate(e["diverged_fraction"]):
            if f is not None and f > best[0]:
                name, best = p, (f, e["edges"][b], e["edges"][b + 1])
    return name, *best


def _warnings(h: dict[str, Any]) -> list[str]:
    out = []
    if h["diverged_fraction"] > WARN_DIVERGED:
        msg = (f"{100 * h['diverged_fraction']:.1f} % of the simulations diverged and are excluded from "
               "training: the posterior is conditional on not diverging")
        if h.get("by_parameter"):
            name, frac, lo, hi = _worst_bin(h["by_parameter"])
            msg += f" (most where {name} in [{lo:.4g}, {hi:.4g}]: {100 * frac:.0f} % diverged)"
        out.append(msg + "; narrow the prior or use integrator.scheme = 'adaptive'")
    if h.get("n_common_trend") and h["n_done"] and h["n_common_trend"] > WARN_TREND * h["n_done"]:
        out.append(f"{h['n_common_trend']} simulations have BOLD dominated by a start-up relaxation common "
                   "to all regions (an artefact: their FC measures it); use bold.start = 'steady' and "
                   "bold.transient = 'auto'")
    return out


def health_lines(h: dict[str, Any]) -> list[str]:
    """Markdown lines of the report's simulation-health section."""
    lines = ["## Simulations", "",
             f"{h['n_done']} of {h['n_rows']} simulations done; {h['n_diverged']} diverged "
             f"({100 * h['diverged_fraction']:.1f} %)"
             + ("" if h.get("n_common_trend") is None else
                f"; {h['n_common_trend']} with BOLD dominated by a start-up relaxation") + "."]
    by = h.get("by_parameter")
    if by:
        nb = len(next(iter(by.values()))["diverged_fraction"])
        lines += ["", "Diverged fraction per prior quintile of each parameter:", "",
                  "| parameter | " + " | ".join(f"bin {b + 1}" for b in range(nb)) + " |",
                  "|---|" + "---|" * nb]
        for p, e in by.items():
            cells = [f"{e['edges'][b]:.3g}–{e['edges'][b + 1]:.3g}: "
                     + ("—" if f is None else f"{100 * f:.0f} %") for b, f in enumerate(e["diverged_fraction"])]
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines
