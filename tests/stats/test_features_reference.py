"""Every registered feature against the loop/np.corrcoef reference of tests/stats/stats_reference.py."""
import numpy as np
import pytest
from stats_reference import (
    random_bold,
    ref_bold_fcd_for_sbi,
    ref_connectome,
    ref_eigenvalues,
    ref_fc_contrast,
    ref_fc_stats,
    ref_fc_structure,
    ref_fcd_stats,
    ref_homotopic,
    ref_region_stats,
    simulated_like_bold,
)

from tvbinv_hpc.stats import FEATURES, build_features
from tvbinv_hpc.stats.hemispheres import RegionInfo

HALVES = RegionInfo(stated="halves")   # index halves, as these synthetic regions are laid out

RTOL, ATOL = 1e-10, 1e-12

CASES = {"random": (60, 10), "simulated": (150, 76)}  # case -> (T, N); simulated-like at the seed's size


def _specs(N, L):
    left, right = list(range(0, N, 2)), list(range(1, N, 2))  # interleaved, explicit
    return [
        ({"name": "bold_fcd_for_sbi", "win_len": L, "win_sp": 1},
         lambda b: ref_bold_fcd_for_sbi(b, L, 1)),
        ({"name": "bold_fcd_for_sbi", "win_len": L // 2, "win_sp": 2, "label": "ex",
          "hemispheres": {"left": left, "right": right}},
         lambda b: ref_bold_fcd_for_sbi(b, L // 2, 2, left, right)),
        ({"name": "fc_stats", "stats": ["mean", "std", "var", "skew", "kurtosis"],
          "quantiles": [0.0, 0.05, 0.5, 0.975, 1.0]},
         lambda b: ref_fc_stats(b, ["mean", "std", "var", "skew", "kurtosis"], [0.0, 0.05, 0.5, 0.975, 1.0])),
        ({"name": "fcd_stats", "win_len": L, "win_sp": 2, "stats": ["mean", "std", "fluidity", "skew",
                                                                     "kurtosis"], "quantiles": [0.25]},
         lambda b: ref_fcd_stats(b, L, 2, True, 1, ["mean", "std", "fluidity", "skew", "kurtosis"], [0.25])),
        ({"name": "fcd_stats", "win_len": L, "include_last": False, "min_lag": L, "label": "ov"},
         lambda b: ref_fcd_stats(b, L, 1, False, L, ["mean", "fluidity", "skew", "kurtosis"],
                                 [0.1, 0.5, 0.9])),
        ({"name": "homotopic_fc"}, lambda b: ref_homotopic(b, range(N // 2), range(N // 2, N))),
        ({"name": "homotopic_fc", "hemispheres": {"left": left, "right": right}, "label": "ex"},
         lambda b: ref_homotopic(b, left, right)),
        ({"name": "fc_eigenvalues", "n": 4}, lambda b: ref_eigenvalues(b, 4)),
        ({"name": "bold_region_stats"}, lambda b: ref_region_stats(b, ["mean", "std"])),
        ({"name": "fc_structure"}, lambda b: ref_fc_structure(b, *ref_connectome(N))),
        ({"name": "fc_contrast", "hemispheres": {"left": left, "right": right}},
         lambda b: ref_fc_contrast(b, left, right)),
    ]


def regions(N):
    """Index halves, as these synthetic regions are laid out, and a connectome for fc_structure."""
    counts, lengths = ref_connectome(N)
    return RegionInfo(stated="halves", sc=counts, lengths=lengths)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_feature_matches_reference(case):
    T, N = CASES[case]
    L = 8 if N == 10 else 20
    bold = random_bold(2, T, N, seed=5) if case == "random" else simulated_like_bold(2, T, N, seed=7)
    specs = _specs(N, L)
    assert {s["name"] for s, _ in specs} == set(FEATURES)  # a new feature must get a reference here
    fs = build_features([s for s, _ in specs], regions=regions(N), n_regions=N, tr_ms=720.0)
    x = fs.compute(bold.astype(np.float64))
    assert x.shape == (2, len(fs.names)) and np.isfinite(x).all()
    for b in range(2):
        ref = np.concatenate([np.ravel(r(bold[b])) for _, r in specs])
        for name, got, want in zip(fs.names, x[b], ref):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{case} sim {b}: {name}")


def test_burn_in_cut_before_every_feature():
    bold = simulated_like_bold(2, 60, 8, seed=2)
    specs = [{"name": n} if n != "bold_fcd_for_sbi" else {"name": n, "win_len": 5} for n in FEATURES]
    specs = [dict(s, win_len=5) if s["name"] == "fcd_stats" else s for s in specs]
    cut = build_features(specs, regions=regions(8), n_regions=8, tr_ms=2000.0, burn_in=5000.0)  # 2.5 TR -> 3 samples
    assert cut.burn_in_samples == 3
    plain = build_features(specs, regions=regions(8), n_regions=8, tr_ms=2000.0)
    assert cut.min_samples == plain.min_samples + 3
    np.testing.assert_array_equal(cut.compute(bold), plain.compute(bold[:, 3:]))
    assert not np.allclose(cut.compute(bold), plain.compute(bold))


def test_window_in_seconds_equals_samples():
    bold = random_bold(2, 60, 8, seed=3)
    a = build_features([{"name": "bold_fcd_for_sbi", "win_len_s": 16.0, "win_sp_s": 2.0}], regions=HALVES, n_regions=8,
                       tr_ms=2000.0)
    b = build_features([{"name": "bold_fcd_for_sbi", "win_len": 8, "win_sp": 1}], regions=HALVES, n_regions=8,
                       tr_ms=2000.0)
    assert a.describe() == b.describe()
    assert a.describe()[0]["win_len"] == 8
    np.testing.assert_array_equal(a.compute(bold), b.compute(bold))
