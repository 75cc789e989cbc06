import numpy as np
import pytest
import xarray as xr

from tvbinv_hpc.errors import InputError
from tvbinv_hpc.inference import load_empirical_bold

T, N = 120, 6


def _bold(seed=0):
    return np.random.default_rng(seed).standard_normal((T, N))


def _nc(path, data, dims=("time", "region"), attrs=None, coords=None, name="bold", extra=None):
    ds = xr.Dataset({name: (dims, data), **(extra or {})}, coords=coords or {}, attrs=attrs or {})
    ds.to_netcdf(path, engine="netcdf4")
    return path


def test_netcdf_with_tr_in_seconds(tmp_path):
    data = _bold()
    out = load_empirical_bold(_nc(tmp_path / "b.nc", data, attrs={"tr": 2.0}), n_regions=N, tr_ms=2000.0)
    assert out.dtype == np.float64 and out.shape == (T, N)
    np.testing.assert_array_equal(out, data)


def test_netcdf_region_by_time_is_transposed(tmp_path):
    data = _bold()
    path = _nc(tmp_path / "b.nc", data.T, dims=("roi", "volume"))
    np.testing.assert_array_equal(load_empirical_bold(path, n_regions=N, tr_ms=720.0), data)


def test_tr_from_time_coordinate(tmp_path):
    data = _bold()
    t = xr.Variable("time", np.arange(T) * 720.0, attrs={"units": "ms"})
    path = _nc(tmp_path / "b.nc", data, coords={"time": t})
    assert load_empirical_bold(path, n_regions=N, tr_ms=720.0).shape == (T, N)
    with pytest.raises(InputError, match=r"sample period mismatch: .*720 ms.*2000 ms"):
        load_empirical_bold(path, n_regions=N, tr_ms=2000.0)


def test_tr_attribute_mismatch(tmp_path):
    path = _nc(tmp_path / "b.nc", _bold(), attrs={"tr_ms": 1000.0})
    with pytest.raises(InputError, match="sample period mismatch"):
        load_empirical_bold(path, n_regions=N, tr_ms=2000.0)


def test_choosing_among_several_variables(tmp_path):
    data = _bold()
    path = _nc(tmp_path / "b.nc", data, name="signal", extra={"other": (("time", "region"), _bold(1))})
    with pytest.raises(InputError, match="several 2-d variables"):
        load_empirical_bold(path, n_regions=N, tr_ms=2000.0)
    np.testing.assert_array_equal(
        load_empirical_bold(path, n_regions=N, tr_ms=2000.0, variable="signal"), data
    )
    with pytest.raises(InputError, match="no variable 'nope'"):
        load_empirical_bold(path, n_regions=N, tr_ms=2000.0, variable="nope")


def test_npy(tmp_path):
    data = _bold()
    np.save(tmp_path / "b.npy", data.astype(np.float32))
    out = load_empirical_bold(tmp_path / "b.npy", n_regions=N, tr_ms=2000.0)
    assert out.dtype == np.float64 and out.shape == (T, N)


def test_wrong_region_count(tmp_path):
    path = _nc(tmp_path / "b.nc", _bold())
    with pytest.raises(InputError, match="6 regions, but the connectome has 68"):
        load_empirical_bold(path, n_regions=68, tr_ms=2000.0)


def test_nan_values(tmp_path):
    data = _bold()
    data[7, 2] = np.nan
    np.save(tmp_path / "b.npy", data)
    with pytest.raises(InputError, match=r"1 NaN/Inf values \(first at time index 7, region 2\)"):
        load_empirical_bold(tmp_path / "b.npy", n_regions=N, tr_ms=2000.0)


def test_too_short(tmp_path):
    np.save(tmp_path / "b.npy", _bold()[:10])
    with pytest.raises(InputError, match="only 10 time points; at least 20"):
        load_empirical_bold(tmp_path / "b.npy", n_regions=N, tr_ms=2000.0)
    assert load_empirical_bold(tmp_path / "b.npy", n_regions=N, tr_ms=2000.0, min_timepoints=5).shape == (
        10,
        N,
    )


def test_constant_region(tmp_path):
    data = _bold()
    data[:, 4] = 1.0
    np.save(tmp_path / "b.npy", data)
    with pytest.raises(InputError, match="constant signal"):
        load_empirical_bold(tmp_path / "b.npy", n_regions=N, tr_ms=2000.0)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_empirical_bold(tmp_path / "none.nc", n_regions=N, tr_ms=2000.0)
    (tmp_path / "b.nc").write_text("garbage")
    with pytest.raises(InputError, match="cannot read as netCDF"):
        load_empirical_bold(tmp_path / "b.nc", n_regions=N, tr_ms=2000.0)
    (tmp_path / "b.xls").write_text("1,2")
    with pytest.raises(InputError, match="unsupported"):
        load_empirical_bold(tmp_path / "b.xls", n_regions=N, tr_ms=2000.0)
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="(?i)2-d"):
        load_empirical_bold(tmp_path / "c.npy", n_regions=N, tr_ms=2000.0)


# ------------------------------------------------------------------ MATLAB, text, layout, selection, TR
def test_mat_with_several_variables_and_a_transposed_bold(tmp_path):
    import scipy.io

    data = _bold()
    scipy.io.savemat(tmp_path / "s.mat", {"tc": data.T, "motion": np.zeros((T, 6 + 1)), "tr": 2.0})
    with pytest.raises(InputError, match="several 2-D variables"):
        load_empirical_bold(tmp_path / "s.mat", n_regions=N, tr_ms=2000.0)
    out = load_empirical_bold(tmp_path / "s.mat", n_regions=N, tr_ms=2000.0, variable="tc")
    np.testing.assert_array_equal(out, data)    # region x time in the file: detected and transposed


@pytest.mark.parametrize("suffix,sep", [(".csv", ","), (".tsv", "\t"), (".txt", " ")])
def test_text_bold_either_orientation(tmp_path, suffix, sep):
    data = _bold()
    np.savetxt(tmp_path / f"a{suffix}", data, delimiter=sep)
    np.savetxt(tmp_path / f"b{suffix}", data.T, delimiter=sep)
    for name in ("a", "b"):
        np.testing.assert_allclose(load_empirical_bold(tmp_path / f"{name}{suffix}", n_regions=N, tr_ms=2000.0),
                                   data)


def test_square_series_needs_the_layout_stated(tmp_path):
    data = np.random.default_rng(0).standard_normal((N, N)) + np.arange(N)
    np.save(tmp_path / "sq.npy", data)
    with pytest.raises(InputError, match="observation.layout"):
        load_empirical_bold(tmp_path / "sq.npy", n_regions=N, tr_ms=2000.0, min_timepoints=N)
    out = load_empirical_bold(tmp_path / "sq.npy", n_regions=N, tr_ms=2000.0, min_timepoints=N,
                              layout="region_time")
    np.testing.assert_array_equal(out, data.T)


def test_stated_tr_is_checked(tmp_path):
    np.save(tmp_path / "b.npy", _bold())
    assert load_empirical_bold(tmp_path / "b.npy", n_regions=N, tr_ms=2000.0, tr_stated=2000.0).shape == (T, N)
    with pytest.raises(InputError, match=r"observation.tr = 720 ms.*bold.tr = 2000 ms"):
        load_empirical_bold(tmp_path / "b.npy", n_regions=N, tr_ms=2000.0, tr_stated=720.0)


def test_connectome_selection_applies_to_the_bold(tmp_path):
    from tvbinv_hpc.sim.connectome import load_connectome

    rng = np.random.default_rng(0)
    np.save(tmp_path / "w.npy", rng.uniform(size=(N + 2, N + 2)))
    np.save(tmp_path / "l.npy", rng.uniform(10, 50, size=(N + 2, N + 2)))
    conn = load_connectome(str(tmp_path / "w.npy"), lengths=str(tmp_path / "l.npy"), drop=[1, 4])
    full = rng.standard_normal((T, N + 2))
    np.save(tmp_path / "full.npy", full.T)              # region x time, source regions
    out = load_empirical_bold(tmp_path / "full.npy", n_regions=N, tr_ms=2000.0, connectome=conn)
    np.testing.assert_array_equal(out, full[:, [0, 2, 3, 5, 6, 7]])
