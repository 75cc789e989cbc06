"""Issue 11 items 4-5: the prior predictive check before training (per feature and jointly), the
structural baselines r(FC, SC) and r(FC, log(1 + SC)), the FCD agreement, and their place in the report."""
from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from inference_problem import FEATURES, make_prior, simulate

from tvbinv_hpc.errors import InputError
from tvbinv_hpc.inference import diagnose, fcd_agreement, prior_predictive_check, sc_baselines
from tvbinv_hpc.inference.diagnostics import ks_distance
from tvbinv_hpc.inference.priorcheck import P_EDGE, P_OUTSIDE, ledoit_wolf, per_feature
from tvbinv_hpc.inference.report import baseline_verdict
from tvbinv_hpc.stats.hemispheres import RegionInfo

HALVES = RegionInfo(stated="halves")   # index halves, as these synthetic regions are laid out

NAMES = ["a", "b", "c", "d"]
SENTENCE = "the posterior would be an extrapolation: features"


@pytest.fixture(scope="module")
def cloud():
    """2000 simulations of 4 features: two independent normals, a heavy-tailed one, a skewed one."""
    rng = np.random.default_rng(11)
    n = 2000
    return np.column_stack([rng.standard_normal(n), rng.standard_normal(n), rng.standard_t(2, n),
                            rng.lognormal(0.0, 1.0, n)])


def test_observation_outside_the_cloud_is_flagged_per_feature_and_jointly(cloud):
    obs = np.array([0.0, 0.0, 0.0, 1.0])
    obs[1] = cloud[:, 1].max() + 3.0
    check = prior_predictive_check(cloud, obs, NAMES)
    assert check["verdict"] == "outside"
    assert check["outside_range"] == ["b"] and check["tail"] == []
    assert list(check["features"]["flag"]) == [0, 2, 0, 0]
    assert check["features"]["percentile"][1] == 100.0
    assert check["features"]["excess"][1] > 2.0      # 3 sd past the maximum of a normal feature
    assert SENTENCE + " b lie outside the simulated range" in check["message"]
    assert check["joint"]["p_value"] < P_OUTSIDE and check["joint"]["percentile"] > 99.0
    assert check["joint"]["top_contributors"][0] == "b"


def test_observation_inside_the_cloud_passes(cloud):
    obs = np.array([0.3, -0.4, 0.2, 1.5])
    check = prior_predictive_check(cloud, obs, NAMES)
    assert check["verdict"] == "inside", check["message"]
    assert check["outside_range"] == [] and not check["features"]["flag"].any()
    assert check["joint"]["p_value"] > 0.2
    assert "inside" in check["message"] and "extrapolation" not in check["message"]


def test_just_past_the_range_is_at_the_edge_with_few_simulations_and_outside_with_many():
    """A genuine draw lands past the extreme of n simulations with probability 2 / (n + 1) per feature:
    with 64 simulations a hair past the maximum is only "at the edge"; with 1000 it is "outside"."""
    rng = np.random.default_rng(13)
    few = rng.standard_normal((64, 2))
    obs = np.array([few[:, 0].max() + 0.01, 0.0])
    check = prior_predictive_check(few, obs, ["u", "w"])
    assert check["outside_range"] == ["u"] and check["extrapolated"] == []
    assert check["verdict"] == "at the edge" and "u lie just outside the simulated range" in check["message"]
    far = prior_predictive_check(few, obs + np.array([3.0, 0.0]), ["u", "w"])   # 3 sd past: a miss
    assert far["verdict"] == "outside" and far["extrapolated"] == ["u"]
    many = rng.standard_normal((1000, 2))
    check = prior_predictive_check(many, np.array([many[:, 0].max() + 0.01, 0.0]), ["u", "w"])
    assert check["verdict"] == "outside" and check["extrapolated"] == ["u"]
    assert SENTENCE + " u lie outside the simulated range" in check["message"]


def test_correlated_features_inside_one_by_one_outside_jointly():
    """FC mean and FC std style: two features that rise together. (1.5, -1.5) is inside the 1-99 % range
    of each, but no simulation has a high first feature with a low second one."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal(3000)
    x = np.column_stack([a, a + 0.2 * rng.standard_normal(3000), rng.standard_normal(3000)])
    obs = np.array([1.5, -1.5, 0.0])
    check = prior_predictive_check(x, obs, ["fc_mean", "fc_std", "other"])
    pct = check["features"]["percentile"]
    assert ((pct > 1) & (pct < 99)).all() and not check["features"]["flag"].any()
    assert check["verdict"] == "outside"
    assert check["joint"]["p_value"] < P_OUTSIDE
    assert "their combination lies outside the simulated cloud" in check["message"]
    assert set(check["joint"]["top_contributors"][:2]) == {"fc_mean", "fc_std"}
    # the same point along the correlation is unremarkable
    along = prior_predictive_check(x, np.array([1.5, 1.5, 0.0]), ["fc_mean", "fc_std", "other"])
    assert along["verdict"] == "inside" and along["joint"]["p_value"] > P_EDGE


def test_mid_rank_percentile_p_value_and_central_interval():
    x = np.array([[1.0], [2.0], [2.0], [3.0]])
    f = per_feature(x, np.array([2.0]))
    assert f["percentile"][0] == 50.0                   # (1 below + 2 equal / 2) / 4
    assert f["p_value"][0] == 1.0                       # 2 * min(3 + 1, 3 + 1) / 5, capped
    assert f["flag"][0] == 0 and f["excess"][0] == 0.0
    f = per_feature(x, np.array([3.5]))
    assert f["percentile"][0] == 100.0 and f["flag"][0] == 2
    assert f["p_value"][0] == pytest.approx(2 * 1 / 5)  # 2 * min(4 + 1, 0 + 1) / 5
    big = np.arange(1000.0)[:, None]
    f = per_feature(big, np.array([995.5]))             # inside [min, max], above the 99th percentile
    assert f["flag"][0] == 1 and f["percentile"][0] == pytest.approx(99.6)


def test_joint_p_value_is_calibrated_for_exchangeable_observations():
    """An observation that is one more simulation gets a uniform p: the "at the edge" verdict from the
    joint distance fires about P_EDGE of the time, not more."""
    rng = np.random.default_rng(8)
    p = []
    for _ in range(150):
        x = rng.standard_normal((201, 3)) @ np.array([[1.0, 0.8, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 1.0]])
        p.append(prior_predictive_check(x[1:], x[0], ["u", "v", "w"])["joint"]["p_value"])
    p = np.array(p)
    assert 0.3 < np.mean(p < 0.5) < 0.7
    assert np.mean(p < P_EDGE) < 0.12


def test_constant_and_non_finite_simulated_features():
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.standard_normal(500), np.full(500, 2.0), rng.standard_normal(500)])
    x[:7, 0] = np.nan
    same = prior_predictive_check(x, np.array([0.0, 2.0, 0.0]), ["u", "const", "w"])
    assert same["n_sims"] == 493 and same["n_excluded"] == 7
    assert same["verdict"] == "inside" and same["joint"]["n_features"] == 2
    assert same["features"]["percentile"][1] == 50.0
    off = prior_predictive_check(x, np.array([0.0, 2.5, 0.0]), ["u", "const", "w"])
    assert off["verdict"] == "outside" and off["outside_range"] == ["const"]
    with pytest.raises(InputError, match="do not match"):
        prior_predictive_check(x, np.zeros(2), ["u", "w"])
    with pytest.raises(InputError, match="NaN"):
        prior_predictive_check(x, np.array([np.nan, 2.0, 0.0]), ["u", "const", "w"])


def test_few_simulations_give_no_joint_distance_but_still_a_verdict():
    x = np.random.default_rng(0).standard_normal((12, 2))
    check = prior_predictive_check(x, np.array([0.0, 9.0]), ["u", "w"])
    assert not check["joint"]["computed"] and "12 finite simulations" in check["joint"]["reason"]
    assert check["verdict"] == "outside" and check["outside_range"] == ["w"]


def test_ledoit_wolf_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(2)
    z = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 6))
    _, cov, shrink = ledoit_wolf(z)
    ref_cov, ref_shrink = sk.ledoit_wolf(z)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-12)
    assert shrink == pytest.approx(ref_shrink) and 0 < shrink < 1


def _counts_sc(n: int = 10, seed: int = 1) -> np.ndarray:
    """Asymmetric streamline counts, smallest non-zero count 1, zero diagonal."""
    rng = np.random.default_rng(seed)
    c = np.floor(rng.lognormal(4.0, 2.0, (n, n)))
    c[rng.uniform(size=(n, n)) < 0.2] = 0
    c[0, 1] = 1.0
    np.fill_diagonal(c, 0)
    return c


def test_sc_baselines_on_a_known_example():
    counts = _counts_sc()
    sym = (counts + counts.T) / 2
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(sym.shape)
    fc = np.log1p(sym) + 0.3 * (noise + noise.T)
    iu = np.triu_indices(len(fc), 1)
    want_sc = np.corrcoef(fc[iu], sym[iu])[0, 1]
    want_log = np.corrcoef(fc[iu], np.log1p(sym)[iu])[0, 1]
    for w in (counts, counts / counts.max()):   # as loaded, or normalised by the max as the simulator does
        b = sc_baselines(fc, w)
        assert b["r_fc_sc"] == pytest.approx(want_sc, rel=1e-12)
        assert b["r_fc_logsc"] == pytest.approx(want_log, rel=1e-12)
    assert b["r_fc_logsc"] > b["r_fc_sc"]
    # an FC that is exactly log(1 + count) is predicted perfectly by the log baseline
    assert sc_baselines(np.log1p(sym), counts / counts.max())["r_fc_logsc"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="same size"):
        sc_baselines(fc, counts[:5, :5])


def test_baseline_verdict_in_words():
    assert "beats the structural baselines" in baseline_verdict(0.5, 0.25, 0.45)
    worse = baseline_verdict(0.3, 0.25, 0.45)
    assert "does not beat log(1 + SC) (r = 0.45)" in worse and "it beats SC" in worse
    assert "does not beat SC (r = 0.29) or log(1 + SC)" in baseline_verdict(0.21, 0.29, 0.4)
    assert "no posterior-predictive FC" in baseline_verdict(None, 0.25, 0.45)


def test_ks_distance_matches_scipy():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(6)
    a, b = np.round(rng.normal(size=300), 1), np.round(rng.normal(0.3, 1.2, size=450), 1)   # with ties
    assert ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)
    assert ks_distance(a, a) == 0.0


def test_fcd_agreement_separates_a_model_fcd_from_a_foreign_one():
    rng = np.random.default_rng(7)
    draws = [np.tanh(rng.normal(0.3, 0.2, 3000)) for _ in range(30)]
    same = fcd_agreement(np.tanh(rng.normal(0.3, 0.2, 3000)), draws)
    assert same["fcd_n_draws"] == 30 and same["fcd_ks_p"] > 0.1
    assert same["fcd_ks"] < same["fcd_ks_draws_q95"]
    other = fcd_agreement(np.tanh(rng.normal(0.5, 0.2, 3000)), draws)
    assert other["fcd_ks"] > 0.3 and other["fcd_ks_p"] == pytest.approx(1 / 31)
    assert other["fcd_obs_mean"] > other["fcd_pred_mean"]


def test_pipeline_warns_loudly_before_training(caplog, cloud):
    from tvbinv_hpc import pipeline

    s = SimpleNamespace(features=SimpleNamespace(names=NAMES))
    logger = logging.getLogger("tvbinv_hpc")
    old = logger.propagate
    logger.propagate = True  # the CLI turns it off; caplog listens on the root logger
    caplog.set_level(logging.INFO, logger="tvbinv_hpc")
    try:
        pipeline._prior_check(s, cloud, np.array([0.0, 0.0, 0.0, 1e3]))
        pipeline._prior_check(s, cloud, np.array([0.1, 0.0, 0.0, 1.0]))
    finally:
        logger.propagate = old
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "OUTSIDE" in warned[0].getMessage()
    assert SENTENCE + " d lie outside the simulated range" in warned[0].getMessage()
    assert any(r.levelno == logging.INFO and "inside" in r.getMessage() for r in caplog.records)


def test_fcd_window_follows_the_feature_set():
    from tvbinv_hpc import pipeline
    from tvbinv_hpc.stats import build_features

    def setup(specs):
        return SimpleNamespace(features=build_features(specs, regions=HALVES, n_regions=6, tr_ms=2000.0),
                               engine=SimpleNamespace(tr_ms=2000.0))

    w = pipeline.fcd_window(setup([{"name": "fc_stats"}, {"name": "fcd_stats", "win_len": 5, "min_lag": 3}]))
    assert (w["win_len"], w["win_sp"], w["include_last"], w["min_lag"], w["source"]) == (5, 1, True, 3, "fcd_stats")
    w = pipeline.fcd_window(setup([{"name": "bold_fcd_for_sbi", "win_len": 4, "hemispheres": "halves"}]))
    assert (w["win_len"], w["include_last"], w["min_lag"], w["source"]) == (4, False, 4, "bold_fcd_for_sbi")
    w = pipeline.fcd_window(setup([{"name": "fc_stats"}]))
    assert (w["win_len"], w["min_lag"], w["source"]) == (30, 30, "default")   # 60 s at TR 2 s


def test_fcd_values_are_the_feature_sets_fcd():
    from tvbinv_hpc import pipeline
    from tvbinv_hpc.stats import build_features

    specs = [{"name": "fcd_stats", "win_len": 5, "min_lag": 3, "stats": ["mean"], "quantiles": []}]
    s = SimpleNamespace(features=build_features(specs, regions=HALVES, n_regions=4, tr_ms=1000.0, burn_in=3000.0),
                        engine=SimpleNamespace(tr_ms=1000.0))
    bold = np.random.default_rng(9).standard_normal((2, 40, 4))
    vals = pipeline._fcd_values(s, bold)
    assert len(vals) == 2
    np.testing.assert_allclose([v.mean() for v in vals], s.features.compute(bold)[:, 0], rtol=1e-10)
    assert pipeline._fcd_values(s, bold[:, :9]) is None   # too short for two windows after the burn-in


@pytest.fixture(scope="module")
def reported(trained, problem, clean_cwd, tmp_path_factory):
    """diagnose() with an observation whose junk feature lies far outside the training simulations."""
    outdir = tmp_path_factory.mktemp("priorcheck")
    rng = np.random.default_rng(12)
    n_reg = 6
    counts = _counts_sc(n_reg, seed=4)
    sym = (counts + counts.T) / 2
    fc_obs = 0.05 * np.log1p(sym)   # an FC that the log(1 + SC) baseline predicts perfectly
    np.fill_diagonal(fc_obs, 1.0)
    x_obs = problem["x_obs"].copy()
    x_obs[3] = 12.0   # f_junk is N(0, 1) in the simulations

    def ppc_simulate(theta):
        fcd = [np.tanh(rng.normal(0.2, 0.1, 500)) for _ in theta]
        return simulate(theta, rng), np.corrcoef(rng.standard_normal((n_reg, 200))), fcd

    old = os.getcwd()
    os.chdir(clean_cwd)
    try:
        summary = diagnose(
            trained, x_obs=x_obs, theta_true=problem["theta_true"], theta_test=problem["theta_test"],
            x_test=problem["x_test"], prior_samples=make_prior().sample((500,)).numpy(), prior_std=None,
            settings={"num_samples": 200, "sbc_rows": 0, "ppc_draws": 12, "plots": False}, outdir=outdir,
            ppc_simulate=ppc_simulate, fc_obs=fc_obs, seed=2, log=lambda m: None, x_prior=problem["x"],
            sc=counts / counts.max(), fcd_obs=np.tanh(rng.normal(0.6, 0.1, 500)),
            fcd_window={"win_len": 5, "win_sp": 1, "include_last": True, "min_lag": 3, "source": "fcd_stats",
                        "tr_ms": 2000.0})
    finally:
        os.chdir(old)
    return {"summary": summary, "outdir": outdir, "fc_obs": fc_obs, "sc": counts}


def test_report_shows_the_prior_check_next_to_the_posterior(reported):
    report = (reported["outdir"] / "report.md").read_text()
    i_post, i_check = report.index("## Posterior ("), report.index("## Prior predictive check (1970 training")
    i_ppc = report.index("## Posterior predictive check (")
    assert i_post < i_check < i_ppc
    assert "**Verdict: outside.**" in report
    assert "The posterior would be an extrapolation: features f_junk lie outside the simulated range" in report
    assert "| feature | observed | sim q01 | sim q50 | sim q99 | percentile | flag |" in report
    junk = next(line for line in report.splitlines() if line.startswith("| f_junk |"))
    assert "**outside range**" in junk and "| 100 |" in junk
    for f in FEATURES[:3]:
        row = next(line for line in report.splitlines() if line.startswith(f"| {f} |"))
        assert "outside" not in row
    warnings = reported["summary"]["warnings"]
    assert warnings[0].startswith("prior predictive check: the posterior would be an extrapolation")


def test_report_shows_baselines_and_fcd_agreement(reported):
    s, report = reported["summary"], (reported["outdir"] / "report.md").read_text()
    b = s["baselines"]
    want = sc_baselines(reported["fc_obs"], reported["sc"])
    assert b["r_fc_sc"] == pytest.approx(want["r_fc_sc"]) and b["r_fc_logsc"] == pytest.approx(want["r_fc_logsc"])
    assert b["r_fc_logsc"] > 0.99   # the observed FC was built from log(1 + SC)
    assert b["fc_corr_posterior_predictive"] == s["ppc"]["fc_corr"] and b["beats_baselines"] is False
    assert "r(FC, SC) = " in report and "r(FC, log(1 + SC)) = " in report
    assert "In words: the posterior predictive (r = " in report and "does not beat" in report
    fcd = s["ppc"]["fcd"]
    assert fcd["fcd_n_draws"] == 12 and fcd["fcd_ks"] > 0.9 and fcd["fcd_ks_p"] == pytest.approx(1 / 13)
    assert fcd["beyond_draws"] is True   # judged on the draws' 95th percentile: p cannot go below 1 / 13
    assert "FCD agreement (windows of 5 samples = 10 s, step 1, window pairs at lag >= 3" in report
    assert "beyond what the model's own draws show" in report
    assert any("observed FCD distribution differs" in w for w in s["warnings"])


def test_prior_check_in_summary_json_and_netcdf(reported):
    out = reported["outdir"]
    saved = json.loads((out / "summary.json").read_text())["prior_check"]
    assert saved["verdict"] == "outside" and saved["outside_range"] == ["f_junk"]
    assert saved["features"]["f_junk"]["flag"] == "outside range" and saved["features"]["f_eta"]["flag"] == "ok"
    assert saved["joint"]["computed"] and saved["joint"]["p_value"] < P_OUTSIDE
    ds = xr.open_dataset(out / "posterior.nc", group="prior_check")
    assert list(ds["feature"].values) == FEATURES
    assert list(ds["flag"].values) == [0, 0, 0, 2] and ds["flag"].attrs["flag_meanings"].split()[2] == "outside_range"
    np.testing.assert_allclose(ds["percentile"].values, [saved["features"][f]["percentile"] for f in FEATURES])
    assert ds.attrs["verdict"] == "outside" and ds.attrs["joint_p_value"] < P_OUTSIDE
    obs = xr.open_dataset(out / "posterior.nc", group="observed_data")
    assert obs.attrs["r_fc_logsc"] == pytest.approx(reported["summary"]["baselines"]["r_fc_logsc"])
    pp = xr.open_dataset(out / "posterior.nc", group="posterior_predictive")
    assert pp.attrs["fcd_ks"] > 0.9 and pp.attrs["fcd_min_lag"] == 3
