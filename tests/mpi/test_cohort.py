"""A cohort: one trained posterior applied to three subjects in one `run` (mpiexec -n 2), each subject with
its own checks and folder, and a cohort table with a subject dimension."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import xarray as xr

pytestmark = pytest.mark.mpi

EXTRA = """
[train]
max_epochs = 40
hidden_features = 16
num_transforms = 2

[diagnose]
num_samples = 300
sbc_rows = 20
sbc_samples = 60
ppc_draws = 4
plots = false
"""


def _subjects(cfg, tmp_path):
    """Two subjects simulated by the model itself (in three file formats between them) and one whose
    regions all share one signal (FC near 1: no weak-coupling simulation reaches it)."""
    from tvbinv_hpc import pipeline
    from tvbinv_hpc.parallel import driver

    s = pipeline.build_setup(pipeline.load_config(str(cfg)))
    theta = np.array([[0.1, -4.6], [0.3, -4.6]])
    _, status, bold = driver.simulate_batch(s, theta, np.array([10**7, 10**7 + 1]))
    assert (status == 1).all()
    d = tmp_path / "subjects"
    d.mkdir()
    np.save(d / "sub-01.npy", bold[0].astype(np.float64))
    scipy.io.savemat(d / "sub-02.mat", {"tc": bold[1].T.astype(np.float64)})     # region x time, as labs have it
    rng = np.random.default_rng(5)
    shared = rng.standard_normal((bold.shape[1], 1))
    np.savetxt(d / "sub-03.csv", shared + 0.05 * rng.standard_normal(bold.shape[1:]), delimiter=",")
    return d


def test_cohort_of_three_in_one_run(run_mpi, small_config, tmp_path):
    cfg = small_config(n_sims=160, extra=EXTRA)
    d = _subjects(cfg, tmp_path)
    cfg.write_text(cfg.read_text() + f'\n[observation]\nsource = "{d}/sub-*"\ntr = 500.0\n')
    res = run_mpi(2, ["-m", "tvbinv_hpc", "run", str(cfg)], timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    diag = tmp_path / "out" / "diagnostics"
    for name in ("sub-01", "sub-02", "sub-03"):
        for f in ("posterior.nc", "summary.json", "report.md"):
            assert (diag / "subjects" / name / f).is_file(), (name, f)
        assert (tmp_path / "out" / f"ppc_{name}.h5").is_file()
        assert f"prior predictive check ({name})" in res.stderr or f"PRIOR PREDICTIVE CHECK ({name})" in res.stderr
    cohort = xr.open_dataset(diag / "cohort.nc")
    assert list(cohort["subject"].values) == ["sub-01", "sub-02", "sub-03"]
    assert cohort["post_mean"].shape == (3, 2) and list(cohort["param"].values) == ["coupling.a", "model.eta"]
    assert np.isfinite(cohort["ppc_fc_corr"].values).all() and np.isfinite(cohort["r_fc_sc"].values).all()
    assert np.isfinite(cohort["ppc_fc_corr_draw_median"].values).all()
    verdicts = list(cohort["prior_check"].values)
    assert verdicts[2] != "inside", verdicts            # the all-synchronous subject is out of reach
    summary = json.loads((diag / "summary.json").read_text())
    assert summary["cohort"] and set(summary["subjects"]) == {"sub-01", "sub-02", "sub-03"}
    assert summary["test"]["n_rows"] > 0                # calibration once, for the posterior
    report = (diag / "report.md").read_text()
    assert "Cohort diagnostics: 3 subjects" in report and "| sub-03 | **" in report
    # every subject is diagnosed with the same calibration: one SBC, not three
    assert res.stderr.count("diagnose: calibration on up to") == 1
    # the cohort's subject reports carry their names
    assert (diag / "subjects" / "sub-02" / "report.md").read_text().startswith("# Posterior diagnostics: sub-02")
