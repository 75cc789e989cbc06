"""Numbers that say whether the posterior can be trusted: shrinkage, z-scores, SBC, coverage, PPC.

Shapes follow tvb-inversion: ``shrinkage(prior_std, post_std)`` and ``zscore(true, post_mean, post_std)``
broadcast over numpy arrays or torch tensors.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
COVERAGE_LEVELS = np.linspace(0.0, 1.0, 21)


def shrinkage(prior_std: Any, post_std: Any) -> Any:
    """1 - var_post / var_prior: 1 means the data pinned the parameter, 0 means it taught nothing."""
    return 1 - (post_std / prior_std) ** 2


def zscore(true: Any, post_mean: Any, post_std: Any) -> Any:
    """|mu_post - theta_true| / sigma_post: how many posterior std the truth lies from the mean."""
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


def _batched_samples(posterior: Any, x: torch.Tensor, n: int,
                     max_sampling_time: float | None) -> torch.Tensor:
    kwargs = {"max_sampling_time": max_sampling_time} if max_sampling_time else {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Capping max_sampling_batch_size")  # sbi's memory cap: fine
        return posterior.sample_batched((n,), x=x, show_progress_bars=False, **kwargs)  # (n, B, d)


def test_rows(posterior: Any, theta_test: np.ndarray, x_test: np.ndarray, prior_samples: np.ndarray,
              prior_std: np.ndarray, *, n_rows: int, n_samples: int, coverage: str, seed: int,
              max_sampling_time: float | None = None, log=print) -> dict:
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
    check = check_sbc(ranks, prior_t, dap, num_posterior_samples=n_samples)
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


def fc_compare(fc_obs: np.ndarray, fc_pred: np.ndarray) -> dict:
    """Pearson r and RMSE between the upper triangles of observed and predicted FC."""
    fc_obs, fc_pred = np.asarray(fc_obs, dtype=np.float64), np.asarray(fc_pred, dtype=np.float64)
    iu = np.triu_indices_from(fc_obs, k=1)
    a, b = fc_obs[iu], fc_pred[iu]
    ok = np.isfinite(a) & np.isfinite(b)
    r = float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else float("nan")
    rmse = float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2))) if ok.any() else float("nan")
    return {"fc_corr": r, "fc_rmse": rmse}
