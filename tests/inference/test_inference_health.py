"""Simulation health in the report: diverged fraction per prior region, artefact counts, warnings."""
from __future__ import annotations

import numpy as np

from tvbinv_hpc.inference.health import divergence_by_parameter, health_lines, simulation_health


def test_divergence_is_located_in_the_prior():
    rs = np.random.default_rng(0)
    theta = np.column_stack([rs.uniform(0, 1, 1000), rs.uniform(-5, -4, 1000)])
    diverged = theta[:, 0] > 0.8                                           # strong coupling diverges
    per = divergence_by_parameter(theta, diverged, ["a", "eta"])
    fa, fe = per["a"]["diverged_fraction"], per["eta"]["diverged_fraction"]
    assert fa[:3] == [0.0, 0.0, 0.0] and fa[4] == 1.0
    assert max(fe) - min(fe) < 0.1 and per["a"]["edges"][0] == theta[:, 0].min()


def test_health_warns_above_five_percent_and_names_where():
    rs = np.random.default_rng(1)
    theta = rs.uniform(0, 1, (200, 1))
    status = np.where(theta[:, 0] > 0.9, 2, 1)
    status[:5] = 0                                                         # pending rows are not counted
    h = simulation_health(theta, status, ["coupling.a"], diverged_code=2, done_codes=(1, 2, 3),
                          sessions=[{"kind": "sims", "rows_common_trend": 3}, {"kind": "ppc sims"}])
    assert h["n_done"] == 195 and h["n_diverged"] == int((status == 2).sum())
    assert h["n_common_trend"] == 3 and len(h["warnings"]) == 2          # 3 of 195: > 1 %
    assert "conditional on not diverging" in h["warnings"][0] and "coupling.a in [" in h["warnings"][0]
    text = "\n".join(health_lines(h))
    assert "Diverged fraction per prior quintile" in text and "| coupling.a |" in text
    quiet = simulation_health(theta, np.ones(200, int), ["coupling.a"], diverged_code=2, done_codes=(1, 2))
    assert quiet["warnings"] == [] and "by_parameter" not in quiet and quiet["n_common_trend"] is None
    few = simulation_health(theta, np.ones(200, int), ["coupling.a"], diverged_code=2, done_codes=(1, 2),
                            sessions=[{"kind": "sims", "rows_common_trend": 2}])
    assert few["warnings"] == [] and "2 with BOLD dominated" in "\n".join(health_lines(few))
