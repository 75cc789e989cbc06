"""Rank 0's diagnose step: sample the posterior at the observation, calibrate on test rows,
run the posterior predictive check through the caller's simulator, and write everything.

Output folder: posterior.nc, summary.json, report.md and (with ``plots``) PNG files.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tvbinv_hpc.errors import InputError
from tvbinv_hpc.inference import vectors
from tvbinv_hpc.inference.diagnostics import (
    fc_compare,
    fcd_agreement,
    mean_fc,
    ppc_compare,
    sc_baselines,
    summarize_samples,
    test_rows,
)
from tvbinv_hpc.inference.netcdf import write_netcdf
from tvbinv_hpc.inference.posterior import sample_posterior
from tvbinv_hpc.inference.priorcheck import prior_predictive_check
from tvbinv_hpc.inference.report import build_summary, write_report
from tvbinv_hpc.inference.settings import validate_diagnose
from tvbinv_hpc.inference.train import TrainedPosterior, resolve_threads

# theta (K, d) -> x_ppc (K, k), or (x_ppc, FC | None[, fcd values: one 1-D array per valid draw]); FC: the mean
# FC (N, N) or one per valid draw (K', N, N), which adds the single draws' r to the comparison
PpcSimulate = Callable[[np.ndarray], Any]


def _as_2d(name: str, a: Any, cols: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != cols:
        raise InputError(f"{name} must have shape (n, {cols}), got {a.shape}")
    return a


def _run_ppc(ppc_simulate: PpcSimulate, theta: np.ndarray, x_obs: np.ndarray, fc_obs: Any, log,
             fcd_obs: np.ndarray | None = None) -> dict:
    log(f"diagnose: posterior predictive check, simulating {len(theta)} posterior draws")
    out = ppc_simulate(theta)
    x_ppc, fc_out, fcd_ppc = (tuple(out) + (None, None))[:3] if isinstance(out, tuple) else (out, None, None)
    x_ppc = _as_2d("ppc_simulate's x", x_ppc, x_obs.size)
    if len(x_ppc) != len(theta):
        raise InputError(f"ppc_simulate returned {len(x_ppc)} rows for {len(theta)} parameter sets")
    fc_pred = fc_mean = None if fc_out is None else np.asarray(fc_out, dtype=np.float64)
    if fc_pred is not None and fc_pred.ndim == 3:      # one FC per draw: compare their mean and each
        fc_mean = mean_fc(fc_pred) if len(fc_pred) else None
    ppc = {"theta": theta, "x": x_ppc, "compare": ppc_compare(x_obs, x_ppc),
           "fc_mean": None if fc_mean is None else np.asarray(fc_mean, dtype=np.float64),
           "fc_obs": None if fc_obs is None else np.asarray(fc_obs, dtype=np.float64)}
    if ppc["fc_mean"] is not None and ppc["fc_obs"] is not None:
        if ppc["fc_mean"].shape != ppc["fc_obs"].shape:
            raise InputError(f"predicted FC {ppc['fc_mean'].shape} and observed FC "
                             f"{ppc['fc_obs'].shape} differ")
        ppc["fc_stats"] = fc_compare(ppc["fc_obs"], fc_pred)
        if "fc_median_draw" in ppc["fc_stats"]:
            ppc["fc_draw"] = fc_pred[ppc["fc_stats"]["fc_median_draw"]]
    if fcd_obs is not None and fcd_ppc:
        ppc["fcd_stats"] = fcd_agreement(fcd_obs, list(fcd_ppc))
    log(f"diagnose: {ppc['compare']['n_diverged']} of {len(theta)} predictive simulations diverged")
    return ppc


def _observation_context(x_prior: Any, x_obs: np.ndarray, feats: list[str], fc_obs: Any, sc: Any,
                         log: Callable[[str], Any]) -> tuple[dict | None, dict | None]:
    """What needs no posterior: where the observation lies among the training simulations, and how well
    the structure alone predicts its FC (the baselines any fit must beat)."""
    check = None
    if x_prior is not None:
        check = prior_predictive_check(_as_2d("x_prior", x_prior, len(feats)), x_obs, feats)
        log(f"diagnose: prior predictive check: {check['verdict']}")
    return check, (sc_baselines(fc_obs, sc) if sc is not None and fc_obs is not None else None)


def _plots(outdir: Path, result: dict) -> list[Path]:
    from tvbinv_hpc.inference import plots  # matplotlib only when plots are asked for

    names, feats = result["param_names"], result["feature_names"]
    s, ps, truth, o = result["samples"], result["prior_samples"], result["theta_true"], result["obs"]
    # Beyond vectors.MAX_TABLE_PARAMS the per-region parameters get a plot each against the region index;
    # the marginal and pair plots show the global ones and the few best-constrained regions.
    vecs = vectors.summarised(names)
    cols, note = vectors.plotted_params(names, o["shrinkage"], plots.MAX_PAIR_PARAMS)
    sub = [names[j] for j in cols]
    sub_truth = None if truth is None else truth[cols]
    files = [plots.marginals(outdir / "marginals.png", s[:, cols], ps[:, cols], sub, sub_truth, note)]
    if 2 <= len(cols) <= plots.MAX_PAIR_PARAMS:
        files.append(plots.pairs(outdir / "pairs.png", s[:, cols], sub, sub_truth, note))
    for base, vc in vecs.items():
        files.append(plots.regions(outdir / f"regions_{vectors.plot_stem(base)}.png", s[:, vc], ps[:, vc], base,
                                   [vectors.region_of(names[j]) for j in vc], o["shrinkage"][vc],
                                   None if truth is None else truth[vc]))
    t = result["test"] or {}
    if "sbc_ranks" in t:
        files += [plots.sbc_ranks(outdir / "sbc_ranks.png", t["sbc_ranks"], t["n_samples"], names,
                                  t["ks_pvals"], vecs),
                  plots.shrinkage_zscore(outdir / "shrinkage_zscore.png", t["shrinkage"], t["zscore"],
                                         names, o["shrinkage"], o.get("zscore"), vecs)]
    if "expected_coverage" in t or "tarp_ecp" in t:
        files.append(plots.coverage(outdir / "coverage.png", t.get("coverage_levels"),
                                    t.get("expected_coverage"), t.get("tarp_alpha"), t.get("tarp_ecp")))
    ppc = result["ppc"]
    if ppc:
        scalar_feats, region_feats = vectors.split_features(feats)
        if scalar_feats:
            files.append(plots.ppc_features(outdir / "ppc_features.png", ppc["x"], result["x_obs"], feats,
                                            scalar_feats))
        if region_feats:
            files.append(plots.ppc_regions(outdir / "ppc_regions.png", ppc["x"], result["x_obs"], region_feats))
        if ppc.get("fc_stats"):
            st = ppc["fc_stats"]
            draw_title = (f"one draw (median r = {st['fc_corr_draw_median']:.2f} of {st['fc_corr_n_draws']})"
                          if "fc_draw" in ppc else "")
            files.append(plots.fc_matrices(outdir / "fc_observed_vs_predicted.png",
                                           ppc["fc_obs"], ppc["fc_mean"], ppc.get("fc_draw"), draw_title))
    tr = result["training"] or {}
    if tr.get("validation_loss"):
        files.append(plots.losses(outdir / "training_loss.png", tr["training_loss"], tr["validation_loss"]))
    return files


def _calibrate(trained: TrainedPosterior, theta_test: np.ndarray, x_test: np.ndarray, prior_samples: np.ndarray,
               prior_std: np.ndarray, settings: dict, seed: int, log: Callable[[str], Any]) -> dict | None:
    if not (settings["sbc_rows"] and len(theta_test)):
        return None
    log(f"diagnose: calibration on up to {settings['sbc_rows']} test rows x {settings['sbc_samples']} draws")
    return test_rows(trained.posterior, theta_test, x_test, prior_samples, prior_std,
                     n_rows=settings["sbc_rows"], n_samples=settings["sbc_samples"],
                     coverage=settings["coverage"], seed=seed + 1,
                     max_sampling_time=settings["max_sampling_time"] or None, log=log)


def calibrate(trained: TrainedPosterior, *, theta_test: np.ndarray, x_test: np.ndarray,
              prior_samples: np.ndarray, prior_std: np.ndarray, settings: dict, seed: int = 0,
              log: Callable[[str], Any] = print) -> dict | None:
    """SBC ranks, coverage and test-row shrinkage/z-scores: the posterior's calibration, which does not
    depend on the observation (``diagnose`` takes the result as ``calibration``)."""
    settings = validate_diagnose(settings)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(resolve_threads(settings["threads"], int(trained.meta.get("ranks_on_node", 1))))
    try:
        return _calibrate(trained, _as_2d("theta_test", theta_test, len(trained.param_names)),
                          _as_2d("x_test", x_test, len(trained.feature_names)),
                          _as_2d("prior_samples", prior_samples, len(trained.param_names)),
                          np.asarray(prior_std, dtype=np.float64), settings, seed, log)
    finally:
        torch.set_num_threads(prev_threads)


def diagnose(trained: TrainedPosterior, *, x_obs: np.ndarray, theta_true: np.ndarray | None,
             theta_test: np.ndarray, x_test: np.ndarray, prior_samples: np.ndarray,
             prior_std: np.ndarray | None, settings: dict, outdir: str | Path,
             ppc_simulate: PpcSimulate | None = None, fc_obs: np.ndarray | None = None, seed: int = 0,
             log: Callable[[str], Any] = print, health: dict | None = None, x_prior: np.ndarray | None = None,
             sc: np.ndarray | None = None, fcd_obs: np.ndarray | None = None,
             fcd_window: dict | None = None, calibration: dict | None = None, title: str = "",
             notes: list[str] | tuple[str, ...] = ()) -> dict:
    """Write posterior.nc, summary.json, report.md and plots into ``outdir``; return the summary.

    ``x_obs`` (k,) are the observed features; ``theta_true`` (d,) when the observation is synthetic.
    ``theta_test``/``x_test`` are held-out rows (NaN rows are skipped); ``prior_samples`` (m, d)
    and ``prior_std`` (d,) describe the prior (None: the std of ``prior_samples``).
    ``ppc_simulate`` is called once with all K draws. ``health`` (``inference.health.simulation_health``):
    the simulations' divergence and artefact counts, reported with their warnings.
    ``x_prior`` (n, k): the simulated training features, for the prior predictive check (``priorcheck``).
    ``sc`` (N, N): the structural connectivity, for the r(FC, SC) and r(FC, log(1 + SC)) baselines.
    ``fcd_obs``: the observed FCD values (1-D), compared with the FCD values ``ppc_simulate`` returns;
    ``fcd_window`` describes how both were computed (win_len, win_sp, include_last, min_lag, source, tr_ms).
    ``calibration``: the held-out rows' calibration from :func:`calibrate` when the caller has it (a cohort
    computes it once for all subjects); otherwise it is computed here. ``title``: the report's heading
    (e.g. the subject's name). ``notes``: warnings about the observation itself, reported first.
    """
    settings = validate_diagnose(settings)
    names, feats = trained.param_names, trained.feature_names
    x_obs, theta_true, theta_test, x_test, prior_samples, prior_std = _checked_inputs(
        names, feats, x_obs, theta_true, theta_test, x_test, prior_samples, prior_std)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    prior_check, baselines = _observation_context(x_prior, x_obs, feats, fc_obs, sc, log)
    mst = settings["max_sampling_time"] or None

    t0 = time.perf_counter()
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(resolve_threads(settings["threads"], int(trained.meta.get("ranks_on_node", 1))))
    try:
        log(f"diagnose: {settings['num_samples']} posterior samples at the observation")
        sampling: dict[str, Any] = {}
        samples = sample_posterior(trained.posterior, x_obs, settings["num_samples"], seed, mst, sampling)
        test = calibration if calibration is not None else _calibrate(
            trained, theta_test, x_test, prior_samples, prior_std, settings, seed, log)
    finally:
        torch.set_num_threads(prev_threads)
    ppc = None
    if ppc_simulate is not None and settings["ppc_draws"]:
        # Samples are i.i.d., so the first K are a random subset of the posterior.
        ppc = _run_ppc(ppc_simulate, samples[: settings["ppc_draws"]], x_obs, fc_obs, log, fcd_obs)
        if fcd_window is not None and "fcd_stats" not in ppc:
            ppc["fcd_stats"] = {"fcd_n_draws": 0}   # the report says it could not be computed

    result = {"param_names": names, "feature_names": feats, "samples": samples,
              "prior_samples": prior_samples, "x_obs": x_obs, "theta_true": theta_true,
              "obs": summarize_samples(samples, prior_std, theta_true),
              "test": test, "ppc": ppc, "training": trained.summary, "meta": trained.meta, "health": health,
              "prior_check": prior_check, "baselines": baselines, "fcd_window": fcd_window,
              "sampling": sampling,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return _write_outputs(outdir, result, plots=settings["plots"], notes=notes, title=title, t0=t0, log=log)


def _checked_inputs(names: list[str], feats: list[str], x_obs: Any, theta_true: Any, theta_test: Any, x_test: Any,
                    prior_samples: Any, prior_std: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray,
                                                                 np.ndarray, np.ndarray, np.ndarray]:
    """``diagnose``'s arrays as float64 of the posterior's shapes (prior_std from the samples when None)."""
    d, k = len(names), len(feats)
    x_obs = np.asarray(x_obs, dtype=np.float64).ravel()
    if x_obs.size != k:
        raise InputError(f"the observation has {x_obs.size} features, the posterior was trained on {k}")
    if not np.isfinite(x_obs).all():
        bad = [feats[i] for i in np.flatnonzero(~np.isfinite(x_obs))]
        raise InputError(f"observed features are NaN/Inf: {', '.join(bad[:10])}")
    if theta_true is not None:
        theta_true = np.asarray(theta_true, dtype=np.float64).ravel()
        if theta_true.size != d:
            raise InputError(f"theta_true has {theta_true.size} values for {d} parameters")
    theta_test, x_test = _as_2d("theta_test", theta_test, d), _as_2d("x_test", x_test, k)
    if len(theta_test) != len(x_test):
        raise InputError(f"theta_test has {len(theta_test)} rows, x_test {len(x_test)}")
    prior_samples = _as_2d("prior_samples", prior_samples, d)
    prior_std = (prior_samples.std(axis=0, ddof=1) if prior_std is None
                 else np.asarray(prior_std, dtype=np.float64).ravel())
    if prior_std.size != d or not (prior_std > 0).all():
        raise InputError(f"prior_std must hold {d} positive values, got {prior_std}")
    return x_obs, theta_true, theta_test, x_test, prior_samples, prior_std


def _write_outputs(outdir: Path, result: dict, *, plots: bool, notes: Any, title: str, t0: float,
                   log: Callable[[str], Any]) -> dict:
    """posterior.nc, the plots, summary.json and report.md; the summary, its warnings logged."""
    groups = write_netcdf(outdir / "posterior.nc", result)
    files = [outdir / "posterior.nc"]
    if plots:
        files += _plots(outdir, result)
    summary = build_summary(result)
    summary["warnings"] = [*notes, *summary["warnings"]]
    summary["netcdf_groups"] = groups
    summary["files"] = [f.name for f in files] + ["summary.json", "report.md"]
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(outdir / "report.md", summary, title)
    for w in summary["warnings"]:
        log(f"diagnose: warning: {w}")
    log(f"diagnose: wrote {len(summary['files'])} files to {outdir} in {summary['seconds']:.1f} s")
    return summary
