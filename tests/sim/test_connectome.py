"""Connectome loading: tvb-data names, TVB zip, npz; normalisation, diagonal, delays, errors."""
from __future__ import annotations

import numpy as np
import pytest
import tvb.simulator.lab  # noqa: F401  (TVB's logger set-up at collection, see tests/sim/conftest.py)

from tvbinv_hpc.errors import ConfigError, InputError
from tvbinv_hpc.sim.connectome import idelays, load_connectome, tvb_data_path


def test_tvb_data_name_is_tvb_connectivity():
    from tvb.datatypes.connectivity import Connectivity
    c = load_connectome("connectivity_76", speed=3.0, normalize="none")
    ref = Connectivity.from_file("connectivity_76.zip")
    assert c.n_regions == 76 and len(c.region_labels) == 76
    assert np.array_equal(c.weights, ref.weights) and np.array_equal(c.tract_lengths, ref.tract_lengths)
    assert np.count_nonzero(np.diag(c.weights)) == 66 and c.weights.max() == 3.0
    ref.speed = np.r_[3.0]
    ref.configure()
    ref.set_idelays(0.01)
    assert np.array_equal(c.idelays(0.01), ref.idelays)
    assert c.idelays(0.01).max() == 5116


def test_normalise_and_zero_diagonal():
    c = load_connectome("connectivity_76", normalize="max", zero_diagonal=True)
    assert np.abs(c.weights).max() == 1.0 and np.count_nonzero(np.diag(c.weights)) == 0
    raw = load_connectome("connectivity_76", normalize="none")
    off = ~np.eye(76, dtype=bool)
    np.testing.assert_allclose(c.weights[off], raw.weights[off] / 3.0)


def test_zip_path_and_npz(tmp_path):
    path = tvb_data_path("connectivity_66")
    by_path = load_connectome(path, normalize="none")
    by_name = load_connectome("connectivity_66", normalize="none")
    assert np.array_equal(by_path.weights, by_name.weights)
    npz = tmp_path / "c.npz"
    np.savez(npz, weights=by_name.weights, tract_lengths=by_name.tract_lengths,
             region_labels=np.array(by_name.region_labels))
    c = load_connectome(str(npz), speed=2.0, normalize="none")
    assert np.array_equal(c.weights, by_name.weights) and c.region_labels == by_name.region_labels
    assert c.speed == 2.0
    np.savez(tmp_path / "nolabels.npz", weights=np.ones((3, 3)), tract_lengths=np.zeros((3, 3)))
    assert load_connectome(str(tmp_path / "nolabels.npz")).region_labels == ["region_0", "region_1", "region_2"]


def test_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.zip"):
        load_connectome(str(tmp_path / "missing.zip"))
    with pytest.raises(InputError, match="connectivity_77"):
        load_connectome("connectivity_77")
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.ones((3, 3)))
    with pytest.raises(InputError, match="bad.npz.*tract_lengths"):
        load_connectome(str(bad))
    shape = tmp_path / "shape.npz"
    np.savez(shape, weights=np.ones((3, 3)), tract_lengths=np.ones((2, 2)))
    with pytest.raises(InputError, match="shape.npz"):
        load_connectome(str(shape))
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.zip"):
        load_connectome(str(junk))
    with pytest.raises(ConfigError, match="connectome.normalize"):
        load_connectome("connectivity_76", normalize="sum")


def test_idelays_rounding():
    tl = np.array([[0.0, 1.49], [1.51, 3.0]])
    assert idelays(tl, 1.0, 1.0).tolist() == [[0, 1], [2, 3]]
    assert idelays(tl, np.inf, 0.1).tolist() == [[0, 0], [0, 0]]


# ---------------------------------------------------------------------------- lab formats and options
def _fibre_counts(n=10, seed=0):
    rng = np.random.default_rng(seed)
    w = np.floor(rng.lognormal(3, 2, (n, n))) * (rng.uniform(size=(n, n)) < 0.9)   # not symmetric
    tl = rng.uniform(10, 150, (n, n))
    return w, (tl + tl.T) / 2


def test_mat_weights_with_lengths_file(tmp_path):
    import scipy.io

    w, tl = _fibre_counts()
    scipy.io.savemat(tmp_path / "DTI_CM.mat", {"sc": w})
    scipy.io.savemat(tmp_path / "DTI_LEN.mat", {"len": tl})
    c = load_connectome(str(tmp_path / "DTI_CM.mat"), normalize="none", lengths=str(tmp_path / "DTI_LEN.mat"))
    np.testing.assert_array_equal(c.weights, w)
    np.testing.assert_array_equal(c.tract_lengths, tl)
    with pytest.raises(InputError, match="connectome.lengths"):
        load_connectome(str(tmp_path / "DTI_CM.mat"))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".npy"])
def test_text_and_npy_matrices(tmp_path, suffix):
    w, tl = _fibre_counts(6)
    for name, a in (("w", w), ("l", tl)):
        p = tmp_path / f"{name}{suffix}"
        if suffix == ".npy":
            np.save(p, a)
        else:
            np.savetxt(p, a, delimiter={".csv": ",", ".tsv": "\t", ".txt": " "}[suffix])
    c = load_connectome(str(tmp_path / f"w{suffix}"), normalize="none", lengths=str(tmp_path / f"l{suffix}"))
    np.testing.assert_allclose(c.weights, w)
    np.testing.assert_allclose(c.tract_lengths, tl)


def test_drop_symmetrize_log1p_threshold(tmp_path):
    w, tl = _fibre_counts(10)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "l.npy", tl)
    c = load_connectome(str(tmp_path / "w.npy"), normalize="log1p", lengths=str(tmp_path / "l.npy"),
                        drop=[2, 7], symmetrize="mean", zero_diagonal=True)
    kept = [0, 1, 3, 4, 5, 6, 8, 9]
    ws = (w[np.ix_(kept, kept)] + w[np.ix_(kept, kept)].T) / 2
    np.fill_diagonal(ws, 0)
    np.testing.assert_allclose(c.weights, np.log1p(ws) / np.log1p(ws).max())
    assert c.n_regions == 8 and c.source_regions == 10 and list(c.kept) == kept
    assert np.allclose(c.weights, c.weights.T)
    sq = load_connectome(str(tmp_path / "w.npy"), normalize="sqrt", lengths=str(tmp_path / "l.npy"))
    np.testing.assert_allclose(sq.weights, np.sqrt(w) / np.sqrt(w).max())
    t = load_connectome(str(tmp_path / "w.npy"), normalize="max", lengths=str(tmp_path / "l.npy"), threshold=0.2)
    assert np.abs(t.weights[t.weights != 0]).min() >= 0.2
    assert "the threshold kept" in t.describe()
    keep = load_connectome(str(tmp_path / "w.npy"), lengths=str(tmp_path / "l.npy"), keep=kept)
    np.testing.assert_array_equal(keep.kept, kept)
    with pytest.raises(ConfigError, match="connectome.drop"):
        load_connectome(str(tmp_path / "w.npy"), lengths=str(tmp_path / "l.npy"), drop=[10])
    with pytest.raises(ConfigError, match="non-negative"):
        np.save(tmp_path / "neg.npy", -w)
        load_connectome(str(tmp_path / "neg.npy"), normalize="log1p", lengths=str(tmp_path / "l.npy"))


def test_bold_is_cut_like_the_connectome(tmp_path):
    w, tl = _fibre_counts(10)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "l.npy", tl)
    c = load_connectome(str(tmp_path / "w.npy"), lengths=str(tmp_path / "l.npy"), drop=[0, 5])
    bold = np.arange(30.0).reshape(3, 10)
    np.testing.assert_array_equal(c.select_regions(bold, 1, "b"), bold[:, [1, 2, 3, 4, 6, 7, 8, 9]])
    np.testing.assert_array_equal(c.select_regions(bold[:, :8], 1, "b"), bold[:, :8])   # already cut
    with pytest.raises(InputError, match="9 regions, but the connectome has 8 or the source's 10"):
        c.select_regions(bold[:, :9], 1, "b")


def test_labels_file_feeds_the_hemisphere_pairing(tmp_path):
    from tvbinv_hpc.stats.hemispheres import resolve

    w, tl = _fibre_counts(6)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "l.npy", tl)
    (tmp_path / "labels.txt").write_text("\n".join(["A_L", "A_R", "B_L", "B_R", "C_L", "C_R"]))
    c = load_connectome(str(tmp_path / "w.npy"), lengths=str(tmp_path / "l.npy"),
                        labels=str(tmp_path / "labels.txt"), drop=[2, 3])
    assert c.region_labels == ["A_L", "A_R", "C_L", "C_R"]
    h = resolve("auto", 4, c.regions)
    assert h.left.tolist() == [0, 2] and h.right.tolist() == [1, 3]


def test_group_connectome_is_the_mean(tmp_path):
    subjects = [_fibre_counts(6, seed) for seed in range(3)]
    for i, (w, tl) in enumerate(subjects):
        tl = np.where(np.arange(36).reshape(6, 6) % (i + 2) == 0, 0.0, tl)   # a tract some subjects lack
        subjects[i] = (w, tl)
        np.save(tmp_path / f"w{i}.npy", w)
        np.save(tmp_path / f"l{i}.npy", tl)
    c = load_connectome([str(tmp_path / f"w{i}.npy") for i in range(3)], normalize="none",
                        lengths=[str(tmp_path / f"l{i}.npy") for i in range(3)])
    np.testing.assert_allclose(c.weights, np.mean([w for w, _ in subjects], axis=0))
    tls = np.array([tl for _, tl in subjects])
    expected = np.where((tls > 0).any(0), tls.sum(0) / np.maximum((tls > 0).sum(0), 1), 0.0)
    np.testing.assert_allclose(c.tract_lengths, expected)
    with pytest.raises(ConfigError, match="connectome.lengths"):
        load_connectome([str(tmp_path / "w0.npy"), str(tmp_path / "w1.npy")], lengths=str(tmp_path / "l0.npy"))


def test_homotopic_weight_is_added_to_the_pairs_only(tmp_path):
    w, tl = _fibre_counts(6)
    w[0, 1] = w[1, 0] = 0.0           # a homotopic pair without fibres: weight added, length filled
    tl[0, 1] = tl[1, 0] = 0.0
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "l.npy", tl)
    opts = dict(lengths=str(tmp_path / "l.npy"), symmetrize="mean", normalize="sqrt", zero_diagonal=True)
    base = load_connectome(str(tmp_path / "w.npy"), hemispheres="interleaved", **opts)
    boosted = load_connectome(str(tmp_path / "w.npy"), hemispheres="interleaved", homotopic=0.25, **opts)
    pairs = np.zeros((6, 6), bool)
    for left in (0, 2, 4):
        pairs[left, left + 1] = pairs[left + 1, left] = True
    np.testing.assert_allclose(boosted.weights[pairs], base.weights[pairs] + 0.25)
    np.testing.assert_array_equal(boosted.weights[~pairs], base.weights[~pairs])
    assert boosted.tract_lengths[0, 1] == np.median([tl[2, 3], tl[4, 5]]) and boosted.tract_lengths[0, 1] > 0
    np.testing.assert_array_equal(boosted.baseline_sc, base.baseline_sc)   # baselines: the SC as measured
    assert "0.25 added to 3 homotopic pairs" in boosted.describe()
    with pytest.raises(ConfigError, match="connectome.homotopic.*cannot tell left from right"):
        load_connectome(str(tmp_path / "w.npy"), homotopic=0.25, **opts)
