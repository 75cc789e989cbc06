"""Per-region priors at scale: a coupling and 20 regional eta (21 parameters, beyond MAX_TABLE_PARAMS).

Only regions 0-4 are informed by their features (x = eta + noise); the other 15 features are noise. The
report must list the coupling in full and summarise the 20 eta (not 20 rows, not 20 warnings), name the
informed regions as the best constrained, cap the pair plot and plot every region against its index; the
netCDF keeps all 21 columns.
"""
import json
import os
import struct

import numpy as np
import pytest
import torch
import xarray as xr

from tvbinv_hpc.inference import diagnose, plots, train_posterior, vectors

N, INFORMED = 20, 5
PARAMS = ["coupling.a"] + [f"model.eta[{i}]" for i in range(N)]
FEATURES = ["fc_mean"] + [f"bold_mean_{i}" for i in range(N)]
NET = {"density_estimator": "maf", "hidden_features": 32, "num_transforms": 2, "max_epochs": 200,
       "learning_rate": 3e-3, "batch_size": 64,
       "threads": 1, "seed": 3}
SETTINGS = {"num_samples": 500, "sbc_rows": 30, "sbc_samples": 100, "coverage": "expected", "ppc_draws": 10}


def _simulate(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    theta = np.atleast_2d(theta)
    x = rng.standard_normal(theta.shape)          # uninformed regions: pure noise
    x[:, : 1 + INFORMED] = theta[:, : 1 + INFORMED] + 0.03 * x[:, : 1 + INFORMED]
    return x


def _png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def regional(clean_cwd, tmp_path_factory):
    from sbi.utils import BoxUniform

    rng = np.random.default_rng(7)
    theta = rng.uniform(0, 1, (1200, len(PARAMS)))
    truth = rng.uniform(0.2, 0.8, len(PARAMS))
    old = os.getcwd()
    os.chdir(clean_cwd)
    try:
        trained = train_posterior(theta, _simulate(theta, rng), BoxUniform(torch.zeros(len(PARAMS)),
                                                                           torch.ones(len(PARAMS))),
                                  dict(NET), param_names=PARAMS, feature_names=FEATURES,
                                  prior_spec={"kind": "box", "low": [0] * len(PARAMS), "high": [1] * len(PARAMS)},
                                  meta={"config_hash": "regions", "seed": 3}, log=lambda m: None)
        theta_test = rng.uniform(0, 1, (40, len(PARAMS)))
        outdir = tmp_path_factory.mktemp("regions")
        summary = diagnose(trained, x_obs=_simulate(truth, rng)[0], theta_true=truth, theta_test=theta_test,
                           x_test=_simulate(theta_test, rng), prior_samples=rng.uniform(0, 1, (1000, len(PARAMS))),
                           prior_std=np.full(len(PARAMS), 1 / np.sqrt(12)), settings=SETTINGS, outdir=outdir,
                           ppc_simulate=lambda th: _simulate(th, rng), seed=1, log=lambda m: None)
    finally:
        os.chdir(old)
    return {"summary": summary, "outdir": outdir, "truth": truth}


def test_params_and_features_split_by_region():
    scalars, vecs = vectors.split_params(["a", "e[10]", "e[2]", "b", "c[0]"])
    assert scalars == [0, 3] and vecs == {"e": [2, 1], "c": [4]}
    assert vectors.summarised(["a", "e[0]", "e[1]"]) == {}   # few parameters: every one in the table
    assert list(vectors.summarised(PARAMS)) == ["model.eta"]
    assert vectors.split_features(FEATURES + ["fc_eig1", "fc_eig2"]) == ([0, 21, 22], {"bold_mean": list(range(1, 21))})
    cols, note = vectors.plotted_params(PARAMS, np.linspace(0, 1, len(PARAMS)), plots.MAX_PAIR_PARAMS)
    assert cols == [0, 20, 19, 18, 17] and "4 of 20 per-region" in note


def test_report_summarises_the_regions(regional):
    s = regional["summary"]
    assert len(s["parameters"]) == len(PARAMS)                      # the JSON keeps every region
    v = s["vectors"]["model.eta"]
    assert v["n_regions"] == N and {r["region"] for r in v["top"]} == set(range(INFORMED))
    assert v["shrinkage_max"] > 0.5, v
    assert 0 <= v["covered_90"] <= 1 and v["test"]["n_sbc_fail"] >= 0
    report = (regional["outdir"] / "report.md").read_text()
    assert "| coupling.a |" in report and "### Per-region parameters" in report
    assert "**model.eta** (20 regions" in report and "model.eta (20 regions: median" in report
    assert "| model.eta[" not in report                              # no row per region in any table
    assert not [w for w in s["warnings"] if w.startswith("model.eta[")]


def test_one_warning_per_vector_not_per_region():
    names = ["g"] + [f"v[{i}]" for i in range(14)]
    per = {p: {"shrinkage": 0.05, "q05": 0.0, "q50": 0.5, "q95": 1.0, "true": 0.5, "zscore": 0.1} for p in names}
    per["v[3]"].update(shrinkage=0.8, true=2.0, zscore=4.0)
    test = {"sbc_ks_pvals": {p: 0.5 for p in names}, "shrinkage_mean": {p: 0.1 for p in names},
            "zscore_median": {p: -0.2 for p in names}}
    test["sbc_ks_pvals"]["v[5]"] = 1e-6
    v = vectors.vector_summaries(per, names, test)["v"]
    assert v["top"][0]["region"] == 3 and v["n_low_shrinkage"] == 13 and v["covered_90"] == 13 / 14
    assert (v["n_abs_zscore_gt_3"], v["test"]["n_sbc_fail"], v["test"]["abs_zscore_median"]) == (1, 1, 0.2)
    w = vectors.vector_warnings({"v": v})
    assert w == ["v: in 1 of 14 regions the true value is > 3 posterior std from the mean",
                 "v: 13 of 14 regions have shrinkage < 0.1: the data barely constrain them (median shrinkage 0.05)",
                 "v: SBC ranks not uniform in 1 of 14 regions (KS p < 0.0033): miscalibrated"]


def test_plots_scale_and_netcdf_keeps_every_region(regional):
    out = regional["outdir"]
    for f in ("marginals.png", "pairs.png", "regions_model_eta.png", "sbc_ranks.png", "shrinkage_zscore.png",
              "ppc_features.png", "ppc_regions.png", "coverage.png"):
        assert (out / f).is_file(), f
    # coupling + 4 regions: a 5 x 5 corner plot (2.2 in per panel at 90 dpi), not 21 x 21
    assert max(_png_size(out / "pairs.png")) <= 5 * 2.2 * 90 + 1
    assert max(_png_size(out / "marginals.png")) < 1000 and max(_png_size(out / "sbc_ranks.png")) < 1000
    assert "regions_model_eta.png" in regional["summary"]["files"]
    post = xr.open_dataset(out / "posterior.nc", group="posterior")
    diag = xr.open_dataset(out / "posterior.nc", group="diagnostics")
    assert list(post["param"].values) == PARAMS and diag["sbc_rank"].shape[1] == len(PARAMS)
    s = json.loads((out / "summary.json").read_text())
    assert set(s["parameters"]) == set(PARAMS)


def test_prior_check_table_gives_a_region_set_one_row():
    from tvbinv_hpc.inference import priorcheck

    names = ["fc_mean"] + [f"bold_mean_{i}" for i in range(60)]
    x_sim = np.random.default_rng(0).standard_normal((300, len(names)))
    x_obs = np.zeros(len(names))
    x_obs[8] = 10.0                                   # bold_mean_7 far outside the simulations
    lines = priorcheck.report_lines(priorcheck.to_summary(priorcheck.prior_predictive_check(x_sim, x_obs, names)))
    rows = [ln for ln in lines if ln.startswith("| ")]
    assert any(r.startswith("| bold_mean_7 |") for r in rows) and any(r.startswith("| fc_mean |") for r in rows)
    assert not any(r.startswith("| bold_mean_3 |") for r in rows)
    assert any(r.startswith("| bold_mean_* (60 regions") and "1 flagged" in r for r in rows)
