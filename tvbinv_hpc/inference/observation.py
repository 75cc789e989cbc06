"""The data a run is fitted to: a synthetic observation, one subject's BOLD, or a cohort of subjects.

Everything here runs on rank 0 inside ``mpi.decide``/``lead`` (a synthetic observation is simulated with the
run's own engine).  Every observation goes through the run's FeatureSet, so its BOLD is cut and
preprocessed exactly as the simulations are; its FC and FCD for the report come from the same
``FeatureSet.prepare``.
"""
from __future__ import annotations

import glob
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc.errors import ConfigError, TvbinvError
from tvbinv_hpc.inference.settings import OBSERVATION_SCHEMA
from tvbinv_hpc.parallel import driver, store

log = logging.getLogger("tvbinv_hpc")
FCD_DEFAULT_WINDOW_S = 60.0  # FCD agreement without an FCD feature: 60 s windows, the common resting-state choice


@dataclass
class Observation:
    x: np.ndarray                   # (k,) observed features
    fc: np.ndarray                  # (N, N) observed FC after the burn-in and the preprocessing
    theta_true: np.ndarray | None   # (d,) for a synthetic observation
    source: str
    bold: np.ndarray | None = None  # (T, N) float64 as observed, before the burn-in (for its FCD)
    name: str = ""                  # the subject's name in a cohort
    notes: tuple[str, ...] = ()     # what the report must say about this observation (e.g. its length)


def observation_configured(cfg: dict[str, Any]) -> bool:
    """The config sets an observation of its own (an empirical file, or a chosen synthetic theta/index)."""
    defaults = {k: key.default for k, key in OBSERVATION_SCHEMA.items()}
    return cfg["observation"] != defaults


def _has_glob(p: str) -> bool:
    return any(c in p for c in "*?[")


def is_cohort(cfg: dict[str, Any]) -> bool:
    """A list of files or a glob: several subjects, one trained posterior."""
    src = cfg["observation"]["source"]
    return isinstance(src, list) or (src != "synthetic" and _has_glob(src))


def cohort_sources(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """(subject name, file) of every subject, globs expanded in sorted order; names from
    ``observation.subjects``, else the shortest distinguishing part of the paths."""
    src = cfg["observation"]["source"]
    files: list[str] = []
    for entry in (src if isinstance(src, list) else [src]):
        if _has_glob(entry):
            hits = sorted(glob.glob(os.path.expanduser(entry)))
            if not hits:
                raise ConfigError("observation.source", f"the pattern '{entry}' matches no file")
            files += hits
        else:
            files.append(entry)
    if len(set(files)) != len(files):
        raise ConfigError("observation.source", "a file appears twice in the cohort")
    names = list(cfg["observation"]["subjects"])
    if names and len(names) != len(files):
        raise ConfigError("observation.subjects", f"{len(names)} names for {len(files)} files")
    if not names:
        names = _distinct_names(files)
    if len(set(names)) != len(names):
        raise ConfigError("observation.subjects", f"subject names must differ: {names}")
    return list(zip(names, files))


def _distinct_names(files: list[str]) -> list[str]:
    """File stems when they differ (sub01.nc, sub02.nc), else the folder names (NAP_001/BOLD.mat, ...)."""
    parts = [Path(f).resolve().parts for f in files]
    stems = [Path(f).stem for f in files]
    if len(set(stems)) == len(stems):
        return stems
    for depth in range(2, max(len(p) for p in parts) + 1):
        names = ["_".join(p[-depth:-1]) if depth > 1 else p[-1] for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(i) for i in range(len(files))]


def synthetic_theta(s: Any) -> np.ndarray:
    """observation.theta over the prior's columns: exact names, or an attribute with a scalar/list; the
    remaining columns take the prior mean."""
    given, (mean, _) = s.cfg["observation"]["theta"], s.prior.mean_std()
    theta = mean.copy()
    for name in given:
        if name not in s.prior.groups and name not in s.prior.names:
            raise TvbinvError(f"config key 'observation.theta.{name}': not an inferred parameter "
                              f"(inferred: {', '.join(s.prior.groups)})")
    for attr, sl in s.prior.groups.items():
        if attr in given:
            v = np.asarray(given[attr], dtype=float).ravel()
            if v.size not in (1, sl.stop - sl.start):
                raise TvbinvError(f"config key 'observation.theta.{attr}': expected 1 or "
                                  f"{sl.stop - sl.start} values, got {v.size}")
            theta[sl] = v
    for j, name in enumerate(s.prior.names):
        if name in given and name not in s.prior.groups:
            theta[j] = float(given[name])
    return theta


def _fc(s: Any, bold: np.ndarray) -> np.ndarray:
    from tvbinv_hpc.stats import fc

    return fc(s.features.prepare(bold))


def observe(s: Any) -> Observation:
    """The observation's features, checked on rank 0 (call inside ``mpi.decide``/``lead``). A cohort's
    first subject; ``observe_all`` gives every subject."""
    o = s.cfg["observation"]
    if o["source"] == "synthetic":
        theta = synthetic_theta(s)
        index = o["index"] if o["index"] >= 0 else s.cfg["budget"]["n_sims"] + 10**6
        x, status, bold = driver.simulate_batch(s, theta[None, :], np.array([index]))
        if status[0] != store.OK:
            raise TvbinvError(f"the synthetic observation (theta {dict(zip(s.prior.names, theta))}) "
                              f"{store.STATUS_NAMES[int(status[0])]}; choose another observation.theta")
        b = bold[0].astype(np.float64)
        return Observation(x[0], _fc(s, b), theta, "synthetic", b)
    if is_cohort(s.cfg):
        name, path = cohort_sources(s.cfg)[0]
        return empirical(s, path, name)
    return empirical(s, o["source"], "")


def empirical(s: Any, path: str, name: str) -> Observation:
    """One subject's BOLD file -> features, FC and the series (checked: regions, TR, values, length)."""
    from tvbinv_hpc.inference import load_empirical_bold

    o = s.cfg["observation"]
    try:
        bold = load_empirical_bold(path, n_regions=s.engine.n_regions, tr_ms=s.engine.tr_ms,
                                   variable=o["variable"] or None, min_timepoints=s.features.min_samples,
                                   layout=o["layout"], tr_stated=o["tr"], connectome=s.engine.connectome)
        x = s.features.compute_empirical(bold)
    except TvbinvError as exc:
        if name and type(exc) is not ConfigError:   # in a cohort, say whose file it is
            raise type(exc)(f"subject '{name}': {exc}") from None
        raise
    notes = tuple(n for n in (length_note(s, bold.shape[0]),) if n)
    for n in notes:
        log.warning("observation%s: %s", f" {name}" if name else "", n)
    return Observation(np.asarray(x, float), _fc(s, bold), None, str(path), np.asarray(bold, np.float64), name,
                       notes)


LENGTH_RTOL = 0.05   # observed and simulated series within 5 % of each other count as the same length


def length_note(s: Any, n_obs: int) -> str:
    """A warning when the observed BOLD and the simulations differ in length: FC and FCD statistics carry a
    sampling noise that shrinks with the length, and sums over window pairs (FCD_SUM) grow with it, so
    features of series of different lengths are not comparable."""
    n_sim = s.engine.n_bold
    if abs(n_obs - n_sim) <= LENGTH_RTOL * n_sim:
        return ""
    tr, first = s.engine.tr_ms, s.engine.bold_transient_ms
    want = (first + n_obs * tr) / s.engine.ms_per_unit
    return (f"the observed BOLD has {n_obs} samples but each simulation gives {n_sim}: features of series of "
            f"different lengths are not comparable (FC/FCD sampling noise, FCD_SUM counts window pairs); set "
            f"simulation.length = {math.ceil(want)} (model units) to simulate as many samples as observed")


def observe_all(s: Any) -> list[Observation]:
    """Every observation of the run: one, or each subject of a cohort (all checked before any compute)."""
    if not is_cohort(s.cfg):
        return [observe(s)]
    return [empirical(s, path, name) for name, path in cohort_sources(s.cfg)]


def fcd_window(s: Any) -> dict[str, Any]:
    """The FCD the report compares: the feature set's own (fcd_stats first, else bold_fcd_for_sbi, whose
    FCD_SUM keeps window pairs at lag >= win_len), else FCD_DEFAULT_WINDOW_S windows, step 1 sample, lag >=
    win_len (non-overlapping pairs: overlapping windows share samples and correlate trivially)."""
    specs = s.features.describe()
    for spec in specs:
        if spec["name"] == "fcd_stats":
            return {"win_len": spec["win_len"], "win_sp": spec["win_sp"], "include_last": spec["include_last"],
                    "min_lag": spec["min_lag"], "source": "fcd_stats", "tr_ms": s.engine.tr_ms}
    for spec in specs:
        if spec["name"] == "bold_fcd_for_sbi":
            return {"win_len": spec["win_len"], "win_sp": spec["win_sp"], "include_last": False,
                    "min_lag": spec["win_len"], "source": "bold_fcd_for_sbi", "tr_ms": s.engine.tr_ms}
    win = max(2, int(round(FCD_DEFAULT_WINDOW_S * 1000.0 / s.engine.tr_ms)))
    return {"win_len": win, "win_sp": 1, "include_last": True, "min_lag": win, "source": "default",
            "tr_ms": s.engine.tr_ms}


def fcd_values(s: Any, bold: np.ndarray) -> list[np.ndarray] | None:
    """FCD upper-triangle values (lag >= min_lag) of each BOLD (B, T, N) as the features see it (burn-in,
    preprocessing); None when the series is too short for the window (the report says so)."""
    from tvbinv_hpc.stats.fc import triu_values
    from tvbinv_hpc.stats.fcd import fcd

    w = fcd_window(s)
    try:
        mats = fcd(s.features.prepare(bold), w["win_len"], w["win_sp"], include_last=w["include_last"])
    except ValueError:
        return None
    if mats.shape[-1] <= w["min_lag"]:
        return None
    vals = triu_values(mats, w["min_lag"])
    return [v[np.isfinite(v)] for v in vals]


def draws_fc(s: Any, bold: np.ndarray) -> np.ndarray:
    """The FC (B, N, N) of each simulated BOLD (B, T, N), prepared as the observation is."""
    return _fc(s, bold)
