"""Write the diagnostics' ``summary.json`` and ``report.md`` (``posterior.nc``: ``netcdf.py``).

``result`` is the dict assembled by ``diagnose``: param/feature names, the observation's posterior
samples and their summary, prior samples, test-row calibration, posterior predictive check, training
summary and model meta. Plots live in ``plots.py``; per-region parameters are summarised by ``vectors.py``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc.inference import priorcheck, vectors
from tvbinv_hpc.inference.diagnostics import QUANTILES
from tvbinv_hpc.inference.health import health_lines

# The observed FCD is "beyond the model's own draws" when its KS distance to the predictive exceeds the
# draws' 95th percentile (the Monte Carlo p cannot go below 1 / (K + 1), so it is shown, not thresholded).


def _f(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None   # JSON has no NaN


def _parameters(result: dict, params: list[str], regional: set[str], warnings: list[str]) -> dict:
    """Per-parameter posterior numbers; warnings for the parameters not in a summarised vector."""
    o, per = result["obs"], {}
    for j, p in enumerate(params):
        e = {"mean": _f(o["mean"][j]), "std": _f(o["std"][j]), "shrinkage": _f(o["shrinkage"][j])}
        e.update({f"q{round(q * 100):02d}": _f(o["quantiles"][i, j]) for i, q in enumerate(QUANTILES)})
        if result.get("theta_true") is not None:
            e["true"], e["zscore"] = _f(result["theta_true"][j]), _f(o["zscore"][j])
            if o["zscore"][j] > 3 and p not in regional:
                warnings.append(f"{p}: the true value is {o['zscore'][j]:.1f} posterior std from the mean")
        if o["shrinkage"][j] < vectors.LOW_SHRINKAGE and p not in regional:
            warnings.append(f"{p}: shrinkage {o['shrinkage'][j]:.2f}: the data barely constrain it")
        per[p] = e
    return per


def build_summary(result: dict) -> dict:
    """The JSON summary: per-parameter numbers, calibration, predictive check, training, warnings."""
    params, features = list(result["param_names"]), list(result["feature_names"])
    warnings: list[str] = []
    # a 76-region vector gets one warning per kind (vectors.vector_warnings), not one per region
    regional = {params[j] for cols in vectors.summarised(params).values() for j in cols}
    per = _parameters(result, params, regional, warnings)
    summary: dict[str, Any] = {"parameters": per, "num_samples": int(len(result["samples"]))}
    sampling = result.get("sampling") or {}
    if sampling:
        summary["sampling"] = {k: _f(v) if k == "mass_inside_prior" else v for k, v in sampling.items()}
        warning = sampling_warning(sampling)
        if warning:
            warnings.append(warning)

    t = result.get("test") or {}
    if "sbc_ranks" in t:
        ts: dict[str, Any] = {
            "n_rows": t["n_rows"], "n_samples": t["n_samples"], "n_invalid_rows": t["n_invalid"],
            "shrinkage_mean": {p: _f(v) for p, v in zip(params, t["shrinkage"].mean(axis=0))},
            "zscore_median": {p: _f(v) for p, v in zip(params, np.median(t["zscore"], axis=0))},
            "sbc_ks_pvals": {p: _f(v) for p, v in zip(params, t["ks_pvals"])},
            "sbc_c2st_ranks": {p: _f(v) for p, v in zip(params, t["c2st_ranks"])},
            "sbc_c2st_dap": {p: _f(v) for p, v in zip(params, t["c2st_dap"])},
        }
        if t.get("note"):
            ts["note"] = t["note"]
            warnings.append(t["note"])
        alpha = 0.05 / len(params)   # Bonferroni over parameters
        for p, v in zip(params, t["ks_pvals"]):
            if v < alpha and p not in regional:
                warnings.append(f"{p}: SBC ranks not uniform (KS p = {v:.2g} < {alpha:.2g}): miscalibrated")
        if "expected_coverage" in t:
            ts["expected_coverage"] = {f"{c:.2f}": _f(v) for c, v in
                                       zip(t["coverage_levels"], t["expected_coverage"])}
            ts["coverage_max_deviation"] = _f(t["coverage_max_deviation"])
            if t["coverage_max_deviation"] > 0.15:
                warnings.append(f"expected coverage deviates from the diagonal by up to "
                                f"{t['coverage_max_deviation']:.2f}")
        if "tarp_ecp" in t:
            ts["tarp_atc"], ts["tarp_ks_pval"] = _f(t["tarp_atc"]), _f(t["tarp_ks_pval"])
            if t["tarp_ks_pval"] < 0.05:
                warnings.append(f"TARP coverage test fails (KS p = {t['tarp_ks_pval']:.2g}, "
                                f"ATC = {t['tarp_atc']:.2f})")
        summary["test"] = ts

    vecs = vectors.vector_summaries(per, params, summary.get("test"))
    if vecs:
        summary["vectors"] = vecs
        warnings += vectors.vector_warnings(vecs)

    ppc = result.get("ppc")
    if ppc:
        c = ppc["compare"]
        x_obs = np.asarray(result["x_obs"], dtype=np.float64)
        feats = {f: {"observed": _f(x_obs[i]), "mean": _f(c["mean"][i]), "std": _f(c["std"][i]),
                     "z": _f(c["z"][i]), "quantile": _f(c["quantile"][i])} for i, f in enumerate(features)}
        outside = [f for i, f in enumerate(features) if np.isfinite(c["z"][i]) and abs(c["z"][i]) > 3]
        summary["ppc"] = {"n_draws": c["n_draws"], "n_diverged": c["n_diverged"],
                          "features_abs_z_gt_3": outside, "features": feats,
                          **{k: _f(v) for k, v in ppc.get("fc_stats", {}).items()}}
        if outside:
            warnings.append(f"posterior predictive misses {len(outside)} feature(s) by > 3 std: "
                            + ", ".join(outside[:8]))
        if c["n_draws"] and c["n_diverged"] > c["n_draws"] / 2:
            warnings.append(f"{c['n_diverged']} of {c['n_draws']} posterior predictive simulations diverged")

    _comparisons(result, summary, warnings)
    tr = result.get("training") or {}
    summary["training"] = {k: v for k, v in tr.items() if k not in ("training_loss", "validation_loss")}
    meta = result.get("meta", {})
    summary["model"] = {"config_hash": meta.get("config_hash"), "builder": meta.get("builder"),
                        "versions": meta.get("versions")}
    health = result.get("health")
    if health:
        summary["simulations"] = health
        warnings += health["warnings"]
    summary["warnings"] = warnings
    return summary


MIN_MASS_INSIDE = 0.9   # a flow that keeps less of its mass than this inside the prior box at x_obs extrapolates


def sampling_warning(sampling: dict) -> str:
    """In words, when the flow at the observation puts much of its mass outside the prior box."""
    mass = sampling.get("mass_inside_prior")
    if mass is None or mass >= MIN_MASS_INSIDE:
        return ""
    how = {"rejection": "the samples are the draws inside the box",
           "truncated": f"the samples are the draws inside the box out of {sampling.get('proposals')} proposals",
           "clipped": "no draw fell inside the box: the samples are the flow's draws clipped onto its faces, "
                      "which only show the direction the data point to"}[sampling.get("method", "rejection")]
    return (f"at the observation only {100 * mass:.3g} % of the posterior flow's mass lies inside the prior "
            f"box ({how}): the observation lies beyond what the simulations cover and the posterior is an "
            "extrapolation (see the prior predictive check)")


def baseline_verdict(r_pred: float | None, r_sc: float | None, r_log: float | None) -> str:
    """In words: does the posterior-predictive FC correlate with the data better than the SC does?"""
    if r_pred is None:
        return "no posterior-predictive FC to compare with the structural baselines"
    named = [(n, r) for n, r in (("SC", r_sc), ("log(1 + SC)", r_log)) if r is not None]
    beaten = [n for n, r in named if r_pred > r]
    if named and len(beaten) == len(named):
        return (f"the posterior predictive (r = {r_pred:.3g}) beats the structural baseline"
                + ("s" if len(named) > 1 else "") + ": the fitted dynamics explain more of the FC than the "
                "structure alone")
    missed = [f"{n} (r = {r:.3g})" for n, r in named if n not in beaten]
    return (f"the posterior predictive (r = {r_pred:.3g}) does not beat " + " or ".join(missed)
            + (f" (it beats {beaten[0]})" if beaten else "")
            + ": its FC correlates with the data no better than the structure alone, so the fit has not "
              "learned anything from the dynamics")


def _comparisons(result: dict, summary: dict, warnings: list[str]) -> None:
    """Prior predictive check, structural baselines and FCD agreement into ``summary`` (and warnings)."""
    ppc = result.get("ppc") or {}
    fcd = ppc.get("fcd_stats")
    if fcd:
        summary["ppc"]["fcd"] = {**{k: _f(v) if isinstance(v, float) else v for k, v in fcd.items()},
                                 "window": result.get("fcd_window")}
        if fcd.get("fcd_ks_draws_q95") is not None:
            summary["ppc"]["fcd"]["beyond_draws"] = bool(fcd["fcd_ks"] > fcd["fcd_ks_draws_q95"])
        if summary["ppc"]["fcd"].get("beyond_draws"):
            warnings.append(f"the observed FCD distribution differs from the posterior predictive's more than "
                            f"95 % of the model's own draws do (KS D = {fcd['fcd_ks']:.3g}, draws' median "
                            f"{fcd['fcd_ks_draws_median']:.3g}, p = {fcd['fcd_ks_p']:.2g})")
    base = result.get("baselines")
    if base:
        b = {k: _f(v) for k, v in base.items()}
        b["fc_corr_posterior_predictive"] = summary.get("ppc", {}).get("fc_corr")
        r_pred, known = b["fc_corr_posterior_predictive"], [r for r in (b["r_fc_sc"], b["r_fc_logsc"]) if r is not None]
        b["beats_baselines"] = None if r_pred is None or not known else bool(all(r_pred > r for r in known))
        b["verdict"] = baseline_verdict(r_pred, b["r_fc_sc"], b["r_fc_logsc"])
        summary["baselines"] = b
        if b["beats_baselines"] is False:
            warnings.append(b["verdict"])
    check = result.get("prior_check")
    if check:
        summary["prior_check"] = priorcheck.to_summary(check)
        if check["verdict"] != "inside":   # first: it qualifies every number after it
            warnings.insert(0, f"prior predictive check: {check['message']}")


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _baseline_lines(b: dict, under_ppc: bool) -> list[str]:
    head = [] if under_ppc else ["## Structural baselines", ""]
    return head + [
        f"Baselines (observed FC against the structure alone, upper triangle): r(FC, SC) = {_fmt(b['r_fc_sc'])}, "
        f"r(FC, log(1 + SC)) = {_fmt(b['r_fc_logsc'])} (SC symmetrised, in units of its smallest non-zero "
        f"weight {_fmt(b['sc_log_unit'])}); posterior-predictive FC r = {_fmt(b['fc_corr_posterior_predictive'])}.",
        f"In words: {b['verdict']}."]


def _fcd_lines(f: dict) -> list[str]:
    w = f.get("window") or {}
    how = ""
    if w:
        secs = f" = {w['win_len'] * w['tr_ms'] / 1000:g} s" if w.get("tr_ms") else ""
        src = (f"of the feature {w['source']}" if w.get("source") != "default"
               else "by default: no FCD feature in the set")
        how = (f" (windows of {w['win_len']} samples{secs}, step {w['win_sp']}, window pairs at lag >= "
               f"{w['min_lag']}; settings {src})")
    if "fcd_ks" not in f:
        return [f"FCD agreement{how}: not computed (the BOLD is too short for this window, or the observed "
                "FCD is missing)."]
    line = (f"FCD agreement{how}: KS distance between the observed and the posterior-predictive FCD values "
            f"D = {_fmt(f['fcd_ks'])} (FCD mean {_fmt(f.get('fcd_obs_mean'))} observed, "
            f"{_fmt(f.get('fcd_pred_mean'))} predicted)")
    if f.get("beyond_draws") is not None:
        same = "beyond" if f["beyond_draws"] else "within"
        line += (f"; a predictive draw against the others: median D = {_fmt(f['fcd_ks_draws_median'])}, 95th "
                 f"percentile {_fmt(f['fcd_ks_draws_q95'])} (p = {_fmt(f['fcd_ks_p'])}): the observed FCD "
                 f"is {same} what the model's own draws show")
    return [line + "."]


def write_report(path: str | Path, summary: dict, title: str = "") -> None:
    """A short Markdown report a person reads first; the numbers come from ``summary``."""
    lines = [f"# Posterior diagnostics{': ' + title if title else ''}", ""]
    tr = summary.get("training", {})
    if tr:
        lines += [f"Trained on {tr.get('n_train')} + {tr.get('n_validation')} (validation) simulations, "
                  f"{tr.get('n_excluded')} excluded (NaN/Inf); {tr.get('epochs')} epochs in "
                  f"{tr.get('seconds')} s"
                  + (f" (an equal-weight ensemble of {tr['ensemble']} flows)." if tr.get("ensemble") else "."), ""]
    has_true = any("true" in e for e in summary["parameters"].values())
    head = ["parameter", "mean", "std", "q05", "q50", "q95", "shrinkage"]
    head += ["true", "z-score"] if has_true else []
    lines += [f"## Posterior ({summary['num_samples']} samples)", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    vecs = summary.get("vectors") or {}
    regional = {p for p in summary["parameters"] if vecs and p.split("[")[0] in vecs}
    for p, e in summary["parameters"].items():
        if p in regional:   # summarised below the table
            continue
        vals = [e["mean"], e["std"], e["q05"], e["q50"], e["q95"], e["shrinkage"]]
        vals += [e.get("true"), e.get("zscore")] if has_true else []
        lines.append(f"| {p} | " + " | ".join(_fmt(v) for v in vals) + " |")
    if vecs:
        lines += ["", "### Per-region parameters", ""] + vectors.report_lines(vecs)
    leak = sampling_warning(summary.get("sampling") or {})
    if leak:   # under the table it qualifies: the numbers above are not a posterior inside the prior
        lines += ["", f"**Warning: {leak}.**"]
    if summary.get("prior_check"):   # next to the posterior: it says whether the table can be trusted at all
        lines += [""] + priorcheck.report_lines(summary["prior_check"])
    t = summary.get("test")
    if t:
        lines += ["", f"## Calibration on {t['n_rows']} held-out simulations ({t['n_samples']} draws each)",
                  "", "| parameter | mean shrinkage | median z-score | SBC KS p | C2ST ranks |",
                  "|---|---|---|---|---|"]
        for p in (p for p in summary["parameters"] if p not in regional):
            lines.append(f"| {p} | {_fmt(t['shrinkage_mean'][p])} | {_fmt(t['zscore_median'][p])} | "
                         f"{_fmt(t['sbc_ks_pvals'][p])} | {_fmt(t['sbc_c2st_ranks'][p])} |")
        lines += vectors.calibration_rows(vecs)
        if "coverage_max_deviation" in t:
            lines += ["", "Expected coverage: max deviation from the diagonal "
                          f"{_fmt(t['coverage_max_deviation'])}."]
        if "tarp_atc" in t:
            lines += ["", f"TARP: ATC {_fmt(t['tarp_atc'])} (≈0 good, >0 under-, <0 over-confident), "
                          f"KS p {_fmt(t['tarp_ks_pval'])}."]
    ppc = summary.get("ppc")
    if ppc:
        lines += ["", f"## Posterior predictive check ({ppc['n_draws']} draws, {ppc['n_diverged']} diverged)",
                  ""]
        if "fc_corr" in ppc:
            lines.append(f"Observed vs predicted FC: r = {_fmt(ppc['fc_corr'])}, "
                         f"RMSE = {_fmt(ppc.get('fc_rmse'))} (the mean FC of the draws)"
                         + (f"; single draws: r median {_fmt(ppc['fc_corr_draw_median'])}, range "
                            f"{_fmt(ppc['fc_corr_draw_min'])} to {_fmt(ppc['fc_corr_draw_max'])} "
                            f"({int(ppc['fc_corr_n_draws'])} draws)." if "fc_corr_draw_median" in ppc else "."))
        missed = ", ".join(ppc["features_abs_z_gt_3"]) or "none"
        lines.append(f"Features off by > 3 predictive std: {missed}.")
        if ppc.get("fcd"):
            lines += [""] + _fcd_lines(ppc["fcd"])
    if summary.get("baselines"):
        lines += [""] + _baseline_lines(summary["baselines"], bool(ppc))
    if summary.get("simulations"):
        lines += [""] + health_lines(summary["simulations"])
    lines += ["", "## Warnings", ""] + ([f"- {w}" for w in summary["warnings"]] or ["- none"])
    Path(path).write_text("\n".join(lines) + "\n")
