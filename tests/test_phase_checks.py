"""Every phase checks what it will need before spending compute (issue 13): `simulate` validates the
observation like `run` does; `status`/`inspect` speak as read-only tools; the progress line counts
diverged rows across sessions as it counts done rows."""
from __future__ import annotations

import logging

import numpy as np
import pytest


@pytest.mark.parametrize("make,message", [
    (lambda: np.random.default_rng(0).normal(size=(20, 9)), "region"),
    (lambda: np.where(np.arange(160).reshape(20, 8) == 17, np.nan, np.random.default_rng(0).normal(size=(20, 8))),
     "NaN"),
    (None, "obs.npy"),  # missing file
], ids=["regions", "nan", "missing"])
def test_simulate_checks_the_observation_before_any_simulation(run_cli, small_config, tmp_path, make, message):
    if make is not None:
        np.save(tmp_path / "obs.npy", make())
    cfg = small_config(extra=f'\n[observation]\nsource = "{tmp_path / "obs.npy"}"\n')
    res = run_cli(["simulate", str(cfg)], timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "obs.npy" in res.stderr, res.stderr[-2000:]
    assert not (tmp_path / "out" / "store.h5").exists()


def test_simulate_checks_the_synthetic_observation_theta(run_cli, small_config, tmp_path):
    cfg = small_config(extra='\n[observation]\ntheta = { "model.nope" = 1.0 }\n')
    res = run_cli(["simulate", str(cfg)], timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "observation.theta.model.nope" in res.stderr
    assert not (tmp_path / "out" / "store.h5").exists()


@pytest.mark.parametrize("verb", ["status", "inspect"])
def test_status_and_inspect_speak_as_read_only_tools(run_cli, tmp_path, verb):
    notes = tmp_path / "notes.h5"
    notes.write_text("not a store")
    res = run_cli([verb, str(notes)], timeout=60)
    assert res.returncode == 2
    assert "cannot read" in res.stderr and "not a tvbinv_hpc store" in res.stderr, res.stderr
    assert "refusing" not in res.stderr and "overwrite" not in res.stderr, res.stderr
    assert notes.read_text() == "not a store"
    res = run_cli([verb, str(tmp_path / "nope.h5")], timeout=60)
    assert res.returncode == 2 and "nope.h5: no such file" in res.stderr, res.stderr
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something else"
    res = run_cli([verb, str(tmp_path / "other.h5")], timeout=60)
    assert res.returncode == 2 and "is not a tvbinv_hpc store" in res.stderr, res.stderr
    assert "refusing" not in res.stderr


def test_progress_counts_diverged_rows_of_earlier_sessions(caplog):
    from tvbinv_hpc.parallel.progress import Progress

    caplog.set_level(logging.INFO, logger="tvbinv_hpc")
    logger = logging.getLogger("tvbinv_hpc")
    old = logger.propagate
    logger.propagate = True  # the CLI turns it off; caplog listens on the root logger
    try:
        p = Progress(total=20, already=8, mode="log", already_diverged=3)
        p.update(4, 1, force=True)
    finally:
        logger.propagate = old
    assert "12/20 sims done, 4 diverged, 8 pending" in caplog.text


def test_restarted_simulate_reports_diverged_rows_across_sessions(run_cli, small_config, tmp_path):
    import h5py

    from tvbinv_hpc.parallel import store

    cfg = small_config(n_sims=12)
    res = run_cli(["simulate", str(cfg)], timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    path = tmp_path / "out" / "store.h5"
    # As if an earlier session had finished rows 0-5 with two of them diverged: rows 6-11 are left to do.
    with h5py.File(path, "r+") as f:
        status = f["status"][...]
        status[[1, 4]] = store.DIVERGED
        status[6:] = store.PENDING
        f["status"][...] = status
    res = run_cli(["simulate", str(cfg)], timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    last = [line for line in res.stderr.splitlines() if "sims done" in line][-1]
    assert "12/12 sims done, 2 diverged, 0 pending" in last, res.stderr[-2000:]


def test_simulate_without_an_observation_of_its_own_checks_none():
    from tvbinv_hpc import config
    from tvbinv_hpc.pipeline import observation_configured

    prior = {"coupling.a": {"dist": "uniform", "low": 0.0, "high": 0.4}}
    assert not observation_configured(config.validate({"prior": prior}))  # the default is not needed
    for given in ({"source": "obs.npy"}, {"theta": {"coupling.a": 0.3}}, {"index": 5}):
        assert observation_configured(config.validate({"prior": prior, "observation": given})), given
