"""Numbers that say whether the posterior can be trusted: shrinkage, z-scores, SBC, coverage, PPC.

Shapes follow tvb-inversion: ``shrinkage(prior_std, post_std)`` and ``zscore(true, post_mean, post_std)``
broadcast over numpy arrays or torch tensors.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tvbinv_hpc.errors import InputError
from tvbinv_hpc.inference.posterior import quiet_sampling
from tvbinv_hpc.stats.structure import Structure

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
COVERAGE_LEVELS = np.linspace(0.0, 1.0, 21)


def shrinkage(prior_std: Any, post_std: Any) -> Any:
    """Posterior shrinkage, ``1 - var_post / var_prior``.

    Parameters
    ----------
    prior_std, post_std
        Standard deviations per parameter (arrays or scalars, broadcast together).

    Returns
    -------
    array_like
        1 where the data pinned the parameter, 0 where it taught nothing (negative: wider than the prior).
    """
    return 1 - (post_std / prior_std) ** 2


def zscore(true: Any, post_mean: Any, post_std: Any) -> Any:
    """Posterior z-score, ``|mu_post - theta_true| / sigma_post``.

    Parameters
    ----------
    true, post_mean, post_std
        The true parameters, the posterior means and standard deviations (broadcast together).

    Returns
    -------
    array_like
        How many posterior standard deviations the truth lies from the posterior mean.
    """
    return abs(post_mean - true) / post_std


def summarize_samples(samples: np.ndarray, prior_std: np.ndarray,
                      theta_true: np.ndarray | None = None) -> dict:
    """Mean, std, quantiles (QUANTILES x d), shrinkage and (with truth) z-score of (n, d) samples."""
    mean, std = samples.mean(axis=0), samples.std(axis=0, ddof=1)
    out = {
        "mean": mean,
        "std": std,
        "quantiles": np.quantile(samples, QUANTILES, axis=0),
        "shrinkage": shrinkage(np.asarray(prior_std, dtype=np.float64), std),
    }
    if theta_true is not None:
        out["zscore"] = zscore(np.asarray(theta_true, dtype=np.float64), mean, std)
    return out


SBC_MIN_ROWS = 100   # sbi's recommendation for its SBC checks


def _batched_samples(posterior: Any, x: torch.Tensor, n: int,
                     max_sampling_time: float | None) -> torch.Tensor:
    kwargs = {"max_sampling_time": max_sampling_time} if max_sampling_time else {}
    with quiet_sampling():
        return posterior.sample_batched((n,), x=x, show_progress_bars=False, **kwargs)  # (n, B, d)


def test_rows(posterior: Any, theta_test: np.ndarray, x_test: np.ndarray, prior_samples: np.ndarray,
              prior_std: np.ndarray, *, n_rows: int, n_samples: int, coverage: str, seed: int,
              max_sampling_time: float | None = None, log: Callable[[str], Any] = print) -> dict:
    """Calibration on held-out simulations: per-row shrinkage/z-score, SBC, expected coverage, TARP.

    One batched draw of ``n_samples`` per row serves everything; SBC ranks are computed exactly as
    sbi's ``run_sbc(reduce_fns="marginals")`` does (count of posterior draws below the true value)
    and tested with sbi's ``check_sbc``. Expected coverage ranks the truth's posterior density among
    the draws' (sbi's "-log_prob" reduce function); TARP uses ``run_tarp``'s estimator on the same draws.
    """
    from sbi.diagnostics import check_sbc, check_tarp

    ok = np.isfinite(x_test).all(axis=1) & np.isfinite(theta_test).all(axis=1)
    idx = np.flatnonzero(ok)[:n_rows]
    out: dict = {"row_index": idx, "n_rows": int(idx.size), "n_samples": n_samples,
                 "n_invalid": int((~ok).sum())}
    if idx.size < 2:
        log(f"diagnose: only {idx.size} finite test rows; skipping SBC and coverage")
        return out
    theta_t = torch.as_tensor(theta_test[idx], dtype=torch.float32)
    x_t = torch.as_tensor(x_test[idx], dtype=torch.float32)
    torch.manual_seed(seed)
    draws = _batched_samples(posterior, x_t, n_samples, max_sampling_time)
    d64 = draws.numpy().astype(np.float64)
    mean, std = d64.mean(axis=0), d64.std(axis=0, ddof=1)
    out.update(theta=theta_test[idx].astype(np.float64), post_mean=mean, post_std=std,
               shrinkage=shrinkage(np.asarray(prior_std, dtype=np.float64), std),
               zscore=zscore(theta_test[idx].astype(np.float64), mean, std))

    ranks = (draws < theta_t.unsqueeze(0)).sum(dim=0).to(torch.float32)
    dap = draws[0]
    prior_t = torch.as_tensor(prior_samples[: idx.size], dtype=torch.float32)
    if prior_t.shape[0] < idx.size:
        prior_t = posterior.prior.sample((idx.size,)).reshape(idx.size, -1).to(torch.float32)
    with warnings.catch_warnings():   # below 100 rows the report says so once (sbi would warn per call)
        warnings.filterwarnings("ignore", message="You are computing SBC checks with less than")
        check = check_sbc(ranks, prior_t, dap, num_posterior_samples=n_samples)
    if idx.size < SBC_MIN_ROWS:
        out["note"] = (f"SBC and coverage on {idx.size} held-out rows: a coarse check (sbi recommends at "
                       f"least {SBC_MIN_ROWS}; diagnose.sbc_rows and budget.test_fraction set it)")
    out.update(sbc_ranks=ranks.numpy().astype(np.int64),
               ks_pvals=check["ks_pvals"].numpy().astype(np.float64),
               c2st_ranks=check["c2st_ranks"].numpy().astype(np.float64),
               c2st_dap=check["c2st_dap"].numpy().astype(np.float64))

    if coverage in ("expected", "both"):
        with torch.no_grad():
            lp_draws = posterior.log_prob_batched(draws, x=x_t, norm_posterior=False)       # (n, B)
            lp_true = posterior.log_prob_batched(theta_t.unsqueeze(0), x=x_t, norm_posterior=False)
        # Fraction of draws denser than the truth = smallest HPD level that contains the truth.
        hpd_level = (lp_draws > lp_true).to(torch.float64).mean(dim=0).numpy()
        out["coverage_rank"] = hpd_level
        out["coverage_levels"] = COVERAGE_LEVELS
        out["expected_coverage"] = np.array([(hpd_level < c).mean() for c in COVERAGE_LEVELS])
        out["expected_coverage"][-1] = 1.0
        out["coverage_max_deviation"] = float(np.abs(out["expected_coverage"] - COVERAGE_LEVELS).max())
    if coverage in ("tarp", "both"):
        from sbi.diagnostics.tarp import _run_tarp, get_tarp_references

        torch.manual_seed(seed + 1)   # the references are random points
        ecp, alpha = _run_tarp(draws, theta_t, get_tarp_references(theta_t), z_score_theta=True)
        atc, ks = check_tarp(ecp, alpha)
        out.update(tarp_ecp=ecp.numpy().astype(np.float64), tarp_alpha=alpha.numpy().astype(np.float64),
                   tarp_atc=float(atc), tarp_ks_pval=float(ks))
    return out


def ppc_compare(x_obs: np.ndarray, x_ppc: np.ndarray) -> dict:
    """Where the observed features fall in the posterior predictive (diverged rows = NaN are dropped).

    z: (x_obs - mean_ppc) / std_ppc per feature; quantile: fraction of predictive draws <= x_obs
    (near 0 or 1 means the model cannot reproduce that feature).
    """
    x_obs = np.asarray(x_obs, dtype=np.float64).ravel()
    x_ppc = np.asarray(x_ppc, dtype=np.float64)
    valid = np.isfinite(x_ppc).all(axis=1)
    good = x_ppc[valid]
    out = {"n_draws": int(len(x_ppc)), "n_valid": int(valid.sum()), "n_diverged": int((~valid).sum())}
    if good.shape[0] < 2:
        nan = np.full(x_obs.shape, np.nan)
        out.update(mean=nan, std=nan, z=nan, quantile=nan)
        return out
    mean, std = good.mean(axis=0), good.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, (x_obs - mean) / std, np.nan)
    out.update(mean=mean, std=std, z=z, quantile=(good <= x_obs).mean(axis=0))
    return out


def mean_fc(draws: np.ndarray) -> np.ndarray:
    """The mean (N, N) of the draws' FC (K, N, N), over the draws where an entry is finite (a region whose
    BOLD is constant in one draw leaves NaN in that draw's FC only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # an entry NaN in every draw stays NaN
        return np.nanmean(np.asarray(draws, dtype=np.float64), axis=0)


def fc_compare(fc_obs: np.ndarray, fc_pred: np.ndarray) -> dict:
    """Pearson r and RMSE between the upper triangles of observed and predicted FC.

    ``fc_pred``: the predicted FC (N, N), or one FC per predictive draw (K, N, N); then r and RMSE are those
    of the draws' mean FC, and ``fc_corr_draw_median/min/max`` give r of the single draws, which is what one
    simulation of the data's length reaches (the mean of K draws averages the draws' sampling noise out)."""
    fc_obs, fc_pred = np.asarray(fc_obs, dtype=np.float64), np.asarray(fc_pred, dtype=np.float64)
    draws = fc_pred if fc_pred.ndim == 3 else None
    mean = mean_fc(draws) if draws is not None else fc_pred
    iu = np.triu_indices_from(fc_obs, k=1)
    a, b = fc_obs[iu], mean[iu]
    ok = np.isfinite(a) & np.isfinite(b)
    r = _corr(a, b)
    rmse = float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2))) if ok.any() else float("nan")
    out = {"fc_corr": r, "fc_rmse": rmse}
    if draws is not None:
        rs = np.array([_corr(a, d[iu]) for d in draws])
        ok_draws = np.flatnonzero(np.isfinite(rs))
        if ok_draws.size:
            good = rs[ok_draws]
            out.update(fc_corr_draw_median=float(np.median(good)), fc_corr_draw_min=float(good.min()),
                       fc_corr_draw_max=float(good.max()), fc_corr_n_draws=int(good.size),
                       # the draw whose r is the median (the lower middle one for an even count): plotted
                       fc_median_draw=int(ok_draws[np.argsort(good)[(good.size - 1) // 2]]))
    return out


def _corr(u: np.ndarray, v: np.ndarray) -> float:
    ok = np.isfinite(u) & np.isfinite(v)
    if ok.sum() < 3 or u[ok].std() == 0 or v[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(u[ok], v[ok])[0, 1])


def sc_baselines(fc_obs: np.ndarray, sc: np.ndarray) -> dict:
    """r(FC, SC) and r(FC, log(1 + SC)): how well the structure alone predicts the observed FC.

    Upper triangle (k = 1) of the observed FC against the symmetrised SC, with log(1 + SC) in units of the
    smallest non-zero weight (:class:`tvbinv_hpc.stats.structure.Structure`, the definition the
    ``fc_pattern`` feature uses too). A fit whose predicted FC correlates less with the data than these
    does not use the dynamics.
    """
    fc_obs, w = np.asarray(fc_obs, dtype=np.float64), np.asarray(sc, dtype=np.float64)
    if fc_obs.shape != w.shape or fc_obs.ndim != 2:
        raise InputError(f"FC {fc_obs.shape} and SC {w.shape} must be square matrices of the same size")
    s = Structure(w)
    u = fc_obs[s.iu]
    return {"r_fc_sc": _corr(u, s.sc), "r_fc_logsc": _corr(u, s.log_sc), "sc_log_unit": s.sc_log_unit}


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| (scipy's ks_2samp statistic)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    pts = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, pts, "right") / a.size
                        - np.searchsorted(b, pts, "right") / b.size).max())


FCD_SUMMARY = 2000   # each FCD's values -> this many evenly spaced quantiles (ECDF error <= 1 / 2000)


def _summarize_values(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size <= FCD_SUMMARY:
        return np.sort(v)
    return np.quantile(v, (np.arange(FCD_SUMMARY) + 0.5) / FCD_SUMMARY)


def fcd_agreement(fcd_obs: np.ndarray, fcd_draws: list[np.ndarray]) -> dict:
    """KS distance between the observed FCD values and the pooled posterior-predictive FCD values, and
    the same distance for each predictive draw against the pool of the others (leave-one-out).

    The draws' distances are what the statistic looks like when the data do come from the model, a scale
    for the observed one (a pooled KS p-value would be meaningless: FCD entries are strongly dependent).
    p: Monte Carlo rank, (1 + #{draw D >= observed D}) / (n_draws + 1). Every FCD is first reduced to
    FCD_SUMMARY quantiles so that each draw weighs the same and the cost does not grow with W^2.
    """
    obs = _summarize_values(fcd_obs)
    draws = [d for d in (_summarize_values(x) for x in fcd_draws) if d.size]
    out: dict = {"fcd_n_draws": len(draws), "fcd_obs_mean": float(obs.mean()) if obs.size else float("nan")}
    if obs.size < 2 or not draws:
        return out
    pool = np.sort(np.concatenate(draws))
    out.update(fcd_ks=ks_distance(obs, pool), fcd_pred_mean=float(pool.mean()))
    if len(draws) >= 2:
        f_pool = np.searchsorted(pool, pool, "right") / pool.size   # right-continuous, ties included
        d_loo = []
        for d in draws:   # F_others = (n_pool F_pool - n_d F_d) / (n_pool - n_d), exact, at every jump
            f_d = np.searchsorted(d, pool, "right") / d.size
            f_rest = (pool.size * f_pool - d.size * f_d) / (pool.size - d.size)
            d_loo.append(float(np.abs(f_d - f_rest).max()))
        d_loo = np.array(d_loo)
        out.update(fcd_ks_draws_median=float(np.median(d_loo)), fcd_ks_draws_q95=float(np.quantile(d_loo, 0.95)),
                   fcd_ks_p=float((1 + (d_loo >= out["fcd_ks"]).sum()) / (len(d_loo) + 1)))
    return out
