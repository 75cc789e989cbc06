"""The feature registry: named summary statistics of BOLD, each a fixed list of named scalars.

A feature class declares ``params`` (default, one-line doc, check) and computes ``(B, k)`` from a
:class:`Batch`, which holds the burnt-in BOLD of the valid simulations and caches FC / FCD so that
features sharing a window setting compute it once.  Add a feature by subclassing :class:`Feature` and
listing it in ``FEATURES``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .fc import fc, moments, row_stats, triu_values
from .fcd import fcd, fcd_filtered
from .params import (
    Context,
    Hemispheres,
    Param,
    boolean,
    choice_list,
    hemispheres,
    positive_int,
    quantile_list,
    samples,
    text,
)
from .structure import Structure, triu_corr_rows

__all__ = ["Batch", "Feature", "FEATURES", "COMMON_PARAMS"]


class Batch:
    """BOLD ``(B, T, N)`` float64 after burn-in, with FC / FCD caches shared by the features."""

    def __init__(self, bold: np.ndarray):
        self.bold = bold
        self._cache: dict[tuple, Any] = {}

    def fc(self) -> np.ndarray:
        if ("fc",) not in self._cache:
            self._cache[("fc",)] = fc(self.bold)
        return self._cache[("fc",)]

    def fcd(self, win_len: int, win_sp: int, include_last: bool) -> np.ndarray:
        key = ("fcd", win_len, win_sp, include_last)
        if key not in self._cache:
            self._cache[key] = fcd(self.bold, win_len, win_sp, include_last=include_last)
        return self._cache[key]

    def fcd_filtered(self, win_len: int, win_sp: int, include_last: bool, hemi: Hemispheres):
        key = ("fcd_filtered", win_len, win_sp, include_last, hemi.left.tobytes(), hemi.right.tobytes())
        if key not in self._cache:
            mask = hemi.inter_mask(self.bold.shape[2])
            res = fcd_filtered(self.bold, win_len, win_sp, mask, include_last=include_last)
            self._cache[key] = res
            self._cache[("fcd", win_len, win_sp, include_last)] = res[0]
        return self._cache[key]


# Fewer FCD values than this make fcd_stats' higher moments and quantiles noise (warned at set-up).
FCD_MIN_PAIRS = 20


def _n_windows_needed(n_windows: int, win_len: int, win_sp: int, include_last: bool) -> int:
    """Samples needed for ``n_windows`` windows under :func:`fcd.window_starts`."""
    return win_len + (n_windows - 1) * win_sp + (0 if include_last else 1)


def _pct(q: float) -> str:
    return f"q{100 * q:g}"


WIN_LEN = Param(20, "sliding-window length in TR samples (or give win_len_s in seconds, a whole number "
                "of TRs)", samples(2), seconds_alias=True)
WIN_SP = Param(1, "sliding-window step in TR samples (or give win_sp_s in seconds)", samples(1),
               seconds_alias=True)
HEMIS = Param("auto", "homotopic pairing: \"auto\" (the connectome's connectome.hemispheres, else its region "
              "labels or centres), \"halves\" (region i pairs with i + N/2), \"interleaved\" (2k with 2k + 1) "
              "or {left = [...], right = [...]} index lists, left[k] homotopic to right[k]", hemispheres)
COMMON_PARAMS = {"label": Param("", "prefix '<label>_' for this feature's names (needed to use a "
                                "feature twice)", text)}


class Feature:
    """Base class; ``values`` are the checked parameters, ``ctx`` the connectome size and TR."""

    name: ClassVar[str]
    params: ClassVar[dict[str, Param]] = {}

    def __init__(self, values: dict[str, Any], ctx: Context):
        self.values = values
        self.ctx = ctx

    @property
    def names(self) -> list[str]:
        label = self.values.get("label", "")
        return [f"{label}_{n}" if label else n for n in self._names()]

    def _names(self) -> list[str]:
        raise NotImplementedError

    def min_samples(self) -> int:
        """Samples needed after the burn-in cut."""
        return 3

    def warnings(self, n_samples: int) -> list[str]:
        """What is wrong with this feature on ``n_samples`` BOLD samples (after the burn-in cut) although it
        can be computed, e.g. statistics over too few values."""
        return []

    def compute(self, batch: Batch) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for k, v in self.values.items():
            out[k] = v.spec if isinstance(v, Hemispheres) else v
        return out


class BoldFcdForSbi(Feature):
    """tvb-inversion's ``BoldFCDForSBI`` features, same definitions, hemisphere order explicit.

    rsFC = Pearson FC with negatives and diagonal set to 0. HOMO_FC = mean of rsFC over homotopic pairs.
    FCD over windows ``range(0, T - win_len, win_sp)`` (last window omitted, as the original);
    FCD_inter: same with each window FC replaced by ``fc * (fc > 0) * inter`` (inter = one region left,
    one right). FCD_STACK_STD_INTER_TENS = std of that filtered stack (zeros included).
    FCD_SUBJ_DIFF_VAR_OV_TENS = var(triu(FCD_inter, k=win_len)) - var(triu(FCD, k=win_len)), variance
    over the whole W x W matrix incl. zeros; the offset win_len counts windows, not samples.
    FC_SUM = sum|rsFC| - trace|rsFC|. FCD_SUM = sum|triu(FCD, win_len) + tril(FCD, -win_len)|.
    """

    name = "bold_fcd_for_sbi"
    params = {"win_len": WIN_LEN, "win_sp": WIN_SP, "hemispheres": HEMIS}

    def _names(self):
        return ["HOMO_FC", "FCD_STACK_STD_INTER_TENS", "FCD_SUBJ_DIFF_VAR_OV_TENS", "FC_SUM", "FCD_SUM"]

    def min_samples(self):
        # more windows than win_len, so that the windows win_len apart exist (else FCD_SUM = 0 always)
        v = self.values
        return _n_windows_needed(v["win_len"] + 1, v["win_len"], v["win_sp"], False)

    def compute(self, batch):
        L, hemi = self.values["win_len"], self.values["hemispheres"]
        c = batch.fc()
        r = np.where(c < 0.0, 0.0, c)
        diag = np.arange(r.shape[1])
        r[:, diag, diag] = 0.0
        a = np.abs(r)
        homo = _per_sim(r[:, hemi.left, hemi.right], "mean")
        fc_sum = _per_sim(a, "sum") - np.trace(a, axis1=1, axis2=2)
        F, Fi, stack_std = batch.fcd_filtered(L, self.values["win_sp"], False, hemi)
        diff = _per_sim(np.triu(Fi, k=L), "var") - _per_sim(np.triu(F, k=L), "var")
        fcd_sum = _per_sim(np.abs(np.triu(F, k=L) + np.tril(F, k=-L)), "sum")
        return np.stack([homo, stack_std, diff, fc_sum, fcd_sum], axis=1)


def _per_sim(a: np.ndarray, stat: str) -> np.ndarray:
    """mean / var / sum over all but the first axis, in a batch-independent summation order."""
    flat = a.reshape(a.shape[0], -1)
    if stat == "sum":
        return flat.shape[1] * row_stats(flat, ["mean"])[:, 0]
    return row_stats(flat, [stat])[:, 0]


FC_MOMENTS = ("mean", "std", "var", "skew", "kurtosis")


class FcStats(Feature):
    """Statistics of the FC upper triangle (k = 1): moments (population; Fisher kurtosis) and quantiles
    (numpy 'linear'). Names fc_<stat>, fc_q<percent>."""

    name = "fc_stats"
    params = {"stats": Param(["mean", "std", "skew", "kurtosis"], f"moments, from {list(FC_MOMENTS)}",
                             choice_list(FC_MOMENTS)),
              "quantiles": Param([0.1, 0.5, 0.9], "quantile levels in [0, 1]", quantile_list)}

    def _names(self):
        v = self.values
        return [f"fc_{s}" for s in v["stats"]] + [f"fc_{_pct(q)}" for q in v["quantiles"]]

    def compute(self, batch):
        return moments(triu_values(batch.fc(), 1), self.values["stats"], self.values["quantiles"])


FCD_MOMENTS = ("mean", "std", "fluidity", "skew", "kurtosis")


class FcdStats(Feature):
    """Statistics of the FCD upper triangle at window lags >= min_lag: moments, 'fluidity' = variance,
    and quantiles. Names fcd_<stat>, fcd_q<percent>."""

    name = "fcd_stats"
    params = {"win_len": WIN_LEN, "win_sp": WIN_SP,
              "include_last": Param(True, "include the last full window (false: tvb-inversion's "
                                    "range(0, T - win_len, win_sp))", boolean),
              "min_lag": Param(1, "smallest window-index lag kept (1: all off-diagonal entries; "
                               "win_len with win_sp = 1: non-overlapping windows only)", positive_int),
              "stats": Param(["mean", "fluidity", "skew", "kurtosis"],
                             f"moments, from {list(FCD_MOMENTS)} (fluidity = variance)",
                             choice_list(FCD_MOMENTS)),
              "quantiles": Param([0.1, 0.5, 0.9], "quantile levels in [0, 1]", quantile_list)}

    def _names(self):
        v = self.values
        return [f"fcd_{s}" for s in v["stats"]] + [f"fcd_{_pct(q)}" for q in v["quantiles"]]

    def min_samples(self):
        v = self.values  # >= 3 window pairs at lag >= min_lag
        return _n_windows_needed(v["min_lag"] + 2, v["win_len"], v["win_sp"], v["include_last"])

    def n_pairs(self, n_samples: int) -> int:
        """FCD entries at window lags >= min_lag on ``n_samples`` samples: the values the statistics see."""
        v = self.values
        last = n_samples - v["win_len"] + (1 if v["include_last"] else 0)
        n_win = max(0, -(-last // v["win_sp"])) if last > 0 else 0
        m = max(0, n_win - v["min_lag"])
        return m * (m + 1) // 2

    def warnings(self, n_samples: int) -> list[str]:
        n = self.n_pairs(n_samples)
        if n >= FCD_MIN_PAIRS:
            return []
        v = self.values
        return [f"fcd_stats: only {n} window pairs at lag >= {v['min_lag']} in {n_samples} BOLD samples "
                f"(win_len {v['win_len']}, win_sp {v['win_sp']}): its {', '.join(self.names)} are statistics "
                f"of {n} values (a kurtosis of 3 values is -1.5 whatever the data). Lengthen simulation.length, "
                "lower min_lag, or leave fcd_stats out"]

    def compute(self, batch):
        v = self.values
        F = batch.fcd(v["win_len"], v["win_sp"], v["include_last"])
        stats = ["var" if s == "fluidity" else s for s in v["stats"]]
        return moments(triu_values(F, v["min_lag"]), stats, v["quantiles"])


class HomotopicFc(Feature):
    """Mean Pearson FC (negatives kept) over homotopic pairs (left[k], right[k]). Name homotopic_fc_mean."""

    name = "homotopic_fc"
    params = {"hemispheres": HEMIS}

    def _names(self):
        return ["homotopic_fc_mean"]

    def compute(self, batch):
        h = self.values["hemispheres"]
        return _per_sim(batch.fc()[:, h.left, h.right], "mean")[:, None]


def _eig_count(v: Any, ctx: Context) -> int:
    n = positive_int(v, ctx)
    if n > ctx.n_regions:
        raise ValueError(f"asks for {n} eigenvalues of a {ctx.n_regions}-region FC")
    return n


class FcEigenvalues(Feature):
    """The n largest eigenvalues of the FC matrix (diagonal 1), descending. Names fc_eig1..fc_eig<n>."""

    name = "fc_eigenvalues"
    params = {"n": Param(3, "how many leading eigenvalues", _eig_count)}

    def _names(self):
        return [f"fc_eig{i + 1}" for i in range(self.values["n"])]

    def compute(self, batch):
        c = batch.fc()
        out = np.full((c.shape[0], self.values["n"]), np.nan)
        ok = np.isfinite(c).all(axis=(1, 2))  # LAPACK may raise on NaN: skip those rows
        if ok.any():
            out[ok] = np.linalg.eigvalsh(c[ok])[:, ::-1][:, : self.values["n"]]
        return out


STRUCTURE_STATS = ("r_sc", "r_logsc", "r_length")


def _structure_stats(v: Any, ctx: Context) -> list[str]:
    stats = choice_list(STRUCTURE_STATS)(v, ctx)
    info = ctx.regions
    if info is None or info.sc is None:
        raise ValueError("needs the connectome's structural connectivity, which this context does not have")
    if "r_length" in stats and (info.lengths is None or not np.any(info.lengths > 0)):
        raise ValueError("r_length needs tract lengths, and the connectome has none")
    return stats


class FcStructure(Feature):
    """Structure-function coupling: Pearson r of the FC upper triangle with the connectome's SC as read
    (symmetrised), with log(1 + SC) and with the tract lengths (pairs with a tract only); definitions in
    stats/structure.py. Unchanged when a component shared by all regions moves every correlation alike
    (FC -> a FC + b), which a model without such a component cannot match in fc_mean. Names fc_<stat>."""

    name = "fc_structure"
    params = {"stats": Param(list(STRUCTURE_STATS), "r of the FC upper triangle with the connectome's SC as read "
                             "(r_sc), log(1 + SC) (r_logsc), tract lengths (r_length); names fc_<stat>",
                             _structure_stats)}

    def __init__(self, values: dict[str, Any], ctx: Context):
        super().__init__(values, ctx)
        self._structure = Structure(ctx.regions.sc, ctx.regions.lengths)

    def _names(self):
        return [f"fc_{s}" for s in self.values["stats"]]

    def compute(self, batch):
        s = self._structure
        upper = batch.fc()[:, s.iu[0], s.iu[1]]
        cols = {"r_sc": lambda: triu_corr_rows(upper, s.sc),
                "r_logsc": lambda: triu_corr_rows(upper, s.log_sc),
                "r_length": lambda: triu_corr_rows(upper, s.length, s.has_length)}
        return np.stack([cols[n]() for n in self.values["stats"]], axis=1)


CONTRAST_STATS = ("homotopic_z", "hemisphere_z", "spread")


class FcContrast(Feature):
    """Where the strong correlations sit, in units of the FC's spread, and that spread relative to the room
    left below 1: homotopic_z = (mean FC over homotopic pairs - mean FC) / std FC; hemisphere_z = (mean FC
    within hemispheres - mean FC between) / std FC (regions outside both hemisphere lists ignored);
    spread = std FC / (1 - mean FC). All over the upper triangle. A signal shared by every region (with
    equal variances) maps FC to a FC + (1 - a): none of the three moves. Names fc_<stat>."""

    name = "fc_contrast"
    params = {"stats": Param(list(CONTRAST_STATS), "homotopic_z, hemisphere_z: mean FC of homotopic pairs minus "
                             "the mean, within minus between hemispheres, in FC standard deviations; spread = "
                             "std / (1 - mean); names fc_<stat>", choice_list(CONTRAST_STATS)),
              "hemispheres": HEMIS}

    def _names(self):
        return [f"fc_{s}" for s in self.values["stats"]]

    def compute(self, batch):
        c, h = batch.fc(), self.values["hemispheres"]
        mu_sd = row_stats(triu_values(c, 1), ["mean", "std"])
        mu, sd = mu_sd[:, 0], mu_sd[:, 1]
        n = c.shape[1]
        side = np.full(n, -1)
        side[h.left], side[h.right] = 0, 1
        i, j = np.triu_indices(n, 1)
        both = (side[i] >= 0) & (side[j] >= 0)
        within, between = both & (side[i] == side[j]), both & (side[i] != side[j])
        cols = {"homotopic_z": lambda: (_per_sim(c[:, h.left, h.right], "mean") - mu) / sd,
                "hemisphere_z": lambda: (c[:, i[within], j[within]].mean(axis=1)
                                         - c[:, i[between], j[between]].mean(axis=1)) / sd,
                "spread": lambda: sd / (1.0 - mu)}
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack([cols[s]() for s in self.values["stats"]], axis=1)


class BoldRegionStats(Feature):
    """Mean and/or std (ddof 0) of BOLD per region over time: N values each.
    Names bold_<stat>_<region index>."""

    name = "bold_region_stats"
    params = {"stats": Param(["mean", "std"], "from ['mean', 'std']", choice_list(("mean", "std")))}

    def _names(self):
        n = self.ctx.n_regions
        return [f"bold_{s}_{i}" for s in self.values["stats"] for i in range(n)]

    def min_samples(self):
        return 2

    def compute(self, batch):
        x = batch.bold
        per_region = row_stats(x.transpose(0, 2, 1).reshape(-1, x.shape[1]), self.values["stats"])
        # (B*N, s) -> (B, s*N): all means, then all stds
        return per_region.reshape(x.shape[0], x.shape[2], -1).transpose(0, 2, 1).reshape(x.shape[0], -1)


FEATURES: dict[str, type[Feature]] = {
    cls.name: cls for cls in (BoldFcdForSbi, FcStats, FcdStats, HomotopicFc, FcEigenvalues, FcStructure,
                               FcContrast, BoldRegionStats)
}
