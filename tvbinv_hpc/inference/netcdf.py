"""Write ``posterior.nc``: root attributes, then one netCDF group (ArviZ-style) per Dataset.

Every parameter and feature is kept here, however many there are: this is the data, the report and the
plots are the presentation. ``result`` is the dict assembled by ``workflow.diagnose``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc.inference import priorcheck
from tvbinv_hpc.inference.diagnostics import QUANTILES


def _attrs(d: dict) -> dict:
    """netCDF attributes must be numbers or strings: drop None, bools -> int, containers -> JSON."""
    out = {}
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, (dict, list, tuple)):
            v = json.dumps(v)
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _chain(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)[None]   # ArviZ convention: one chain


def build_datasets(result: dict) -> dict:
    """The xarray Datasets, one per netCDF group (absent groups are omitted)."""
    import xarray as xr

    params, features = list(result["param_names"]), list(result["feature_names"])
    pc, fc = {"param": params}, {"feature": features}
    groups: dict[str, xr.Dataset] = {}
    s = result["samples"]
    groups["posterior"] = xr.Dataset(
        {"theta": (("chain", "draw", "param"), _chain(s))},
        coords={**pc, "chain": [0], "draw": np.arange(len(s))})
    ps = result["prior_samples"]
    groups["prior"] = xr.Dataset(
        {"theta": (("chain", "draw", "param"), _chain(ps))},
        coords={**pc, "chain": [0], "draw": np.arange(len(ps))})
    obs = {"x": (("feature",), np.asarray(result["x_obs"], dtype=np.float64))}
    ppc = result.get("ppc")
    if ppc and ppc.get("fc_obs") is not None:
        obs["fc"] = (("region", "region_b"), np.asarray(ppc["fc_obs"], dtype=np.float64))
    groups["observed_data"] = xr.Dataset(obs, coords=fc, attrs=_attrs(result.get("baselines") or {}))
    if ppc:
        k = len(ppc["x"])
        pp = {"x": (("chain", "draw", "feature"), _chain(ppc["x"])),
              "theta": (("chain", "draw", "param"), _chain(ppc["theta"]))}
        if ppc.get("fc_mean") is not None:
            pp["fc_mean"] = (("region", "region_b"), np.asarray(ppc["fc_mean"], dtype=np.float64))
        groups["posterior_predictive"] = xr.Dataset(
            pp, coords={**pc, **fc, "chain": [0], "draw": np.arange(k)},
            attrs=_attrs({"n_diverged": ppc["compare"]["n_diverged"], **ppc.get("fc_stats", {}),
                          **ppc.get("fcd_stats", {}),
                          **{f"fcd_{k}": v for k, v in (result.get("fcd_window") or {}).items()}}))

    o = result["obs"]
    diag = {"post_mean": (("param",), o["mean"]), "post_std": (("param",), o["std"]),
            "post_quantile": (("quantile", "param"), o["quantiles"]),
            "shrinkage": (("param",), o["shrinkage"])}
    if result.get("theta_true") is not None:
        diag["theta_true"] = (("param",), np.asarray(result["theta_true"], dtype=np.float64))
        diag["zscore"] = (("param",), o["zscore"])
    coords: dict[str, Any] = {**pc, "quantile": list(QUANTILES)}
    attrs: dict[str, Any] = {}
    t = result.get("test") or {}
    if "sbc_ranks" in t:
        row = ("test_row", "param")
        diag.update({"test_theta": (row, t["theta"]), "test_post_mean": (row, t["post_mean"]),
                     "test_post_std": (row, t["post_std"]), "test_shrinkage": (row, t["shrinkage"]),
                     "test_zscore": (row, t["zscore"]), "sbc_rank": (row, t["sbc_ranks"]),
                     "sbc_ks_pval": (("param",), t["ks_pvals"]),
                     "sbc_c2st_ranks": (("param",), t["c2st_ranks"]),
                     "sbc_c2st_dap": (("param",), t["c2st_dap"])})
        coords["test_row"] = t["row_index"]
        attrs["sbc_num_samples"] = t["n_samples"]
    if "expected_coverage" in t:
        diag["coverage_hpd_level"] = (("test_row",), t["coverage_rank"])
        diag["expected_coverage"] = (("coverage_level",), t["expected_coverage"])
        coords["coverage_level"] = t["coverage_levels"]
        attrs["coverage_max_deviation"] = t["coverage_max_deviation"]
    if "tarp_ecp" in t:
        diag["tarp_ecp"] = (("tarp_alpha",), t["tarp_ecp"])
        coords["tarp_alpha"] = t["tarp_alpha"]
        attrs.update(tarp_atc=t["tarp_atc"], tarp_ks_pval=t["tarp_ks_pval"])
    if ppc:
        c = ppc["compare"]
        diag.update({"ppc_mean": (("feature",), c["mean"]), "ppc_std": (("feature",), c["std"]),
                     "ppc_z": (("feature",), c["z"]), "ppc_quantile": (("feature",), c["quantile"])})
        coords.update(fc)
    groups["diagnostics"] = xr.Dataset(diag, coords=coords, attrs=_attrs(attrs))

    tr = result.get("training") or {}
    if tr.get("validation_loss"):
        groups["training"] = xr.Dataset(
            {"training_loss": (("epoch",), np.asarray(tr["training_loss"], dtype=np.float64)),
             "validation_loss": (("epoch",), np.asarray(tr["validation_loss"], dtype=np.float64))},
            coords={"epoch": np.arange(1, len(tr["validation_loss"]) + 1)})
    if result.get("prior_check"):
        groups["prior_check"] = _prior_check_dataset(result["prior_check"])
    return groups


def _prior_check_dataset(check: dict) -> Any:
    """Per-feature placement of the observation among the training simulations; the joint distance and
    the verdict as attributes. ``flag`` follows CF's flag_values / flag_meanings."""
    import xarray as xr

    f = check["features"]
    lo, hi = (f"sim_q{round(100 * q):02d}" for q in priorcheck.CENTRAL)
    data = {"observed": check["x_obs"], lo: f["q_low"], "sim_q50": f["q50"], hi: f["q_high"],
            "sim_min": f["min"], "sim_max": f["max"], "percentile": f["percentile"], "p_value": f["p_value"],
            "excess_normal_score": f["excess"]}
    ds = xr.Dataset({k: (("feature",), np.asarray(v, dtype=np.float64)) for k, v in data.items()},
                    coords={"feature": list(check["names"])})
    ds["flag"] = (("feature",), f["flag"].astype(np.int8),
                  {"flag_values": np.arange(3, dtype=np.int8), "flag_meanings": "inside tail outside_range"})
    joint = {f"joint_{k}": v for k, v in check["joint"].items()}
    ds.attrs = _attrs({"verdict": check["verdict"], "message": check["message"], "n_sims": check["n_sims"],
                       "n_excluded": check["n_excluded"], **joint, "p_edge": priorcheck.P_EDGE,
                       "p_outside": priorcheck.P_OUTSIDE})
    return ds


def write_netcdf(path: str | Path, result: dict) -> list[str]:
    """Write ``posterior.nc``: root attributes, then one netCDF group per Dataset. Returns group names."""
    import xarray as xr

    path = Path(path)
    meta = result.get("meta", {})
    root = xr.Dataset(attrs=_attrs({
        "title": "tvbinv_hpc posterior diagnostics", "created": result.get("created"),
        "config_hash": meta.get("config_hash"), "density_estimator": meta.get("builder", {}).get("model"),
        "param_names": list(result["param_names"]), "feature_names": list(result["feature_names"]),
        "versions": meta.get("versions"), "inference_library": "sbi NPE"}))
    tmp = path.with_name(path.name + ".tmp")
    root.to_netcdf(tmp, mode="w", engine="netcdf4")
    groups = build_datasets(result)
    for name, ds in groups.items():
        ds.to_netcdf(tmp, mode="a", group=name, engine="netcdf4")
    tmp.replace(path)
    return list(groups)
