"""The two ways in (config dict, TVB Simulator) give identical engines; unsupported settings are refused."""
from __future__ import annotations

import numpy as np
import pytest

from tests.sim.conftest import tvb_sim
from tvbinv_hpc.errors import ConfigError, InputError, TvbinvError
from tvbinv_hpc.sim import Engine
from tvbinv_hpc.sim.defaults import DEFAULTS, section

CFG = {
    "connectome": {"source": "connectivity_66", "speed": 3.0, "normalize": "max", "zero_diagonal": False},
    "model": {"tau": 1.0, "I": 0.0, "Delta": 0.7, "J": 14.5, "eta": -4.6, "cr": 1.0, "cv": 0.2},
    "coupling": {"a": 0.4, "b": 0.0},
    "integrator": {"dt": 0.01, "nsig": [0.035, 0.07]},
    "simulation": {"length": 20.0, "ms_per_unit": 10.0, "initial_history": "random"},
    "bold": {"tavg_period": 0.1, "tr": 10.0, "transient": 0.0, "warmup": 0.0},
}


def test_config_and_tvb_paths_are_identical():
    """At 1 ms per model unit (TVB's clock) a config and the TVB Simulator it describes are one engine."""
    import tvb.simulator.lab as lab
    cfg = {**CFG, "simulation": {**CFG["simulation"], "ms_per_unit": 1.0}, "bold": {**CFG["bold"], "tr": 1.0}}
    from_cfg = Engine.from_config(cfg, seed=7)
    sim = tvb_sim("connectivity_66", nstep=2000, a=0.4, cv=0.2, nsig=[0.035, 0.07],
                  monitors=[lab.monitors.TemporalAverage(period=0.1)])
    from_tvb = Engine.from_tvb(sim, seed=7, ms_per_unit=1.0, bold_tr=1.0)
    for attr in ("n_regions", "nstep", "horizon", "n_bold", "tr_ms", "dt", "istep", "speed_m_per_s"):
        assert getattr(from_cfg, attr) == getattr(from_tvb, attr), attr
    assert from_cfg.region_labels == from_tvb.region_labels
    values = {"coupling.a": np.array([0.3, 0.45, 0.4]), "model.eta": np.array([-4.6, -4.4, -4.8])}
    a = from_cfg.simulate(values, np.arange(3), record="tavg")
    b = from_tvb.simulate(values, np.arange(3), record="tavg")
    assert np.array_equal(a.bold, b.bold) and np.array_equal(a.tavg, b.tavg)
    assert a.status.tolist() == [1, 1, 1]


def test_speed_is_physical_and_tvb_keeps_its_semantics():
    """connectome.speed is m/s whatever ms_per_unit is; a TVB Simulator's speed is mm per model unit (TVB
    takes the unit as 1 ms), so at 10 ms per unit TVB's 30 is the config's 3 m/s (delays within rounding)."""
    from_cfg = Engine.from_config(CFG, seed=7)                       # 3 m/s, 10 ms per unit
    assert from_cfg.speed_m_per_s == 3.0
    sim = tvb_sim("connectivity_66", nstep=2000, speed=30.0)
    from_tvb = Engine.from_tvb(sim, seed=7, ms_per_unit=10.0, bold_tr=10.0)
    assert from_tvb.speed_m_per_s == pytest.approx(3.0)
    assert np.abs(from_cfg.idelays - from_tvb.idelays).max() <= 1
    assert from_cfg.max_delay_ms == pytest.approx(from_tvb.max_delay_ms, abs=0.1)
    # TVB's steps: rint(length / speed / dt) with dt in model units, bit for bit as TVB's Connectivity
    assert np.array_equal(from_tvb.idelays, sim.connectivity.idelays)
    tl = sim.connectivity.tract_lengths
    assert np.array_equal(from_cfg.idelays, np.rint(tl / 3.0 / (0.01 * 10.0)).astype(int))
    # physiology: an unphysiological speed and long delays are warned about, not refused
    slow = Engine.from_config({**CFG, "connectome": {**CFG["connectome"], "speed": 0.3}}, seed=0)
    warns = " ".join(slow.physiology_warnings())
    assert "0.3 m/s" in warns and "delays reach" in warns and not from_cfg.physiology_warnings()


def test_defaults_fill_every_key():
    assert set(DEFAULTS) == {"connectome", "model", "coupling", "integrator", "simulation", "bold"}
    for name, keys in DEFAULTS.items():
        for key, (_value, doc) in keys.items():
            assert doc and isinstance(doc, str), f"{name}.{key}"
        assert section({}, name) == {k: v for k, (v, _) in keys.items()}
    eng = Engine.from_config({}, seed=0)
    assert eng.n_regions == 76 and eng.ms_per_unit == 10.0 and eng.tr_ms == 2000.0
    assert eng.scheme == "adaptive" and eng.bold_start == "steady" and eng.bold_warmup_ms == 2000.0
    # transient "auto": 2 s warm-up + 5 x 3.08 s Balloon settling = 17.4 s, rounded up to 9 TRs of 2 s
    assert eng.bold_transient_ms == pytest.approx(17400.0) and eng.bold_first == 9 * 2000
    assert eng.n_bold == 150 - 9                            # the seed's 30000 units x 10 ms, TR 2 s


@pytest.mark.parametrize("section_name,key,value,match", [
    ("bold", "tr", 15.5, "bold.tr"),
    ("integrator", "dt", 0.0, "integrator.dt"),
    ("integrator", "nsig", -1.0, "integrator.nsig"),
    ("model", "eta", [1.0, 2.0], "model.eta"),
    ("simulation", "ms_per_unit", 0.0, "simulation.ms_per_unit"),
    ("connectome", "normalize", "mean", "connectome.normalize"),
    ("connectome", "speed", -3.0, "connectome.speed"),
    ("bold", "transient", -1.0, "bold.transient"),
])
def test_config_errors_name_the_key(section_name, key, value, match):
    cfg = {k: dict(v) for k, v in CFG.items()}
    cfg[section_name][key] = value
    with pytest.raises(ConfigError, match=match):
        Engine.from_config(cfg, seed=0)


def test_bad_connectome_and_history_paths(tmp_path):
    cfg = {k: dict(v) for k, v in CFG.items()}
    cfg["connectome"]["source"] = str(tmp_path / "nope.npz")
    with pytest.raises(InputError, match="nope.npz"):
        Engine.from_config(cfg, seed=0)
    cfg = {k: dict(v) for k, v in CFG.items()}
    cfg["simulation"]["initial_history"] = str(tmp_path / "hist.npy")
    with pytest.raises(InputError, match="hist.npy"):
        Engine.from_config(cfg, seed=0)
    np.save(tmp_path / "hist.npy", np.tile([[0.5], [-1.0]], (1, 66)))
    cfg["integrator"]["nsig"] = 0.0
    eng = Engine.from_config(cfg, seed=0)
    res = eng.simulate({}, np.array([0, 5]), nstep=100, record="raw")
    assert np.array_equal(res.raw[0], res.raw[1])


def _refused(sim, match):
    with pytest.raises(TvbinvError, match=match):
        Engine.from_tvb(sim, seed=0)


def test_unsupported_tvb_settings_are_named():
    import tvb.simulator.lab as lab
    sim = tvb_sim("connectivity_66", configure=False)
    sim.model = lab.models.Generic2dOscillator()
    _refused(sim, "'model'.*Generic2dOscillator")
    sim = tvb_sim("connectivity_66", configure=False)
    sim.coupling = lab.coupling.Sigmoidal()
    _refused(sim, "'coupling'.*Sigmoidal")
    sim = tvb_sim("connectivity_66", configure=False)
    sim.integrator = lab.integrators.HeunStochastic(dt=0.01, noise=lab.noise.Multiplicative(nsig=np.r_[0.01]))
    _refused(sim, "'integrator.noise'.*Multiplicative")
    sim = tvb_sim("connectivity_66", configure=False)
    sim.integrator = lab.integrators.EulerStochastic(dt=0.01, noise=lab.noise.Additive(nsig=np.r_[0.01]))
    _refused(sim, "'integrator'.*EulerStochastic")
    sim = tvb_sim("connectivity_66", configure=False)
    sim.monitors = [lab.monitors.Bold()]
    _refused(sim, "'monitors'.*Bold")
    sim = tvb_sim("connectivity_66", configure=False)
    sim.stimulus = lab.patterns.StimuliRegion()
    _refused(sim, "'stimulus'")
    sim = tvb_sim("connectivity_66", configure=False)
    from tvb.datatypes.cortex import Cortex
    sim.surface = Cortex()
    _refused(sim, "'surface'")
    sim = tvb_sim("connectivity_66", configure=False)
    sim.integrator.noise.ntau = 1.0
    _refused(sim, "ntau")


@pytest.mark.parametrize("ms_per_unit,expected", [(1.0, 1000), (10.0, 100)])
def test_known_lengths_give_physical_delay_steps(ms_per_unit, expected):
    """30 mm at 3 m/s is 10 ms whatever the model clock: 1000 steps of 0.01 ms, or 100 of 0.1 ms."""
    from tvbinv_hpc.sim.connectome import Connectome
    w = np.array([[0.0, 1.0], [1.0, 0.0]])
    tl = np.array([[0.0, 30.0], [30.0, 0.0]])
    eng = Engine(Connectome(w, tl, ["a", "b"], speed=3.0), dt=0.01, length=10.0, fixed=CFG_FIXED, seed=0,
                 ms_per_unit=ms_per_unit, tavg_period=0.1, bold_tr=10 * 0.1 * ms_per_unit)
    assert eng.idelays[0, 1] == expected and eng.max_delay_ms == pytest.approx(10.0)
    tvb = Engine(Connectome(w, tl, ["a", "b"], speed=3.0), dt=0.01, length=10.0, fixed=CFG_FIXED, seed=0,
                 ms_per_unit=ms_per_unit, tavg_period=0.1, bold_tr=10 * 0.1 * ms_per_unit, tvb_delays=True)
    assert tvb.idelays[0, 1] == 1000 and tvb.speed_m_per_s == pytest.approx(3.0 / ms_per_unit)


CFG_FIXED = {"model.tau": 1.0, "model.I": 0.0, "model.Delta": 0.7, "model.J": 14.5, "model.eta": -4.6,
             "model.cr": 1.0, "model.cv": 0.0, "coupling.a": 0.5, "coupling.b": 0.0,
             "integrator.noise.nsig": 0.0}
