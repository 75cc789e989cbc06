"""Registry, config validation, batch invariance, NaN isolation and empirical-BOLD checks."""
import numpy as np
import pytest
from stats_reference import random_bold, simulated_like_bold

from tvbinv_hpc.bench.features import bench_features
from tvbinv_hpc.errors import ConfigError, InputError
from tvbinv_hpc.stats import DEFAULT_FEATURES, FEATURES, FeatureSet, build_features, feature_defaults
from tvbinv_hpc.stats.hemispheres import RegionInfo

HALVES = RegionInfo(stated="halves")   # index halves, as these synthetic regions are laid out

ALL = [{"name": "bold_fcd_for_sbi", "win_len": 6}, {"name": "fc_stats"},
       {"name": "fcd_stats", "win_len": 6, "win_sp": 2}, {"name": "homotopic_fc"},
       {"name": "fc_eigenvalues"}, {"name": "bold_region_stats"}]


def build(specs=ALL, n=8, **kw):
    return build_features(specs, regions=HALVES, n_regions=n, tr_ms=kw.pop("tr_ms", 2000.0), **kw)


def test_defaults_build_for_76_regions_and_150_trs():
    fs = build_features(DEFAULT_FEATURES, regions=HALVES, n_regions=76, tr_ms=2000.0)
    assert isinstance(fs, FeatureSet)
    assert fs.min_samples <= 150
    assert len(fs.names) == len(set(fs.names)) == len(fs)
    assert fs.names[:5] == ["HOMO_FC", "FCD_STACK_STD_INTER_TENS", "FCD_SUBJ_DIFF_VAR_OV_TENS", "FC_SUM",
                            "FCD_SUM"]
    x = fs.compute(simulated_like_bold(2, 150, 76).astype(np.float32))
    assert x.dtype == np.float64 and x.shape == (2, len(fs)) and np.isfinite(x).all()


def test_feature_defaults_and_docs():
    d = feature_defaults()
    assert set(d) == set(FEATURES)
    for name, params in d.items():
        assert FEATURES[name].__doc__
        for p in params.values():
            assert set(p) == {"default", "doc"} and p["doc"] and p["default"] is not None
        sc = np.abs(np.random.default_rng(0).normal(size=(76, 76)))   # fc_structure needs a connectome
        fs = build_features([{"name": name, **{k: v["default"] for k, v in params.items()}}],
                            regions=RegionInfo(stated="halves", sc=sc, lengths=sc + 1), n_regions=76,
                            tr_ms=2000.0)  # the defaults are valid values
        assert fs.describe()[0]["name"] == name


def test_describe_fills_defaults_and_round_trips():
    fs = build(ALL)
    desc = fs.describe()
    assert desc[0] == {"name": "bold_fcd_for_sbi", "win_len": 6, "win_sp": 1, "hemispheres": "auto",
                       "label": ""}
    again = build(desc)
    assert again.names == fs.names and again.describe() == desc
    bold = random_bold(2, 40, 8)
    np.testing.assert_array_equal(again.compute(bold), fs.compute(bold))


def test_names_are_stable_and_ordered():
    fs = build([{"name": "fc_stats", "stats": ["std", "mean"], "quantiles": [0.9, 0.05]},
                {"name": "fc_eigenvalues", "n": 2}, {"name": "bold_region_stats", "stats": ["std"]}], n=3)
    assert fs.names == ["fc_std", "fc_mean", "fc_q90", "fc_q5", "fc_eig1", "fc_eig2", "bold_std_0",
                        "bold_std_1", "bold_std_2"]
    bold = random_bold(1, 30, 3)[0]
    x = fs.compute_empirical(bold)
    v = np.corrcoef(bold.T)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(x[:4], [v.std(), v.mean(), np.quantile(v, 0.9), np.quantile(v, 0.05)],
                               rtol=1e-12)


@pytest.mark.parametrize("specs,key,match", [
    ([{"name": "nope"}], "features[0].name", "unknown feature"),
    ([{"win_len": 3}], "features[0].name", "unknown feature"),
    ([{"name": ["fc_stats"]}], "features[0].name", "unknown feature"),
    (["fc_stats"], "features[0]", "table"),
    ([{"name": "fc_stats"}, {"name": "fcd_stats", "windw": 3}], "features[1].windw", "unknown parameter"),
    ([{"name": "fc_stats", "win_len_s": 3.0}], "features[0].win_len_s", "unknown parameter"),
    ([{"name": "bold_fcd_for_sbi", "win_len": 1}], "features[0].win_len", ">= 2"),
    ([{"name": "bold_fcd_for_sbi", "win_len": 2.5}], "features[0].win_len", "integer"),
    ([{"name": "bold_fcd_for_sbi", "win_sp": True}], "features[0].win_sp", "integer"),
    ([{"name": "bold_fcd_for_sbi", "win_len_s": 3.0}], "features[0].win_len_s", "whole number of TRs"),
    ([{"name": "bold_fcd_for_sbi", "win_len": 4, "win_len_s": 8.0}], "features[0].win_len_s", "not both"),
    ([{"name": "homotopic_fc", "hemispheres": "left-first"}], "features[0].hemispheres", "halves"),
    ([{"name": "homotopic_fc", "hemispheres": {"left": [0, 1], "right": [2]}}], "features[0].hemispheres",
     "pair up"),
    ([{"name": "homotopic_fc", "hemispheres": {"left": [0, 1], "right": [2, 8]}}],
     "features[0].hemispheres", "outside"),
    ([{"name": "homotopic_fc", "hemispheres": {"left": [0, 1], "right": [1, 2]}}],
     "features[0].hemispheres", "twice"),
    ([{"name": "fc_stats", "quantiles": [0.5, 1.5]}], "features[0].quantiles", r"\[0, 1\]"),
    ([{"name": "fc_stats", "stats": ["mean", "median"]}], "features[0].stats", "median"),
    ([{"name": "fcd_stats", "include_last": "yes"}], "features[0].include_last", "true or false"),
    ([{"name": "fc_eigenvalues", "n": 9}], "features[0].n", "9 eigenvalues"),
    ([{"name": "fc_stats"}, {"name": "fc_stats"}], "features[1].label", "distinct label"),
    ([{"name": "fc_stats", "label": "a b"}], "features[0].label", "letters"),
    ([], "features", "non-empty"),
])
def test_config_errors_name_the_key(specs, key, match):
    with pytest.raises(ConfigError, match=match) as e:
        build(specs)
    assert e.value.key == key


def test_config_errors_odd_regions_and_burn_in():
    with pytest.raises(ConfigError, match="even number") as e:
        build([{"name": "fc_stats"}, {"name": "homotopic_fc"}], n=7)
    assert e.value.key == "features[1].hemispheres"  # the default 'halves' is checked too
    build([{"name": "homotopic_fc", "hemispheres": {"left": [0, 1, 2], "right": [3, 4, 5]}}], n=7)
    with pytest.raises(ConfigError) as e:
        build([{"name": "fc_stats"}], burn_in=-1.0)
    assert e.value.key == "burn_in"
    fs = build([{"name": "fc_stats"}], burn_in=np.float32(3000.0), tr_ms=np.float32(2000.0))
    assert fs.burn_in_samples == 2  # 1.5 TR rounds up


def test_label_allows_a_feature_twice():
    fs = build([{"name": "fcd_stats", "win_len": 4, "label": "short"},
                {"name": "fcd_stats", "win_len": 8, "label": "long"}])
    assert fs.names[0] == "short_fcd_mean" and "long_fcd_mean" in fs.names


def test_batch_invariance():
    bold = simulated_like_bold(5, 50, 8, seed=11).astype(np.float32)
    fs = build(ALL)
    x = fs.compute(bold)
    for b in range(5):
        np.testing.assert_array_equal(x[b], fs.compute(bold[b:b + 1])[0])
    np.testing.assert_array_equal(x[[3, 1]], fs.compute(bold[[3, 1]]))
    np.testing.assert_array_equal(x[2], fs.compute_empirical(bold[2]))


def test_failing_simulation_marks_its_row_only():
    bold = random_bold(6, 40, 8, seed=4)
    good = build(ALL).compute(bold)
    bad = bold.copy()
    bad[1, 7, 3] = np.nan
    bad[2, 0, 0] = np.inf
    bad[3, :, 5] = 1.5            # constant region: FC undefined
    bad[4, 10:20, 2] = -0.2       # constant inside some windows only: FCD undefined
    x = build(ALL).compute(bad)
    assert np.isnan(x[1:5]).all()
    np.testing.assert_array_equal(x[[0, 5]], good[[0, 5]])
    assert np.isnan(build(ALL).compute(np.full((2, 40, 8), np.nan))).all()


def test_compute_rejects_wrong_shapes():
    fs = build(ALL)
    with pytest.raises(ValueError, match="compute_empirical"):
        fs.compute(random_bold(1, 40, 8)[0])
    with pytest.raises(ValueError, match="regions"):
        fs.compute(random_bold(1, 40, 9))
    with pytest.raises(ValueError, match="samples"):
        fs.compute(random_bold(1, fs.min_samples - 1, 8))


def test_empirical_matches_batch_path():
    fs = build(ALL, burn_in=4000.0)
    bold = simulated_like_bold(1, 50, 8, seed=9)[0]
    np.testing.assert_array_equal(fs.compute_empirical(bold), fs.compute(bold[None])[0])


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b[None], "2-D"),
    (lambda b: b[:, :7], "7 regions"),
    (lambda b: b[:10], "need at least"),
    (lambda b: np.where(np.arange(8) == 6, np.nan, b), r"NaN/inf in region\(s\) \[6\]"),
    (lambda b: np.where(np.arange(8) == 2, 0.5, b), r"constant in region\(s\) \[2\]"),
    (lambda b: np.where((np.arange(8) == 1) & (np.arange(len(b))[:, None] < 12), 0.3, b),
     r"features \['FCD_STACK_STD_INTER_TENS'.* are NaN for this empirical BOLD"),
    (lambda b: np.array([["a"] * 8] * len(b)), "numeric"),
])
def test_empirical_checks_raise_input_error(mutate, match):
    fs = build(ALL)
    bold = random_bold(1, 40, 8)[0]
    with pytest.raises(InputError, match=match):
        fs.compute_empirical(mutate(bold))


def test_empirical_transposed_input_gets_a_hint():
    fs = build([{"name": "fc_stats"}], n=40)
    with pytest.raises(InputError, match="transpose"):
        fs.compute_empirical(random_bold(1, 50, 40)[0].T)


def test_bench_runs_and_reports_seconds():
    r = bench_features(B=2, T=60, N=8, repeat=1)
    assert r["k"] == len(build_features(DEFAULT_FEATURES, regions=HALVES, n_regions=8, tr_ms=2000.0).names)
    assert all(r[k] > 0 for k in ("fc_s", "fcd_s", "features_s", "per_sim_ms"))


@pytest.mark.parametrize("T, win_len, win_sp, include_last, min_lag",
                         [(42, 20, 1, False, 20), (42, 20, 1, False, 10), (150, 20, 1, False, 20),
                          (61, 6, 2, True, 3), (30, 6, 4, False, 1)])
def test_fcd_stats_counts_the_values_its_statistics_see(T, win_len, win_sp, include_last, min_lag):
    from tvbinv_hpc.stats.fc import triu_values

    spec = {"name": "fcd_stats", "win_len": win_len, "win_sp": win_sp, "include_last": include_last,
            "min_lag": min_lag}
    fs = build([spec])
    (feat,) = fs.features
    from tvbinv_hpc.stats.fcd import window_starts

    n_win = len(window_starts(T, win_len, win_sp, include_last))
    F = np.zeros((1, n_win, n_win))
    assert feat.n_pairs(T) == triu_values(F, min_lag).shape[-1]
    assert bool(fs.warnings(T)) == (feat.n_pairs(T) < 20)


def test_quickstart_like_fcd_stats_are_warned():
    fs = build([{"name": "fcd_stats", "win_len": 20, "win_sp": 1, "include_last": False, "min_lag": 20}])
    (msg,) = fs.warnings(42)
    assert "only 3 window pairs" in msg and "-1.5 whatever the data" in msg
    assert fs.warnings(42 + 60) == []
