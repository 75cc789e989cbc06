"""The worked examples in examples/: every config validates against the real gw data it points at (each
subject's observation read, cut and checked), and one real subject runs end to end on a tiny budget —
its numbers are not asserted, only that every output and check is there."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import tomllib

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples" / "gw").glob("*.toml"))   # the real subjects; regions/ is synthetic
GW = ROOT.parent / "shared" / "data" / "empirical" / "gw"
needs_gw = pytest.mark.skipif(not GW.is_dir(), reason=f"the gw data are not at {GW}")


@needs_gw
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_validates_with_its_data(path, caplog):
    import logging

    from tvbinv_hpc import pipeline

    with caplog.at_level(logging.INFO, logger="tvbinv_hpc"):
        s = pipeline.prepare(str(path))
    obs = pipeline.observe_all(s)
    assert s.engine.n_regions == 80 and all(o.x.shape == (len(s.features.names),) for o in obs)
    assert s.features.hemispheres is not None and s.features.hemispheres.left.size == 40
    assert "connectome: 80 regions of 94" in caplog.text
    assert s.engine.physiology_warnings() == []


def test_every_example_is_checked():
    assert sorted((ROOT / "examples").rglob("*.toml")) == sorted(EXAMPLES + [ROOT / "examples" / "regions" /
                                                                             "eta76.toml"])


def test_the_per_region_example_validates():
    """examples/regions/eta76.toml: coupling + 76 regional eta on connectivity_76, per-region features, and
    a synthetic truth with six more excitable regions."""
    from tvbinv_hpc import pipeline
    from tvbinv_hpc.inference.observation import synthetic_theta

    s = pipeline.prepare(str(ROOT / "examples" / "regions" / "eta76.toml"))
    assert s.engine.n_regions == 76 and len(s.prior.names) == 77 and s.prior.names[1] == "model.eta[0]"
    assert sum(n.startswith("bold_mean_") for n in s.features.names) == 76
    theta = synthetic_theta(s)
    assert theta[0] == 0.55 and sorted(np.flatnonzero(theta[1:] == -4.5)) == [4, 11, 20, 42, 49, 58]


def _tiny(path: Path, tmp_path: Path) -> Path:
    """The example with a tiny budget, its data paths made absolute, outputs under tmp_path."""
    from tvbinv_hpc import config

    cfg = tomllib.loads(path.read_text())
    resolved = config.load(path)
    cfg["connectome"].update({k: resolved["connectome"][k] for k in ("source", "lengths")})
    cfg["observation"]["source"] = resolved["observation"]["source"]
    cfg["run"].update(output=str(tmp_path / "out"), progress="log")
    cfg["simulation"]["length"] = 11000.0            # 110 s: 46 TRs after the transient, enough for the FCD
    cfg["budget"].update(n_sims=64, test_fraction=0.125, batch_size=4)
    cfg["train"].update(max_epochs=5, ensemble=1, hidden_features=8, num_transforms=1)
    cfg["diagnose"].update(num_samples=200, sbc_rows=8, sbc_samples=40, ppc_draws=2)
    out = tmp_path / "tiny.toml"
    out.write_text(tomli_w.dumps(cfg))
    return out


@needs_gw
@pytest.mark.mpi
def test_a_real_subject_end_to_end(run_mpi, tmp_path):
    cfg = _tiny(ROOT / "examples" / "gw" / "NAP_001.toml", tmp_path)
    res = run_mpi(2, ["-m", "tvbinv_hpc", "run", str(cfg)], timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    diag = tmp_path / "out" / "diagnostics"
    for f in ("posterior.nc", "report.md", "summary.json", "fc_observed_vs_predicted.png", "marginals.png"):
        assert (diag / f).is_file(), f
    summary = json.loads((diag / "summary.json").read_text())
    assert summary["observation_source"].endswith("NAP_001/BOLD_rsfMRI.mat")
    assert summary["prior_check"]["verdict"] in ("inside", "at the edge", "outside")
    b = summary["baselines"]
    # The example only detrends the BOLD: its baselines are the data README's r(FC, SC) 0.25, r(FC, log(1 + SC))
    # 0.45 for NAP_001 (0.283 / 0.342 when the example regressed the global signal out).
    assert abs(b["r_fc_sc"] - 0.251) < 0.01 and abs(b["r_fc_logsc"] - 0.446) < 0.01
    assert summary["ppc"]["fc_corr"] is not None and "fcd" in summary["ppc"]
    assert summary["ppc"]["fc_corr_n_draws"] == 2 and summary["ppc"]["fc_corr_draw_median"] is not None
    assert "diverged" in json.dumps(summary["simulations"])
    report = (diag / "report.md").read_text()
    for section in ("## Prior predictive check", "## Posterior predictive check", "r(FC, log(1 + SC))",
                    "FCD agreement", "single draws: r median"):
        assert section in report, section
    assert "connectome: 80 regions of 94" in res.stderr and "from connectome.hemispheres = 'interleaved'" \
        in res.stderr and "linear detrend" in res.stderr
