"""Per-region (vector) parameters at scale: ``model.eta[0]`` ... ``model.eta[N-1]`` summarised, not listed.

A prior with ``shape = "regions"`` gives one column per region. With 76 regions a table of 77 rows, 76
warnings "the data barely constrain it" and 77 histograms bury the few numbers a reader needs, so above
``MAX_TABLE_PARAMS`` parameters the report lists the global parameters in full and, per vector, the median
shrinkage and |z|, how many regions' 90 % intervals hold the truth, and the regions the data constrain
most. summary.json and posterior.nc keep every parameter: that is data, not presentation.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

MAX_TABLE_PARAMS = 12   # up to this many parameters every one gets its row, histogram and warning
TOP_REGIONS = 5         # regions listed per vector: those with the highest shrinkage
LOW_SHRINKAGE = 0.1     # below this the data barely constrain a parameter (as report.build_summary)

_ELEMENT = re.compile(r"^(?P<base>.+)\[(?P<i>\d+)\]$")
_REGION_FEATURE = re.compile(r"^(?P<base>.+)_(?P<i>\d+)$")   # bold_mean_12 (stats.BoldRegionStats)
MAX_TABLE_FEATURES = 40  # beyond, the prior check's feature table gives a per-region set one row
MIN_REGION_FEATURES = 8   # fewer numbered features than this (fc_eig1..3) are not a per-region set


def split_params(names: list[str]) -> tuple[list[int], dict[str, list[int]]]:
    """Column indices of the global (scalar) parameters, and of each vector's elements in region order."""
    scalars: list[int] = []
    vectors: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        m = _ELEMENT.match(name)
        if m:
            vectors.setdefault(m["base"], []).append(j)
        else:
            scalars.append(j)
    for cols in vectors.values():
        cols.sort(key=lambda j: region_of(names[j]))
    return scalars, vectors


def split_features(names: list[str]) -> tuple[list[int], dict[str, list[int]]]:
    """Column indices of the scalar features, and of each per-region feature set (``bold_mean_<i>``) in
    region order: the predictive check plots the latter against the region index."""
    sets: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        m = _REGION_FEATURE.match(name)
        if m:
            sets.setdefault(m["base"], []).append(j)
    sets = {b: sorted(c, key=lambda j: int(_REGION_FEATURE.match(names[j])["i"]))
            for b, c in sets.items() if len(c) >= MIN_REGION_FEATURES}
    taken = {j for c in sets.values() for j in c}
    return [j for j in range(len(names)) if j not in taken], sets


def plotted_params(names: list[str], shrinkage: np.ndarray, limit: int) -> tuple[list[int], str]:
    """Columns for the marginal and pair plots: every parameter when there are few; otherwise the global
    ones and, up to ``limit``, the per-region ones with the highest shrinkage (the only ones with anything to
    show), and a note saying so."""
    vecs = summarised(names)
    if not vecs:
        return list(range(len(names))), ""
    scalars = split_params(names)[0]
    regional = [j for c in vecs.values() for j in c]
    k = max(0, min(4, limit - len(scalars)))
    top = sorted(regional, key=lambda j: -np.nan_to_num(shrinkage[j], nan=-np.inf))[:k]
    note = (f"global parameters and the {len(top)} of {len(regional)} per-region parameters with the highest "
            "shrinkage (all regions: regions_*.png)")
    return (scalars + top)[:limit], note


def region_of(name: str) -> int:
    """The region index of a vector element's name (``model.eta[12]`` -> 12)."""
    m = _ELEMENT.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a per-region parameter")
    return int(m["i"])


def summarised(names: list[str]) -> dict[str, list[int]]:
    """The vectors to summarise rather than list: all of them once there are more than MAX_TABLE_PARAMS
    parameters, none below (a 4-region prior reads fine as a table)."""
    return split_params(names)[1] if len(names) > MAX_TABLE_PARAMS else {}


def _med(values: list[float | None]) -> float | None:
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    return float(np.nanmedian(v)) if np.isfinite(v).any() else None


def vector_summaries(params: dict[str, dict], names: list[str], test: dict | None = None) -> dict[str, dict]:
    """Per summarised vector, from ``build_summary``'s per-parameter entries (and calibration ``test``):
    medians of shrinkage and |z|, the fraction of regions whose 90 % interval holds the truth, the
    TOP_REGIONS regions with the highest shrinkage, and the held-out calibration aggregated over regions."""
    out: dict[str, dict] = {}
    for base, cols in summarised(names).items():
        elems = [names[j] for j in cols]
        e = [params[p] for p in elems]
        shrink = [x["shrinkage"] for x in e]
        known = [s for s in shrink if s is not None]
        v: dict[str, Any] = {"n_regions": len(elems), "shrinkage_median": _med(shrink),
                             "shrinkage_max": max(known) if known else None,
                             "n_low_shrinkage": sum(s is not None and s < LOW_SHRINKAGE for s in shrink)}
        if all("true" in x for x in e):
            inside = [x["q05"] <= x["true"] <= x["q95"] for x in e if x["q05"] is not None]
            v["abs_zscore_median"] = _med([None if x["zscore"] is None else abs(x["zscore"]) for x in e])
            v["n_abs_zscore_gt_3"] = sum(x["zscore"] is not None and abs(x["zscore"]) > 3 for x in e)
            v["covered_90"] = len([i for i in inside if i]) / len(inside) if inside else None
        order = sorted(range(len(elems)), key=lambda i: -(shrink[i] if shrink[i] is not None else -np.inf))
        v["top"] = [{"param": elems[i], "region": region_of(elems[i]),
                     **{k: e[i].get(k) for k in ("q05", "q50", "q95", "shrinkage", "true", "zscore")}}
                    for i in order[:TOP_REGIONS]]
        if test and "sbc_ks_pvals" in test:
            alpha = 0.05 / len(names)   # Bonferroni over all parameters, as the global SBC warnings
            pv = [test["sbc_ks_pvals"][p] for p in elems]
            v["test"] = {"shrinkage_mean_median": _med([test["shrinkage_mean"][p] for p in elems]),
                         "abs_zscore_median": _med([None if test["zscore_median"][p] is None
                                                    else abs(test["zscore_median"][p]) for p in elems]),
                         "sbc_ks_p_median": _med(pv), "sbc_alpha": alpha,
                         "n_sbc_fail": sum(p is not None and p < alpha for p in pv)}
        out[base] = v
    return out


def vector_warnings(vectors: dict[str, dict]) -> list[str]:
    """One warning per vector and kind instead of one per region."""
    w = []
    for base, v in vectors.items():
        n = v["n_regions"]
        if v.get("n_abs_zscore_gt_3"):
            w.append(f"{base}: in {v['n_abs_zscore_gt_3']} of {n} regions the true value is > 3 posterior std "
                     "from the mean")
        if v["n_low_shrinkage"]:
            w.append(f"{base}: {v['n_low_shrinkage']} of {n} regions have shrinkage < {LOW_SHRINKAGE:g}: the data "
                     "barely constrain them (median shrinkage "
                     f"{_fmt(v['shrinkage_median'])})")
        t = v.get("test") or {}
        if t.get("n_sbc_fail"):
            w.append(f"{base}: SBC ranks not uniform in {t['n_sbc_fail']} of {n} regions (KS p < "
                     f"{t['sbc_alpha']:.2g}): miscalibrated")
    return w


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def report_lines(vectors: dict[str, dict]) -> list[str]:
    """Markdown: one paragraph and a table of the most constrained regions per vector."""
    lines: list[str] = []
    for base, v in vectors.items():
        n = v["n_regions"]
        text = (f"**{base}** ({n} regions, one per row of `posterior.nc` and `summary.json`; plot "
                f"`regions_{plot_stem(base)}.png`): median shrinkage {_fmt(v['shrinkage_median'])} (highest "
                f"{_fmt(v['shrinkage_max'])}); {v['n_low_shrinkage']} of {n} below {LOW_SHRINKAGE:g}")
        if "covered_90" in v:
            text += (f"; median |z| {_fmt(v['abs_zscore_median'])}; the 90 % interval holds the truth in "
                     f"{_fmt(None if v['covered_90'] is None else 100 * v['covered_90'])} % of regions "
                     "(about 90 % if calibrated)")
        lines += [text + ".", "", f"Regions the data constrain most (highest shrinkage, {len(v['top'])} of {n}):",
                  ""]
        has_true = bool(v["top"]) and v["top"][0].get("true") is not None
        head = ["region", "q05", "q50", "q95", "shrinkage"] + (["true", "z-score"] if has_true else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in v["top"]:
            vals = [r["q05"], r["q50"], r["q95"], r["shrinkage"]] + ([r["true"], r["zscore"]] if has_true else [])
            lines.append(f"| {r['region']} | " + " | ".join(_fmt(x) for x in vals) + " |")
        lines.append("")
    return lines


def calibration_rows(vectors: dict[str, dict]) -> list[str]:
    """Rows of the report's calibration table: one per vector, medians over its regions."""
    rows = []
    for base, v in vectors.items():
        t = v.get("test")
        if t:
            rows.append(f"| {base} ({v['n_regions']} regions: median; SBC fails in {t['n_sbc_fail']}) | "
                        f"{_fmt(t['shrinkage_mean_median'])} | {_fmt(t['abs_zscore_median'])} (median \\|z\\|) | "
                        f"{_fmt(t['sbc_ks_p_median'])} | — |")
    return rows


def plot_stem(base: str) -> str:
    """A file-name-safe form of a vector's name (``model.eta`` -> ``model_eta``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", base).strip("_")
