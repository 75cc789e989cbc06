"""Homotopic pairing from the data: labels of every common style, mirrored centres, stated layouts —
and a clear error (not index halves) when nothing tells."""
from __future__ import annotations

import numpy as np
import pytest

from tvbinv_hpc.stats.hemispheres import RegionInfo, from_centres, from_labels, parse, resolve


def pairs(h):
    return sorted(zip(h.left.tolist(), h.right.tolist()))


@pytest.mark.parametrize("labels,expected", [
    (["Precentral_L", "Precentral_R", "Frontal_Sup_2_L", "Frontal_Sup_2_R"], [(0, 1), (2, 3)]),   # AAL2
    (["rA1", "rV1", "lA1", "lV1"], [(2, 0), (3, 1)]),                                             # TVB 76
    (["ctx-lh-insula", "ctx-rh-insula", "ctx-lh-cuneus", "ctx-rh-cuneus"], [(0, 1), (2, 3)]),     # FreeSurfer
    (["r_insula", "l_insula", "Left-Amygdala", "Right-Amygdala"], [(1, 0), (2, 3)]),
    (["7Networks_LH_Vis_1", "7Networks_RH_Vis_1", "7Networks_LH_SomMot_1", "7Networks_RH_SomMot_1"],
     [(0, 1), (2, 3)]),                                                                           # Schaefer
])
def test_labels_pair_equal_stems(labels, expected):
    h, why = from_labels(labels)
    assert h is not None, why
    assert pairs(h) == sorted(expected)


def test_labels_with_midline_regions_and_without_markers():
    h, _ = from_labels(["A_L", "A_R", "B_L", "B_R", "Vermis_1"])
    assert pairs(h) == [(0, 1), (2, 3)] and "1 unpaired" in h.how
    h, why = from_labels([f"region_{i}" for i in range(8)])
    assert h is None and "0 of 8" in why


def test_tvb_data_connectomes_pair_by_labels():
    from tvbinv_hpc.sim.connectome import load_connectome

    c = load_connectome("connectivity_76")
    h = resolve("auto", 76, c.regions)
    # connectivity_76 lists the 38 right regions, then the same 38 left ones: the pairs are the halves'
    assert pairs(h) == sorted(zip(range(38, 76), range(38)))
    assert "region labels" in h.how


def test_centres_mirror_across_the_midline():
    rng = np.random.default_rng(1)
    left = np.c_[-rng.uniform(10, 60, 10), rng.uniform(-80, 60, (10, 2))]
    right = left * [-1, 1, 1] + rng.normal(0, 1, (10, 3))
    order = rng.permutation(20)
    centres = np.r_[left, right][order]
    h, why = from_centres(centres)
    assert h is not None, why
    inv = np.argsort(order)
    assert pairs(h) == sorted(zip(inv[:10].tolist(), inv[10:].tolist()))
    h, why = from_centres(np.c_[rng.uniform(-60, 60, 20), rng.uniform(-80, 60, (20, 2))])
    assert h is None and "do not mirror" in why


def test_interleaved_halves_and_lists():
    assert pairs(parse("interleaved", 6)) == [(0, 1), (2, 3), (4, 5)]
    assert pairs(parse("halves", 6)) == [(0, 3), (1, 4), (2, 5)]
    assert pairs(parse({"left": [5, 0], "right": [1, 4]}, 6)) == [(0, 4), (5, 1)]
    with pytest.raises(ValueError, match="even number"):
        parse("interleaved", 5)


def test_auto_uses_the_connectomes_statement_else_asks():
    h = resolve("auto", 4, RegionInfo(("a", "b", "c", "d"), None, "interleaved"))
    assert pairs(h) == [(0, 1), (2, 3)] and "connectome.hemispheres" in h.how
    with pytest.raises(ValueError, match=r"cannot tell left from right.*interleaved.*halves"):
        resolve("auto", 4, RegionInfo(("a", "b", "c", "d")))
    # a feature's own statement wins over the connectome's
    assert pairs(resolve("halves", 4, RegionInfo((), None, "interleaved"))) == [(0, 2), (1, 3)]
