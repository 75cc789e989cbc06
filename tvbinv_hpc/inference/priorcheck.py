"""Prior predictive check: do the simulations reach the observation?

NPE learns q(theta | x) only where the training x lie. For an observation outside that cloud the network
still returns a posterior, but it is an extrapolation, and the calibration on held-out simulations (SBC,
coverage) cannot reveal it: those rows come from the same cloud. So before training (and again in the
report) the observation is placed among the simulated training features in two ways.

Per feature: its mid-rank percentile among the simulated values, whether it lies outside the simulated
[min, max] (the network never saw such a value) or outside the central CENTRAL interval (it saw a few).

Jointly: features that are each inside their range can still combine into a point no simulation is near
(a high FC mean with a low FC std when the two rise together). The joint distance is a Mahalanobis
distance of normal scores (a Gaussian copula): each feature is mapped through its empirical CDF and the
standard normal quantile function, so every feature has the same N(0, 1) marginal whatever its tails,
and beyond the simulated range the map continues with the slope of its own outer 10 %. Two simpler
spaces were measured and rejected (2000 simulations: two normal features, a t(2) and a log-normal one):
on median/IQR-scaled values a heavy-tailed feature dominates the simulations' own distances, and after
asinh (the posterior's embedding, ``train.RobustFeatures``) an observation 6.7 sd out on a normal feature
(3 sd past its maximum) got p = 0.03 (normal scores: 0.0015). Features are strongly correlated (FC mean,
FC quantiles, FC_SUM, homotopic FC) and often nearly collinear, so the covariance is Ledoit-Wolf shrunk
towards a multiple of the identity, which keeps it invertible and its inverse stable. The observation's
distance is ranked among the simulations' own distances, each computed with the transform and covariance
fitted on the other folds (N_FOLDS-fold cross-fitting), and the observation is ranked against each fold
with that fold's fit: both are then out-of-sample for the same estimator, which an in-sample ranking is
not (in-sample distances are biased low when k is not small against n). The rank gives a conformal
p-value, uniform when the observation is exchangeable with the simulations.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import ndtri

from tvbinv_hpc.errors import InputError
from tvbinv_hpc.inference import vectors

CENTRAL = (0.01, 0.99)   # "tail": outside the 1-99 % interval; a handful of rows in a thousand that far out
P_EDGE = 0.05            # joint distance beyond 95 % of the simulations: few simulations near the observation
P_OUTSIDE = 0.01         # beyond 99 %: the flow's density there rests on the last percent of its training rows
# A feature past the simulated [min, max] makes the verdict "outside" when it is past by more than this, in
# normal-score units (the feature's own tail slope, so a heavy tail is not penalised for its long spacings),
# or when n is large enough that being past the range at all is rare (2 / (n + 1) below P_OUTSIDE / k).
# A genuine draw lands past the extreme of n simulations with probability 2 / (n + 1) per feature, so with
# few simulations "just past the range" is common and only "at the edge". Measured with observations that
# are one more simulation (k = 15 normal features, n = 64; k = 25 normal, t(2), log-normal and uniform
# features, n = 300 and 2000): "outside" for 0.7 %, 1 % and 1.7 % of them at 2.0 (at 1.0: 4 % for n = 64).
# Heavy-tailed features with n = 64 still give 4 %: so few simulations cannot tell a long tail from a miss.
EXCESS_OUTSIDE = 2.0
N_FOLDS = 10             # each fit uses 90 % of the rows, the ranking all of them
MIN_ROWS_JOINT = 30      # fewer finite rows: no joint distance (the per-feature table still stands)
N_CONTRIBUTORS = 3       # features named as the largest contributions to the joint distance
FLAG_NAMES = ("", "tail", "outside range")   # per-feature flag codes 0, 1, 2


def ledoit_wolf(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, Ledoit-Wolf (2004) shrunk covariance and shrinkage intensity of ``z (n, p)``.

    Sigma = s * mu * I + (1 - s) * S with S the ML covariance, mu = tr(S) / p and s estimated from the
    data (the same estimator as scikit-learn's ``ledoit_wolf``); s near 0 when n >> p.
    """
    n, p = z.shape
    mean = z.mean(axis=0)
    zc = z - mean
    s = zc.T @ zc / n
    mu = np.trace(s) / p
    delta2 = ((s - mu * np.eye(p)) ** 2).sum() / p
    # (1/n^2) sum_i ||z_i z_i' - S||_F^2 / p, using sum_i z_i' S z_i = n ||S||_F^2
    beta2 = (((zc ** 2).sum(axis=1) ** 2).sum() / n - (s ** 2).sum()) / (n * p)
    shrink = 1.0 if delta2 <= 0 else float(min(beta2, delta2) / delta2)
    return mean, shrink * mu * np.eye(p) + (1 - shrink) * s, shrink


class _Fit:
    """Normal-score transform and shrunk covariance fitted on some rows; ``distance`` of other rows."""

    def __init__(self, x: np.ndarray):
        self.maps = [self.column_map(c) for c in x.T]
        self.mean, cov, self.shrinkage = ledoit_wolf(self.embed(x))
        self.chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) / len(cov) * np.eye(len(cov)))

    @staticmethod
    def column_map(col: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Distinct values, their normal scores Phi^-1(mid-rank / (n + 1)) and the tail slopes dz/dx."""
        u, counts = np.unique(col, return_counts=True)
        z = ndtri((np.cumsum(counts) - (counts - 1) / 2.0) / (len(col) + 1))
        if u.size < 2:   # constant: no scale; the joint distance leaves such columns out
            return u, z, np.inf, np.inf
        m = min(u.size - 1, max(5, u.size // 10))   # mean slope over the outer 10 %: the last gaps are noise
        return u, z, (z[m] - z[0]) / (u[m] - u[0]), (z[-1] - z[-1 - m]) / (u[-1] - u[-1 - m])

    def embed(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        out = np.empty(x.shape)
        for j, (u, z, lo, hi) in enumerate(self.maps):
            v = x[:, j]
            # constant in these rows only (it varies in others): past its value, count raw units
            lo, hi = (t if np.isfinite(t) else 1.0 for t in (lo, hi))
            out[:, j] = np.where(v > u[-1], z[-1] + (v - u[-1]) * hi,
                                 np.where(v < u[0], z[0] - (u[0] - v) * lo, np.interp(v, u, z)))
        return out

    def whiten(self, x: np.ndarray) -> np.ndarray:
        return np.linalg.solve(self.chol, (self.embed(x) - self.mean).T).T

    def distance(self, x: np.ndarray) -> np.ndarray:
        return np.sqrt((self.whiten(x) ** 2).sum(axis=1))

    def contributions(self, x_obs: np.ndarray) -> np.ndarray:
        """e_j (Sigma^-1 e)_j per feature, e = embedded x_obs - mean: sums to the squared distance."""
        e = self.embed(x_obs)[0] - self.mean
        return e * np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, e))


def per_feature(x_sim: np.ndarray, x_obs: np.ndarray) -> dict[str, np.ndarray]:
    """Where ``x_obs (k,)`` lies in each column of ``x_sim (n, k)``.

    percentile: 100 * (#below + #equal / 2) / n (mid-rank, so a constant feature equal to the observation
    is at 50); p_value: two-sided conformal, 2 * min(#<= obs + 1, #>= obs + 1) / (n + 1), capped at 1;
    excess: how far beyond [min, max] in normal-score units, the distance times the slope of the normal
    scores over the outer 5 % of that side (about sd for a normal feature; 0 inside, inf for a feature the
    simulations never vary).
    """
    n = len(x_sim)
    below, equal = (x_sim < x_obs).sum(axis=0), (x_sim == x_obs).sum(axis=0)
    q = np.quantile(x_sim, [CENTRAL[0], 0.5, CENTRAL[1]], axis=0)
    lo, hi = x_sim.min(axis=0), x_sim.max(axis=0)
    maps = [_Fit.column_map(c) for c in x_sim.T]
    slope_lo, slope_hi = np.array([m[2] for m in maps]), np.array([m[3] for m in maps])
    with np.errstate(invalid="ignore"):   # 0 * inf in the branch np.where discards
        excess = np.where(x_obs > hi, (x_obs - hi) * slope_hi, np.where(x_obs < lo, (lo - x_obs) * slope_lo, 0.0))
    outside = (x_obs < lo) | (x_obs > hi)
    tail = (x_obs < q[0]) | (x_obs > q[2])
    return {"q_low": q[0], "q50": q[1], "q_high": q[2], "min": lo, "max": hi,
            "percentile": 100.0 * (below + 0.5 * equal) / n,
            "p_value": np.minimum(1.0, 2.0 * np.minimum(below + equal + 1, n - below + 1) / (n + 1)),
            "excess": excess,
            "flag": np.where(outside, 2, np.where(tail, 1, 0)).astype(np.int8)}


def joint_distance(x_sim: np.ndarray, x_obs: np.ndarray, names: Sequence[str],
                   n_folds: int = N_FOLDS) -> dict[str, Any]:
    """Cross-fitted normal-score Mahalanobis distance of ``x_obs`` and its rank among the simulations.

    Constant columns are left out (no spread to measure in; an observation off their value is already
    "outside range"). Also returns how often a simulation falls outside the other folds' [min, max] on
    at least one feature: the false-alarm rate of the per-feature range flags at this n and k.
    """
    n = len(x_sim)
    cols = x_sim.max(axis=0) > x_sim.min(axis=0)
    if n < MIN_ROWS_JOINT or not cols.any():
        why = (f"{n} finite simulations (< {MIN_ROWS_JOINT})" if n < MIN_ROWS_JOINT
               else "no simulated feature varies")
        return {"computed": False, "reason": why}
    xs, xo = x_sim[:, cols], x_obs[cols]
    fold = np.arange(n) % n_folds   # rows are i.i.d. prior draws: a fixed, seedless split is fine
    d_sim, d_obs = np.empty(n), np.empty(n_folds)
    below = greater = range_alarms = 0.0
    for j in range(n_folds):
        test = fold == j
        fit = _Fit(xs[~test])
        d_sim[test], d_obs[j] = fit.distance(xs[test]), fit.distance(xo)[0]
        below += (d_sim[test] < d_obs[j]).sum() + 0.5 * (d_sim[test] == d_obs[j]).sum()
        greater += (d_sim[test] >= d_obs[j]).sum()
        range_alarms += ((x_sim[test] < x_sim[~test].min(axis=0))
                         | (x_sim[test] > x_sim[~test].max(axis=0))).any(axis=1).sum()
    full = _Fit(xs)
    contrib = full.contributions(xo)
    order = [i for i in np.argsort(-contrib) if contrib[i] > 0][:N_CONTRIBUTORS]
    used = [nm for nm, c in zip(names, cols) if c]
    return {"computed": True, "observed": float(np.median(d_obs)),
            "sim_q50": float(np.quantile(d_sim, 0.5)), "sim_q99": float(np.quantile(d_sim, 0.99)),
            "percentile": float(100.0 * below / n), "p_value": float((1.0 + greater) / (n + 1.0)),
            "shrinkage": full.shrinkage, "n_features": int(cols.sum()), "n_folds": int(n_folds),
            "top_contributors": [used[i] for i in order],
            "top_contribution_share": [float(contrib[i] / contrib.sum()) for i in order],
            "range_false_alarm_rate": float(range_alarms / n)}


def prior_predictive_check(x_sim: Any, x_obs: Any, names: Sequence[str]) -> dict[str, Any]:
    """Place the observation ``x_obs (k,)`` among the simulated training features ``x_sim (n, k)``.

    Rows of ``x_sim`` with a NaN/Inf feature are dropped (they are not trained on either). Verdict:
    "outside" when a feature lies outside its simulated [min, max] by more than EXCESS_OUTSIDE (normal scores)
    (or at all, once n makes that significant; these features are ``extrapolated``) or the joint distance
    is beyond 1 - P_OUTSIDE of the simulations; "at the edge" when a feature lies just outside its range,
    the joint distance is beyond 1 - P_EDGE, or one feature's two-sided p-value is below P_EDGE / k
    (Bonferroni: with 25 features a third of the observations that are genuine draws would have some
    feature in a 1 % tail); else "inside".
    """
    x_sim, x_obs = np.asarray(x_sim, dtype=np.float64), np.asarray(x_obs, dtype=np.float64).ravel()
    names = list(names)
    if x_sim.ndim != 2 or x_sim.shape[1] != x_obs.size or len(names) != x_obs.size:
        raise InputError(f"prior predictive check: simulated x {x_sim.shape}, observation {x_obs.shape} "
                         f"and {len(names)} feature names do not match")
    if not np.isfinite(x_obs).all():
        raise InputError("prior predictive check: the observation has NaN/Inf features")
    finite = np.isfinite(x_sim).all(axis=1)
    x_sim = x_sim[finite]
    if len(x_sim) < 2:
        raise InputError(f"prior predictive check: {len(x_sim)} simulations with finite features")
    out: dict[str, Any] = {"names": names, "x_obs": x_obs, "n_sims": int(len(x_sim)),
                           "n_excluded": int((~finite).sum()), "central": list(CENTRAL),
                           "features": per_feature(x_sim, x_obs), "joint": joint_distance(x_sim, x_obs, names)}
    f, j = out["features"], out["joint"]
    out["outside_range"] = [names[i] for i in np.flatnonzero(f["flag"] == 2)]
    out["tail"] = [names[i] for i in np.flatnonzero(f["flag"] == 1)]
    range_significant = 2.0 / (len(x_sim) + 1) < P_OUTSIDE / len(names)
    far = (f["flag"] == 2) & ((f["excess"] > EXCESS_OUTSIDE) | range_significant)
    out["extrapolated"] = [names[i] for i in np.flatnonzero(far)]
    joint_p = j["p_value"] if j["computed"] else 1.0
    if out["extrapolated"] or joint_p < P_OUTSIDE:
        out["verdict"] = "outside"
    elif out["outside_range"] or joint_p < P_EDGE or (f["p_value"] < P_EDGE / len(names)).any():
        out["verdict"] = "at the edge"
    else:
        out["verdict"] = "inside"
    out["message"] = verdict_message(out)
    return out


def _feature_detail(check: dict[str, Any], name: str) -> str:
    i = check["names"].index(name)
    f = check["features"]
    if f["min"][i] == f["max"][i]:
        return f"{name}: observed {check['x_obs'][i]:.4g}, constant {f['min'][i]:.4g} in the simulations"
    return (f"{name}: observed {check['x_obs'][i]:.4g}, simulated {f['min'][i]:.4g} to {f['max'][i]:.4g}, "
            f"{f['excess'][i]:.2g} sd past it in normal scores")


def _joint_phrase(j: dict[str, Any]) -> str:
    top = ", ".join(j["top_contributors"])
    return (f"joint distance {j['observed']:.3g} exceeds that of {j['percentile']:.1f} % of the simulations "
            f"(p = {j['p_value']:.2g}" + (f"; largest contributions: {top}" if top else "") + ")")


def _details(check: dict[str, Any], names: list[str]) -> str:
    more = f" and {len(names) - 6} more" if len(names) > 6 else ""
    return "; ".join(_feature_detail(check, n) for n in names[:6]) + more


def _outside_message(check: dict[str, Any]) -> str:
    j, far = check["joint"], check["extrapolated"]
    near = [n for n in check["outside_range"] if n not in far]
    if far:
        # The wording, kept fixed even for one feature so that logs can be searched for it.
        msg = (f"the posterior would be an extrapolation: features {', '.join(far)} lie outside the "
               f"simulated range ({_details(check, far)})")
    else:
        msg = ("the posterior would be an extrapolation: no feature lies far outside its simulated range but "
               "their combination lies outside the simulated cloud")
    if near:
        msg += f"; just outside the range as well: {', '.join(near)}"
    if j["computed"] and j["p_value"] < P_OUTSIDE:
        msg += "; the " + _joint_phrase(j)
    return msg + "; widen the prior or change the model so that the simulations reach the observation"


def _edge_message(check: dict[str, Any]) -> str:
    j, near, k = check["joint"], check["outside_range"], len(check["names"])
    parts = []
    if near:
        rate = (f", as a simulation itself does against the others in {100 * j['range_false_alarm_rate']:.0f} % "
                "of cases" if j["computed"] else "")
        parts.append(f"features {', '.join(near)} lie just outside the simulated range ({_details(check, near)}), "
                     f"by less than {EXCESS_OUTSIDE:g} sd in normal scores{rate}")
    if j["computed"] and j["p_value"] < P_EDGE:
        parts.append("the " + _joint_phrase(j))
    tail = [n for n, p in zip(check["names"], check["features"]["p_value"]) if p < P_EDGE / k and n not in near]
    if tail:
        parts.append(f"features in the extreme tail: {', '.join(tail)}")
    return ("the observation lies at the edge of the simulations: " + "; ".join(parts)
            + "; the posterior rests on the few simulations near it, and more simulations would settle it")


def verdict_message(check: dict[str, Any]) -> str:
    """One sentence for the log and the report; the outside case says "the posterior would be an
    extrapolation" and names the features."""
    if check["verdict"] == "outside":
        return _outside_message(check)
    if check["verdict"] == "at the edge":
        return _edge_message(check)
    j = check["joint"]
    if j["computed"]:
        return (f"the observation lies inside the simulations (joint distance {j['observed']:.3g}, larger than "
                f"that of {j['percentile']:.1f} % of them; simulations' median {j['sim_q50']:.3g})")
    return f"the observation lies inside the simulated range of every feature (no joint distance: {j['reason']})"


def _num(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None   # JSON has no NaN


def _qkey(q: float) -> str:
    return f"sim_q{round(100 * q):02d}"


def to_summary(check: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready section of summary.json (per-feature numbers keyed by feature name)."""
    f = check["features"]
    lo, hi = _qkey(CENTRAL[0]), _qkey(CENTRAL[1])
    feats = {n: {"observed": _num(check["x_obs"][i]), lo: _num(f["q_low"][i]), "sim_q50": _num(f["q50"][i]),
                 hi: _num(f["q_high"][i]), "sim_min": _num(f["min"][i]), "sim_max": _num(f["max"][i]),
                 "percentile": _num(f["percentile"][i]), "p_value": _num(f["p_value"][i]),
                 "excess_normal_score": _num(f["excess"][i]), "flag": FLAG_NAMES[int(f["flag"][i])] or "ok"}
             for i, n in enumerate(check["names"])}
    return {"verdict": check["verdict"], "message": check["message"], "n_sims": check["n_sims"],
            "n_excluded": check["n_excluded"], "outside_range": check["outside_range"],
            "extrapolated": check["extrapolated"], "tail": check["tail"],
            "joint": dict(check["joint"]), "features": feats,
            "thresholds": {"central": list(CENTRAL), "p_edge": P_EDGE, "p_outside": P_OUTSIDE,
                           "excess_outside_normal_score": EXCESS_OUTSIDE,
                           "p_feature_edge": P_EDGE / len(check["names"]), "n_folds": N_FOLDS}}


def _g(v: Any) -> str:
    return "—" if v is None else f"{v:.4g}"


def report_lines(section: dict[str, Any]) -> list[str]:
    """Markdown lines of the report's "Prior predictive check" section, from ``to_summary``'s output."""
    j, t = section["joint"], section["thresholds"]
    lo, hi = _qkey(t["central"][0]), _qkey(t["central"][1])
    lines = [f"## Prior predictive check ({section['n_sims']} training simulations)", "",
             f"**Verdict: {section['verdict']}.** {section['message'][0].upper()}{section['message'][1:]}.", ""]
    if j["computed"]:
        lines += [f"Joint distance (Mahalanobis distance of normal scores over {j['n_features']} features, "
                  f"Ledoit-Wolf shrinkage {j['shrinkage']:.3g}, {j['n_folds']}-fold cross-fitted): "
                  f"observed {j['observed']:.3g}; simulations' median {j['sim_q50']:.3g}, 99th percentile "
                  f"{j['sim_q99']:.3g}. The observation is farther than {j['percentile']:.1f} % of the "
                  f"simulations (conformal p = {j['p_value']:.2g}; at the edge below {t['p_edge']:g}, "
                  f"outside below {t['p_outside']:g}). A simulation itself lies outside the others' range on "
                  f"some feature in {100 * j['range_false_alarm_rate']:.1f} % of cases: the false-alarm rate "
                  "of the range flags below.", ""]
    else:
        lines += [f"No joint distance: {j['reason']}.", ""]
    lines += [f"| feature | observed | sim {lo[4:]} | sim q50 | sim {hi[4:]} | percentile | flag |",
              "|---|---|---|---|---|---|---|"]
    feats = section["features"]
    names = list(feats)
    # 76 rows of bold_mean_<i> would bury the rest: a per-region set gets one row, its flagged regions theirs
    sets = vectors.split_features(names)[1] if len(names) > vectors.MAX_TABLE_FEATURES else {}
    in_set = {names[j] for c in sets.values() for j in c}
    for name, e in feats.items():
        if name in in_set and e["flag"] == "ok":
            continue
        flag = {"ok": "", "tail": "tail"}.get(e["flag"], f"**outside range** (+{_g(e['excess_normal_score'])} sd)")
        lines.append(f"| {name} | {_g(e['observed'])} | {_g(e[lo])} | {_g(e['sim_q50'])} | {_g(e[hi])} | "
                     f"{_g(e['percentile'])} | {flag} |")
    for base, cols in sets.items():
        e = [feats[names[j]] for j in cols]
        pct = [x["percentile"] for x in e if x["percentile"] is not None]
        n_flag = sum(x["flag"] != "ok" for x in e)
        lines.append(f"| {base}_* ({len(cols)} regions; flagged ones listed above) | — | — | — | — | median "
                     f"{_g(float(np.median(pct)) if pct else None)} | {n_flag} flagged |")
    return lines
