"""Connectome loading: tvb-data names, TVB zip, npz; normalisation, diagonal, delays, errors."""
from __future__ import annotations

import numpy as np
import pytest
import tvb.simulator.lab  # noqa: F401  (TVB's logger set-up at collection, see tests/sim/conftest.py)

from tvbinv_hpc.connectome import idelays, load_connectome, tvb_data_path
from tvbinv_hpc.errors import ConfigError, InputError


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
