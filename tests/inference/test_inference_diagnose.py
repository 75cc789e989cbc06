import json
import os

import numpy as np
import pytest
import torch
import xarray as xr
from inference_problem import FEATURES, PARAMS, make_prior, simulate

from tvbinv_hpc.errors import InputError
from tvbinv_hpc.inference import diagnose, ppc_compare, shrinkage, zscore
from tvbinv_hpc.inference.diagnostics import test_rows as calibrate_test_rows

SETTINGS = {"num_samples": 1000, "sbc_rows": 100, "sbc_samples": 200, "coverage": "both", "ppc_draws": 40}
PRIOR_STD = np.full(3, 1 / np.sqrt(12))  # U(0, 1)
N_REGIONS = 5


@pytest.fixture(scope="session")
def diagnosed(trained, problem, clean_cwd, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("diag")
    rng = np.random.default_rng(5)
    calls = []

    def ppc_simulate(theta):
        calls.append(theta.copy())
        x = simulate(theta, rng)
        x[:3] = np.nan  # three diverged predictive simulations
        return x, np.corrcoef(rng.standard_normal((N_REGIONS, 200)))

    old = os.getcwd()
    os.chdir(clean_cwd)
    try:
        summary = diagnose(
            trained,
            x_obs=problem["x_obs"],
            theta_true=problem["theta_true"],
            theta_test=problem["theta_test"],
            x_test=problem["x_test"],
            prior_samples=make_prior().sample((1000,)).numpy(),
            prior_std=PRIOR_STD,
            settings=SETTINGS,
            outdir=outdir,
            ppc_simulate=ppc_simulate,
            fc_obs=np.corrcoef(rng.standard_normal((N_REGIONS, 200))),
            seed=1,
            log=lambda m: None,
        )
    finally:
        os.chdir(old)
    return {"summary": summary, "outdir": outdir, "calls": calls}


def test_shrinkage_and_zscore_formulas():
    np.testing.assert_allclose(shrinkage(np.array([2.0, 1.0]), np.array([1.0, 1.0])), [0.75, 0.0])
    np.testing.assert_allclose(zscore(np.array([1.0]), np.array([1.5]), np.array([0.25])), [2.0])
    t = zscore(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.25]))
    assert isinstance(t, torch.Tensor) and float(t) == 2.0


def test_ppc_compare_locates_the_observation():
    x_ppc = np.column_stack([np.arange(100.0), np.full(100, 5.0)])
    x_ppc[0] = np.nan
    out = ppc_compare(np.array([200.0, 5.0]), x_ppc)
    assert (out["n_draws"], out["n_valid"], out["n_diverged"]) == (100, 99, 1)
    assert out["quantile"][0] == 1.0 and out["z"][0] > 3  # far outside the predictive range
    assert np.isnan(out["z"][1])  # zero predictive spread: z undefined


def test_posterior_shrinks_and_covers_the_truth(diagnosed):
    for name, e in diagnosed["summary"]["parameters"].items():
        assert e["shrinkage"] > 0.7, name
        assert e["zscore"] < 3, name
        assert e["q05"] < e["q50"] < e["q95"]


def test_calibration_on_test_rows(diagnosed):
    t = diagnosed["summary"]["test"]
    assert t["n_rows"] == 100 and t["n_samples"] == 200
    for p in PARAMS:
        assert t["shrinkage_mean"][p] > 0.7
        assert t["zscore_median"][p] < 1.5
        assert 0.0 <= t["sbc_ks_pvals"][p] <= 1.0
    assert t["coverage_max_deviation"] < 0.3
    assert t["tarp_atc"] is not None and 0.0 <= t["tarp_ks_pval"] <= 1.0


def test_our_ranks_match_sbi_run_sbc(trained, problem):
    """Ranks come from one shared batch of draws; they must equal what sbi's run_sbc computes."""
    from sbi.diagnostics import run_sbc

    ok = np.isfinite(problem["x_test"]).all(axis=1)
    theta, x = problem["theta_test"][ok][:20], problem["x_test"][ok][:20]
    ours = calibrate_test_rows(
        trained.posterior,
        theta,
        x,
        theta,
        PRIOR_STD,
        n_rows=20,
        n_samples=100,
        coverage="expected",
        seed=4,
        log=lambda m: None,
    )
    th, xt = torch.as_tensor(theta, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32)
    torch.manual_seed(4)
    ranks, _ = run_sbc(th, xt, trained.posterior, num_posterior_samples=100, show_progress_bar=False)
    np.testing.assert_array_equal(ours["sbc_ranks"], ranks.numpy().astype(np.int64))
    torch.manual_seed(4)
    cov, _ = run_sbc(
        th,
        xt,
        trained.posterior,
        num_posterior_samples=100,
        show_progress_bar=False,
        reduce_fns=lambda t, xo: -trained.posterior.log_prob(t, xo, norm_posterior=False),
    )
    np.testing.assert_allclose(ours["coverage_rank"] * 100, cov.numpy()[:, 0])


def test_ppc_simulate_called_once_and_divergences_counted(diagnosed):
    assert len(diagnosed["calls"]) == 1 and diagnosed["calls"][0].shape == (40, 3)
    ppc = diagnosed["summary"]["ppc"]
    assert ppc["n_draws"] == 40 and ppc["n_diverged"] == 3
    for f in FEATURES:
        q = ppc["features"][f]["quantile"]
        assert 0.0 <= q <= 1.0
    assert ppc["fc_corr"] is not None


def test_netcdf_layout(diagnosed):
    path = diagnosed["outdir"] / "posterior.nc"
    post = xr.open_dataset(path, group="posterior")
    assert post["theta"].dims == ("chain", "draw", "param") and post["theta"].shape == (1, 1000, 3)
    assert list(post["param"].values) == PARAMS
    prior = xr.open_dataset(path, group="prior")
    assert prior["theta"].shape == (1, 1000, 3)
    obs = xr.open_dataset(path, group="observed_data")
    assert list(obs["feature"].values) == FEATURES and obs["fc"].shape == (N_REGIONS, N_REGIONS)
    pp = xr.open_dataset(path, group="posterior_predictive")
    assert pp["x"].shape == (1, 40, 4) and int(np.isnan(pp["x"].values).any(axis=-1).sum()) == 3
    d = xr.open_dataset(path, group="diagnostics")
    for var in (
        "post_mean",
        "post_std",
        "post_quantile",
        "shrinkage",
        "zscore",
        "theta_true",
        "test_shrinkage",
        "test_zscore",
        "sbc_rank",
        "sbc_ks_pval",
        "expected_coverage",
        "tarp_ecp",
        "ppc_z",
        "ppc_quantile",
    ):
        assert var in d, var
    assert d["sbc_rank"].shape == (100, 3)
    assert ((d["sbc_rank"] >= 0) & (d["sbc_rank"] <= 200)).all()
    assert np.isfinite(d["sbc_ks_pval"]).all()
    np.testing.assert_allclose(
        d["shrinkage"].values, [diagnosed["summary"]["parameters"][p]["shrinkage"] for p in PARAMS]
    )
    tr = xr.open_dataset(path, group="training")
    assert tr["validation_loss"].size > 0


def test_files_plots_and_summary(diagnosed, clean_cwd):
    out = diagnosed["outdir"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"].keys() == set(PARAMS)
    for name in summary["files"]:
        assert (out / name).stat().st_size > 0, name
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "coverage.png",
        "fc_observed_vs_predicted.png",
        "marginals.png",
        "pairs.png",
        "ppc_features.png",
        "sbc_ranks.png",
        "shrinkage_zscore.png",
        "training_loss.png",
    ]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000
    report = (out / "report.md").read_text()
    assert "coupling" in report and "SBC KS p" in report
    assert list(clean_cwd.iterdir()) == []  # no ./sbi-logs, nothing else


def test_bad_observation_is_refused(trained, problem, tmp_path):
    kw = dict(
        theta_true=None,
        theta_test=problem["theta_test"],
        x_test=problem["x_test"],
        prior_samples=problem["theta"][:100],
        prior_std=PRIOR_STD,
        settings={"sbc_rows": 0},
        outdir=tmp_path,
        log=lambda m: None,
    )
    with pytest.raises(InputError, match="f_eta"):
        diagnose(trained, x_obs=np.array([0.1, np.nan, 0.2, 0.0]), **kw)
    with pytest.raises(InputError, match="3 features, the posterior was trained on 4"):
        diagnose(trained, x_obs=np.zeros(3), **kw)


def test_fc_compare_of_draws_gives_the_mean_fc_and_each_draw():
    from tvbinv_hpc.inference.diagnostics import fc_compare

    rng = np.random.default_rng(3)
    n = 12
    iu = np.triu_indices(n, 1)
    obs = rng.normal(size=(n, n))
    obs = (obs + obs.T) / 2
    draws = np.stack([obs + rng.normal(scale=1.5, size=(n, n)) for _ in range(4)])
    draws = np.concatenate([draws, np.full((1, n, n), np.nan)])      # a draw without FC is skipped
    out = fc_compare(obs, draws)
    mean = np.nanmean(draws, axis=0)
    assert out["fc_corr"] == pytest.approx(np.corrcoef(obs[iu], mean[iu])[0, 1])
    singles = [np.corrcoef(obs[iu], d[iu])[0, 1] for d in draws[:4]]
    assert out["fc_corr_n_draws"] == 4
    assert out["fc_corr_draw_median"] == pytest.approx(np.median(singles))
    assert (out["fc_corr_draw_min"], out["fc_corr_draw_max"]) == pytest.approx((min(singles), max(singles)))
    assert out["fc_corr"] > out["fc_corr_draw_max"]          # averaging 4 draws removes their own noise
    assert "fc_corr_draw_median" not in fc_compare(obs, mean)


def test_fc_plot_shows_the_median_draw(tmp_path):
    from tvbinv_hpc.inference import plots
    from tvbinv_hpc.inference.diagnostics import fc_compare

    rng = np.random.default_rng(1)
    obs = np.corrcoef(rng.normal(size=(6, 40)))
    draws = np.stack([np.corrcoef(rng.normal(size=(6, 40))) for _ in range(3)])
    st = fc_compare(obs, draws)
    iu = np.triu_indices(6, 1)
    rs = [np.corrcoef(obs[iu], d[iu])[0, 1] for d in draws]
    assert rs[st["fc_median_draw"]] == pytest.approx(np.median(rs))
    out = plots.fc_matrices(tmp_path / "fc.png", obs, draws.mean(0), draws[st["fc_median_draw"]], "one draw")
    assert out.is_file() and out.stat().st_size > 0
