"""The store's row access at scale: chunked creation, theta read without HDF5, selected rows only."""
import numpy as np
import pytest

from tvbinv_hpc.errors import TvbinvError
from tvbinv_hpc.parallel import store


def _layout(theta, n, d=3):
    return store.Layout(
        theta=theta, split=(np.arange(n) % 4 == 0).astype(np.int8), param_names=[f"p{j}" for j in range(d)],
        feature_names=["f0", "f1"], n_regions=2, n_bold=3, tr_ms=2000.0, save_bold=False, config_text="",
        config_hash="h", store_view={}, meta={})


def _rows(a, b, d=3):
    return np.arange(a, b, dtype=float)[:, None] * 10.0 + np.arange(d)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(store, "CHUNK_ROWS", 64)  # several chunks, with a short last one


def test_theta_from_a_function_is_written_chunk_by_chunk(tmp_path):
    calls = []

    def theta(a, b):
        calls.append((a, b))
        return _rows(a, b)

    store.create(tmp_path / "s.h5", _layout(theta, 200))
    assert calls == [(0, 64), (64, 128), (128, 192), (192, 200)]
    with store._h5py().File(tmp_path / "s.h5", "r") as f:
        assert np.array_equal(f["theta"][...], _rows(0, 200))
    with pytest.raises(TvbinvError, match="theta rows 0:64 have shape"):
        store.create(tmp_path / "bad.h5", _layout(lambda a, b: _rows(a, b)[:, :2], 200))
    assert not (tmp_path / "bad.h5").exists()


def test_theta_reader_matches_hdf5_in_any_order(tmp_path):
    path = tmp_path / "s.h5"
    store.create(path, _layout(_rows(0, 200), 200))
    reader = store.ThetaReader(path, *store.theta_location(path))
    rows = np.array([199, 3, 4, 5, 100, 0, 7, 6])
    assert np.array_equal(reader.read(rows), _rows(0, 200)[rows])
    assert reader.read(np.empty(0, np.int64)).shape == (0, 3)
    with pytest.raises(IndexError):
        reader.read(np.array([200]))
    reader.close()


def test_read_rows_selects_without_loading_the_rest(tmp_path):
    path = tmp_path / "s.h5"
    store.create(path, _layout(_rows(0, 200), 200))
    with store._h5py().File(path, "r+") as f:
        f["x"][...] = np.arange(400.0).reshape(200, 2)
        f["status"][::3] = store.OK
    got = store.read_rows(path, split=store.TRAIN, ok_only=True, dtype=np.float32)
    want = np.flatnonzero((np.arange(200) % 3 == 0) & (np.arange(200) % 4 != 0))
    assert np.array_equal(got["index"], want)
    assert got["theta"].dtype == np.float32 and got["x"].dtype == np.float32
    assert np.array_equal(got["theta"], _rows(0, 200)[want].astype(np.float32))
    assert np.array_equal(got["x"], np.arange(400.0).reshape(200, 2)[want].astype(np.float32))


def test_inspect_writes_a_per_region_vector_as_one_entry(tmp_path):
    from tvbinv_hpc.cli.inspect import compact_names, inspect_text

    names = ["coupling.a"] + [f"model.eta[{i}]" for i in range(79)] + ["x[0]", "x[2]"]
    assert compact_names(names) == ["coupling.a", "model.eta[0..78]", "x[0]", "x[2]"]
    path = tmp_path / "s.h5"
    store.create(path, _layout(_rows(0, 10), 10))
    text = inspect_text(path, show_config=False)
    assert "/theta    (10, 3)                float64  prior parameter values" in text
    assert "/sessions/ (0 entries)" in text and "parameters (3): p0, p1, p2" in text
