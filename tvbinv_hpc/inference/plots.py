"""PNG plots of the diagnostics (matplotlib, Agg backend: batch nodes have no display).

Each function takes parts of the ``diagnose`` result, writes one file and returns its path.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_PAIR_PARAMS = 8      # a pair plot beyond this is unreadable; marginals are always drawn
MAX_PPC_FEATURES = 36


def _grid(n: int, size: float = 2.6):
    cols = min(n, 4 if n > 4 else n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _note(fig, note: str) -> None:
    if note:   # says which parameters a capped plot shows
        fig.suptitle(note, fontsize=9)


def marginals(path: Path, samples: np.ndarray, prior_samples: np.ndarray, names: list[str],
              theta_true: np.ndarray | None = None, note: str = "") -> Path:
    """Posterior (filled) over prior (outline) histograms per parameter, truth as a red line."""
    fig, axes = _grid(len(names))
    _note(fig, note)
    for j, (ax, name) in enumerate(zip(axes, names)):
        lo = min(samples[:, j].min(), prior_samples[:, j].min())
        hi = max(samples[:, j].max(), prior_samples[:, j].max())
        bins = np.linspace(lo, hi, 41) if hi > lo else 10
        ax.hist(prior_samples[:, j], bins=bins, density=True, histtype="step", color="0.5", label="prior")
        ax.hist(samples[:, j], bins=bins, density=True, alpha=0.6, color="C0", label="posterior")
        if theta_true is not None:
            ax.axvline(theta_true[j], color="C3", lw=1.5, label="true")
        ax.set_title(name, fontsize=9)
        ax.set_yticks([])
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def pairs(path: Path, samples: np.ndarray, names: list[str], theta_true: np.ndarray | None = None,
          note: str = "") -> Path:
    """Corner plot: 1-d histograms on the diagonal, 2-d histograms below it."""
    d = len(names)
    fig, axes = plt.subplots(d, d, figsize=(2.2 * d, 2.2 * d), squeeze=False)
    _note(fig, note)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(samples[:, i], bins=40, color="C0")
                ax.set_yticks([])
                if theta_true is not None:
                    ax.axvline(theta_true[i], color="C3")
            else:
                ax.hist2d(samples[:, j], samples[:, i], bins=40, cmap="Blues")
                if theta_true is not None:
                    ax.plot(theta_true[j], theta_true[i], "r+", ms=10)
            if i == d - 1:
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=8)
    return _save(fig, path)


def sbc_ranks(path: Path, ranks: np.ndarray, n_samples: int, names: list[str], ks_pvals: np.ndarray,
              pooled: dict[str, list[int]] | None = None) -> Path:
    """Rank histograms per parameter with the 99 % band a uniform histogram stays in. ``pooled``: vectors
    (name -> columns) drawn as one histogram of all their regions' ranks, titled with how many regions fail
    the KS test (Bonferroni over all parameters); the band there assumes independent regions, which they
    are not within a test row, so it is a guide only."""
    pooled = pooled or {}
    taken = {j for c in pooled.values() for j in c}
    panels = [(f"{names[j]}  KS p={ks_pvals[j]:.2g}", [j]) for j in range(len(names)) if j not in taken]
    alpha = 0.05 / len(names)
    panels += [(f"{b}: {len(c)} regions pooled\nKS fails in {int((ks_pvals[c] < alpha).sum())}", c)
               for b, c in pooled.items()]
    n_bins = int(np.clip(ranks.shape[0] // 10, 5, 20))
    fig, axes = _grid(len(panels))
    for ax, (title, cols) in zip(axes, panels):
        r = ranks[:, cols].ravel()
        expected = r.size / n_bins
        band = 2.58 * np.sqrt(expected * (1 - 1 / n_bins))
        ax.axhspan(max(0, expected - band), expected + band, color="0.85")
        ax.hist(r, bins=np.linspace(0, n_samples, n_bins + 1), color="C0")
        ax.set_title(title, fontsize=9)
        ax.set_yticks([])
    return _save(fig, path)


def shrinkage_zscore(path: Path, shrink: np.ndarray, z: np.ndarray, names: list[str],
                     obs_shrink: np.ndarray | None = None, obs_z: np.ndarray | None = None,
                     pooled: dict[str, list[int]] | None = None) -> Path:
    """Test rows (and the observation when truth is known) in the shrinkage / z-score plane. ``pooled``:
    vectors drawn in one colour with one legend entry (76 entries would hide the plot)."""
    pooled = pooled or {}
    taken = {j for c in pooled.values() for j in c}
    series = [(names[j], [j], 8, 0.5) for j in range(len(names)) if j not in taken]
    series += [(f"{b} ({len(c)} regions)", c, 3, 0.15) for b, c in pooled.items()]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for i, (label, cols, size, alpha) in enumerate(series):
        ax.scatter(shrink[:, cols].ravel(), z[:, cols].ravel(), s=size, alpha=alpha, color=f"C{i % 10}",
                   label=label)
        if obs_shrink is not None and obs_z is not None:
            ax.scatter(obs_shrink[cols], obs_z[cols], s=80 if len(cols) == 1 else 25, marker="*",
                       edgecolor="k", linewidth=0.5, color=f"C{i % 10}")
    ax.set_xlabel("posterior shrinkage")
    ax.set_ylabel("posterior z-score")
    ax.set_xlim(min(-0.05, float(np.nanmin(shrink)) - 0.05), 1.05)
    ax.legend(fontsize=7, markerscale=2)
    return _save(fig, path)


def coverage(path: Path, levels: np.ndarray | None, empirical: np.ndarray | None,
             tarp_alpha: np.ndarray | None = None, tarp_ecp: np.ndarray | None = None) -> Path:
    """Empirical vs nominal coverage; above the diagonal = under-confident, below = over-confident."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    if levels is not None and empirical is not None:
        ax.plot(levels, empirical, "C0-o", ms=3, label="expected coverage (HPD)")
    if tarp_alpha is not None and tarp_ecp is not None:
        ax.plot(tarp_alpha, tarp_ecp, "C1-", label="TARP")
    ax.set_xlabel("credibility level")
    ax.set_ylabel("empirical coverage")
    ax.legend(fontsize=8)
    return _save(fig, path)


def ppc_features(path: Path, x_ppc: np.ndarray, x_obs: np.ndarray, names: list[str],
                 cols: list[int] | None = None) -> Path:
    """Posterior predictive histogram of each feature with the observed value (the first MAX_PPC_FEATURES
    of ``cols``, default all)."""
    good = x_ppc[np.isfinite(x_ppc).all(axis=1)]
    cols = list(range(len(names)) if cols is None else cols)[:MAX_PPC_FEATURES]
    n = len(cols)
    fig, axes = _grid(n, size=2.2)
    for i, ax in zip(cols, axes[:n]):
        if len(good):
            ax.hist(good[:, i], bins=20, color="C2", alpha=0.7)
        ax.axvline(x_obs[i], color="C3", lw=1.5)
        ax.set_title(names[i], fontsize=8)
        ax.set_yticks([])
    return _save(fig, path)


def fc_matrices(path: Path, fc_obs: np.ndarray, fc_pred: np.ndarray, fc_draw: np.ndarray | None = None,
                draw_title: str = "one draw") -> Path:
    """Observed FC, mean predicted FC (and one predictive draw's FC: what a single simulation of the data's
    length looks like), and the upper triangles against the observed one."""
    mats = [(fc_obs, "observed FC"), (fc_pred, "predicted FC (mean of draws)")]
    mats += [] if fc_draw is None else [(fc_draw, draw_title)]
    fig, axes = plt.subplots(1, len(mats) + 1, figsize=(4 * (len(mats) + 1), 4))
    for ax, (m, title) in zip(axes, mats):
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046)
    iu = np.triu_indices_from(fc_obs, k=1)
    if fc_draw is not None:
        axes[-1].scatter(fc_obs[iu], fc_draw[iu], s=3, alpha=0.3, color="C1", label="one draw")
    axes[-1].scatter(fc_obs[iu], fc_pred[iu], s=4, alpha=0.5, color="C0", label="mean of draws")
    axes[-1].plot([-1, 1], [-1, 1], "k--", lw=1)
    axes[-1].set_xlabel("observed")
    axes[-1].set_ylabel("predicted")
    if fc_draw is not None:
        axes[-1].legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def losses(path: Path, training_loss: list, validation_loss: list) -> Path:
    """Training and validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(training_loss) + 1), training_loss, label="training")
    ax.plot(np.arange(1, len(validation_loss) + 1), validation_loss, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (-log q)")
    ax.legend()
    return _save(fig, path)


def regions(path: Path, samples: np.ndarray, prior_samples: np.ndarray, name: str, regions_idx: list[int],
            shrink: np.ndarray, theta_true: np.ndarray | None = None) -> Path:
    """One vector parameter against the region index: posterior median and 90 % interval over the prior's
    90 % band (top), shrinkage per region (bottom). ``samples``, ``prior_samples``: (n, R) of its columns."""
    x = np.asarray(regions_idx)
    q05, q50, q95 = np.quantile(samples, [0.05, 0.5, 0.95], axis=0)
    p05, p95 = np.quantile(prior_samples, [0.05, 0.95], axis=0)
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(max(8.0, 0.13 * len(x)), 6), sharex=True,
                                 gridspec_kw={"height_ratios": [2, 1]})
    ax.fill_between(x, p05, p95, step="mid", color="0.88", label="prior 90 %")
    ax.vlines(x, q05, q95, color="C0", lw=1.2, label="posterior 90 %")
    ax.plot(x, q50, "o", color="C0", ms=3, label="posterior median")
    if theta_true is not None:
        ax.plot(x, theta_true, "x", color="C3", ms=5, label="true")
    ax.set_ylabel(name)
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    bx.bar(x, shrink, color="C0", width=0.8)
    bx.axhline(0.1, color="0.5", lw=0.8, ls="--")   # vectors.LOW_SHRINKAGE: below, barely constrained
    bx.set_ylabel("shrinkage")
    bx.set_xlabel("region index")
    bx.set_ylim(min(-0.1, float(np.nanmin(shrink)) - 0.05), 1.0)
    return _save(fig, path)


def ppc_regions(path: Path, x_ppc: np.ndarray, x_obs: np.ndarray, sets: dict[str, list[int]]) -> Path:
    """Per-region features (``bold_mean_<i>``...) against the region index: the posterior predictive's 90 %
    range and median, the observation as dots. One panel per feature set."""
    good = x_ppc[np.isfinite(x_ppc).all(axis=1)]
    n = max(len(c) for c in sets.values())
    fig, axes = plt.subplots(len(sets), 1, figsize=(max(8.0, 0.13 * n), 2.6 * len(sets)), squeeze=False)
    for ax, (base, cols) in zip(axes[:, 0], sets.items()):
        r = np.arange(len(cols))
        if len(good):
            lo, med, hi = np.quantile(good[:, cols], [0.05, 0.5, 0.95], axis=0)
            ax.fill_between(r, lo, hi, step="mid", color="C2", alpha=0.3, label="predictive 90 %")
            ax.plot(r, med, "-", color="C2", lw=1, label="predictive median")
            # one region switching state can span 50x the others' range: cut the axis at what most show
            top = max(float(np.nanmax(x_obs[cols])), float(np.nanquantile(hi, 0.9)))
            bottom = min(float(np.nanmin(x_obs[cols])), float(np.nanquantile(lo, 0.1)))
            pad = 0.1 * (top - bottom) or 1.0
            ax.set_ylim(bottom - pad, top + 2 * pad)   # headroom for the legend
        ax.plot(r, x_obs[cols], "o", color="C3", ms=3, label="observed")
        ax.set_ylabel(base)
        ax.legend(fontsize=7, ncol=3, loc="upper left")
    axes[-1, 0].set_xlabel("region index")
    return _save(fig, path)
