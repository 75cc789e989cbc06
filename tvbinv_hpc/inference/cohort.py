"""A cohort: one trained (amortised) posterior applied to several subjects' observations.

Each subject gets its own folder of diagnostics (``workflow.diagnose``); this module gathers their
summaries into ``cohort.nc`` (a ``subject`` dimension), a cohort table in ``report.md`` and a cohort
``summary.json``.  The posterior's calibration on held-out simulations does not depend on the subject and
is reported once.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

PARAM_STATS = ("mean", "std", "q05", "q50", "q95", "shrinkage")


def _get(d: dict | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def subject_row(name: str, source: str, summary: dict) -> dict[str, Any]:
    """The numbers of one subject that the cohort table shows."""
    pc = summary.get("prior_check") or {}
    base = summary.get("baselines") or {}
    ppc = summary.get("ppc") or {}
    return {
        "subject": name, "source": source, "parameters": summary["parameters"],
        "prior_check": pc.get("verdict"), "prior_check_joint_percentile": _get(pc, "joint", "percentile"),
        "features_outside_range": len(pc.get("outside_range") or []),
        "ppc_fc_corr": ppc.get("fc_corr"), "ppc_fc_corr_draw_median": ppc.get("fc_corr_draw_median"),
        "r_fc_sc": base.get("r_fc_sc"), "r_fc_logsc": base.get("r_fc_logsc"),
        "beats_baselines": base.get("beats_baselines"), "fcd_ks": _get(ppc, "fcd", "fcd_ks"),
        "fcd_beyond_draws": _get(ppc, "fcd", "beyond_draws"),
        "ppc_features_abs_z_gt_3": len(ppc.get("features_abs_z_gt_3") or []),
        "ppc_diverged": ppc.get("n_diverged"), "warnings": summary.get("warnings", []),
    }


def write_cohort_netcdf(path: Path, rows: list[dict], param_names: list[str], attrs: dict) -> None:
    """cohort.nc: per-subject posterior summaries (subject x param) and checks (subject)."""
    import xarray as xr

    subjects = [r["subject"] for r in rows]
    data: dict[str, Any] = {}
    for stat in PARAM_STATS:
        data[f"post_{stat}"] = (("subject", "param"),
                                np.array([[_num(r["parameters"][p].get(stat)) for p in param_names] for r in rows]))
    for key in ("prior_check_joint_percentile", "ppc_fc_corr", "ppc_fc_corr_draw_median", "r_fc_sc", "r_fc_logsc",
                "fcd_ks"):
        data[key] = (("subject",), np.array([_num(r.get(key)) for r in rows]))
    for key in ("features_outside_range", "ppc_features_abs_z_gt_3"):
        data[key] = (("subject",), np.array([int(r[key]) for r in rows], dtype=np.int32))
    data["beats_baselines"] = (("subject",), np.array([-1 if r["beats_baselines"] is None
                                                      else int(r["beats_baselines"]) for r in rows], np.int8),
                               {"flag_values": np.array([-1, 0, 1], np.int8), "flag_meanings": "unknown no yes"})
    data["prior_check"] = (("subject",), np.array([r["prior_check"] or "" for r in rows], dtype=object))
    data["source"] = (("subject",), np.array([r["source"] for r in rows], dtype=object))
    ds = xr.Dataset(data, coords={"subject": subjects, "param": list(param_names)},
                    attrs={k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                           for k, v in attrs.items() if v is not None})
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, mode="w", engine="netcdf4")
    tmp.replace(path)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def report_lines(rows: list[dict], param_names: list[str], calibration: dict | None) -> list[str]:
    """The cohort report: a posterior table and a checks table, one row per subject."""
    lines = [f"# Cohort diagnostics: {len(rows)} subjects, one amortised posterior", "",
             "## Posterior per subject (mean ± std)", "",
             "| subject | " + " | ".join(param_names) + " |", "|" + "---|" * (len(param_names) + 1)]
    for r in rows:
        cells = [f"{_fmt(r['parameters'][p]['mean'])} ± {_fmt(r['parameters'][p]['std'], 2)}" for p in param_names]
        lines.append(f"| {r['subject']} | " + " | ".join(cells) + " |")
    lines += ["", "## Checks per subject", "",
              "| subject | prior predictive | features outside range | PPC FC r (mean FC) | single draws' median r "
              "| r(FC, SC) | r(FC, log SC) | beats SC baselines | FCD KS D | PPC features > 3 std | warnings |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        beats = {None: "—", True: "yes", False: "**no**"}[r["beats_baselines"]]
        verdict = r["prior_check"] or "—"
        verdict = verdict if verdict in ("inside", "—") else f"**{verdict}**"
        lines.append(f"| {r['subject']} | {verdict} | {r['features_outside_range']} | {_fmt(r['ppc_fc_corr'])} | "
                     f"{_fmt(r.get('ppc_fc_corr_draw_median'))} | {_fmt(r['r_fc_sc'])} | {_fmt(r['r_fc_logsc'])} | "
                     f"{beats} | {_fmt(r['fcd_ks'])} | {r['ppc_features_abs_z_gt_3']} | {len(r['warnings'])} |")
    if calibration:
        lines += ["", f"## Calibration on {calibration['n_rows']} held-out simulations (the same for every "
                      "subject)", "", "| parameter | mean shrinkage | SBC KS p |", "|---|---|---|"]
        for p in param_names:
            lines.append(f"| {p} | {_fmt(calibration['shrinkage_mean'][p])} | "
                         f"{_fmt(calibration['sbc_ks_pvals'][p])} |")
        if calibration.get("coverage_max_deviation") is not None:
            lines += ["", f"Expected coverage: max deviation from the diagonal "
                          f"{_fmt(calibration['coverage_max_deviation'])}."]
    lines += ["", "Each subject's full report (posterior, prior predictive check, PPC, FC, FCD, plots): "
                  "`subjects/<subject>/report.md`.", ""]
    flagged = [r for r in rows if r["warnings"]]
    lines += ["## Warnings", ""]
    lines += [f"- {r['subject']}: {w}" for r in flagged for w in r["warnings"]] or ["- none"]
    return lines


def write_cohort(outdir: str | Path, entries: list[tuple[str, str, dict]], param_names: list[str],
                 meta: dict | None = None) -> dict:
    """Write cohort.nc, report.md and summary.json into ``outdir`` from each subject's ``(name, source,
    summary)``; return the cohort summary."""
    outdir = Path(outdir)
    rows = [subject_row(n, src, summ) for n, src, summ in entries]
    calibration = next((summ.get("test") for _, _, summ in entries if summ.get("test")), None)
    write_cohort_netcdf(outdir / "cohort.nc", rows, param_names,
                        {"title": "tvbinv_hpc cohort diagnostics", "n_subjects": len(rows),
                         "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "calibration": calibration, **(meta or {})})
    (outdir / "report.md").write_text("\n".join(report_lines(rows, param_names, calibration)))
    summary = {"cohort": True, "subjects": {r["subject"]: {k: v for k, v in r.items() if k != "subject"}
                                            for r in rows},
               "test": calibration, "files": ["cohort.nc", "report.md", "summary.json"],
               "warnings": [f"{r['subject']}: {w}" for r in rows for w in r["warnings"]]}
    return summary
