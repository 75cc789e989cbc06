"""Empirical BOLD for the observation: read a netCDF, MATLAB, text or NumPy file into (time, region) float64,
with the connectome's region selection applied.

Checked before any simulation runs: region count, sample period (TR) against the config, finite
values, length, and constant regions (their correlations, hence FC features, are undefined).
Features are computed afterwards by the caller's FeatureSet.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc.errors import InputError

MIN_TIMEPOINTS = 20       # fewer samples give meaningless FC/FCD; FeatureSets may demand more
TR_RTOL = 0.01            # 1 % tolerance between file and config sample period
TIME_DIMS = ("time", "t", "times", "frame", "frames", "volume", "volumes", "timepoint", "timepoints",
             "sample", "samples", "tr")
REGION_DIMS = ("region", "regions", "node", "nodes", "roi", "rois", "parcel", "parcels", "space",
               "channel", "channels", "label", "labels", "area", "areas")
TR_ATTRS = ("tr_ms", "tr", "TR", "repetition_time", "RepetitionTime", "sample_period", "sampling_period",
            "sample_period_ms")
PREFERRED_VARS = ("bold", "BOLD", "data", "timeseries", "time_series", "ts")


def _to_ms(value: float, units: str | None) -> float:
    """Seconds or milliseconds -> ms. Without units, values < 100 are read as seconds (fMRI TRs)."""
    u = (units or "").strip().lower()
    if u in ("ms", "msec", "millisecond", "milliseconds"):
        return float(value)
    if u in ("s", "sec", "second", "seconds"):
        return float(value) * 1000.0
    return float(value) * 1000.0 if value < 100 else float(value)


def _pick_variable(ds, variable: str | None, path: Path):
    if variable is not None:
        if variable not in ds.data_vars:
            raise InputError(f"{path}: no variable '{variable}'; "
                             f"variables: {', '.join(map(str, ds.data_vars))}")
        return ds[variable]
    two_d = [name for name, v in ds.data_vars.items() if v.ndim == 2]
    if len(two_d) == 1:
        return ds[two_d[0]]
    for name in PREFERRED_VARS:
        if name in two_d:
            return ds[name]
    if not two_d:
        raise InputError(f"{path}: no 2-d (time x region) variable; variables: "
                         f"{', '.join(f'{k}{tuple(v.dims)}' for k, v in ds.data_vars.items()) or 'none'}")
    raise InputError(f"{path}: several 2-d variables ({', '.join(two_d)}); name one with `variable`")


def _time_axis(da, counts: set[int], path: Path) -> int:
    names = [str(d).lower() for d in da.dims]
    for i, name in enumerate(names):
        if name in TIME_DIMS:
            return i
    for i, name in enumerate(names):
        if name in REGION_DIMS:
            return 1 - i
    fits = [i for i, n in enumerate(da.shape) if n in counts]
    if len(fits) == 1:
        return 1 - fits[0]
    raise InputError(f"{path}: cannot tell the time dimension of {tuple(da.dims)} with shape {da.shape}; "
                     f"name it 'time' (and the other 'region')")


def _file_tr_ms(ds, da, time_dim: str) -> tuple[float | None, str]:
    """Sample period from attributes (variable, then dataset) or from the time coordinate."""
    for attrs, where in ((da.attrs, "variable attribute"), (ds.attrs, "global attribute")):
        for key in TR_ATTRS:
            if key in attrs:
                units = "ms" if key.endswith("_ms") else None
                value = float(np.asarray(attrs[key]).ravel()[0])
                return _to_ms(value, units), f"{where} '{key}'"
    if time_dim in da.coords and da.sizes[time_dim] > 1:
        t = np.asarray(da.coords[time_dim].values)
        if np.issubdtype(t.dtype, np.datetime64) or np.issubdtype(t.dtype, np.timedelta64):
            step = float(np.median(np.diff(t)) / np.timedelta64(1, "ms"))
            return step, f"time coordinate '{time_dim}'"
        if np.issubdtype(t.dtype, np.number):
            step = float(np.median(np.diff(t.astype(np.float64))))
            units = da.coords[time_dim].attrs.get("units")
            return _to_ms(step, units), f"time coordinate '{time_dim}'"
    return None, ""


def _read_netcdf(path: Path, counts: set[int], tr_ms: float, variable: str | None, layout: str) -> np.ndarray:
    import xarray as xr

    try:
        ds = xr.open_dataset(path)
    except Exception as exc:  # xarray/netCDF4 raise many types for foreign files
        raise InputError(f"{path}: cannot read as netCDF: {exc}") from exc
    with ds:
        da = _pick_variable(ds, variable, path)
        if da.ndim != 2:
            raise InputError(f"{path}: variable '{da.name}' has dimensions {tuple(da.dims)}, expected 2")
        t_axis = {"time_region": 0, "region_time": 1}.get(layout)
        if t_axis is None:
            t_axis = _time_axis(da, counts, path)
        time_dim = str(da.dims[t_axis])
        file_tr, source = _file_tr_ms(ds, da, time_dim)
        if file_tr is not None and not np.isclose(file_tr, tr_ms, rtol=TR_RTOL):
            raise InputError(f"{path}: sample period mismatch: the file says TR = {file_tr:g} ms ({source}), "
                             f"the config says {tr_ms:g} ms")
        data = np.asarray(da.values, dtype=np.float64)
    return data if t_axis == 0 else data.T


LAYOUTS = ("auto", "time_region", "region_time")


def _orient(data: np.ndarray, counts: set[int], layout: str, path: Path) -> np.ndarray:
    """(time, region) from a matrix whose axis order the file does not name."""
    if layout == "time_region":
        return data
    if layout == "region_time":
        return data.T
    rows, cols = data.shape[0] in counts, data.shape[1] in counts
    if cols and not rows:
        return data
    if rows and not cols:
        return data.T
    if rows and cols:
        raise InputError(f"{path}: shape {data.shape}: both axes could be regions; set observation.layout "
                         "to 'time_region' or 'region_time'")
    want = " or ".join(str(c) for c in sorted(counts))
    raise InputError(f"{path}: shape {data.shape}: neither axis has the connectome's {want} regions")


def _read_matrix_bold(path: Path, variable: str | None, counts: set[int], layout: str) -> np.ndarray:
    from tvbinv_hpc.arrays import read_matrix

    table = read_matrix(path, variable or "", what="observation", preferred=PREFERRED_VARS)
    return _orient(table.values, counts, layout, path)


def load_empirical_bold(path: str | Path, *, n_regions: int, tr_ms: float, variable: str | None = None,
                        min_timepoints: int = MIN_TIMEPOINTS, layout: str = "auto", tr_stated: float = 0.0,
                        connectome: Any = None) -> np.ndarray:
    """Read empirical BOLD as a (time, region) float64 array and check it against the config.

    netCDF: the data variable is ``variable`` or the only 2-d one (else bold/BOLD/data/...); the
    time dimension is found by name (time, t, frame, volume, ...) or by elimination against
    ``n_regions``. TR comes from an attribute (tr_ms, tr, TR, repetition_time, sample_period, ...;
    values < 100 without units are seconds) or the spacing of the time coordinate; when present it
    must match ``tr_ms`` within 1 %. ``.mat``/``.npz`` (``variable`` or the only 2-d array), ``.csv``/
    ``.tsv``/``.txt`` and ``.npy`` carry no axis names: the axis with the region count is the region axis
    (``layout`` states it when both could be), and no TR: ``tr_stated`` (ms, 0: unknown) is checked instead.
    ``connectome`` (a :class:`~tvbinv_hpc.sim.connectome.Connectome`): BOLD with the source's region count
    is cut with the connectome's ``drop``/``keep``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"observation file not found: {path}")
    if layout not in LAYOUTS:
        raise InputError(f"observation.layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if tr_stated and not np.isclose(tr_stated, tr_ms, rtol=TR_RTOL):
        raise InputError(f"{path}: sample period mismatch: observation.tr = {tr_stated:g} ms, the simulated "
                         f"BOLD has bold.tr = {tr_ms:g} ms (resample the data or change bold.tr)")
    counts = {n_regions}
    if connectome is not None and connectome.kept is not None:
        counts.add(int(connectome.source_regions))
    suffix = path.suffix.lower()
    if suffix in (".npy", ".mat", ".csv", ".tsv", ".txt", ".npz"):
        data = _read_matrix_bold(path, variable, counts, layout)
    elif suffix in (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5"):
        data = _read_netcdf(path, counts, tr_ms, variable, layout)
    else:
        raise InputError(f"{path}: unsupported observation format '{suffix}' (use .nc, .mat, .csv, .tsv, "
                         ".txt, .npy or .npz)")
    if connectome is not None:
        data = connectome.select_regions(data, 1, str(path))

    n_time, n_reg = data.shape
    if n_reg != n_regions:
        hint = " (is it transposed? expected [time, region])" if n_time == n_regions else ""
        raise InputError(f"{path}: {n_reg} regions, but the connectome has {n_regions}{hint}")
    bad = ~np.isfinite(data)
    if bad.any():
        t, r = np.argwhere(bad)[0]
        raise InputError(f"{path}: {int(bad.sum())} NaN/Inf values (first at time index {t}, region {r})")
    if n_time < min_timepoints:
        raise InputError(f"{path}: only {n_time} time points; at least {min_timepoints} are needed")
    flat = np.flatnonzero(np.ptp(data, axis=0) == 0)
    if flat.size:
        raise InputError(f"{path}: {flat.size} region(s) have a constant signal (first: region {flat[0]}); "
                         f"their correlations are undefined")
    return data
