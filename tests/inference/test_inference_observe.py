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
    (tmp_path / "b.csv").write_text("1,2")
    with pytest.raises(InputError, match="unsupported"):
        load_empirical_bold(tmp_path / "b.csv", n_regions=N, tr_ms=2000.0)
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="2-d"):
        load_empirical_bold(tmp_path / "c.npy", n_regions=N, tr_ms=2000.0)
