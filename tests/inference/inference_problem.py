"""The easy inference problem the tests share (fixtures in conftest.py).

x = (theta + N(0, 0.05^2), one pure-noise feature): the posterior must be narrow and cover the truth.
"""

from __future__ import annotations

import numpy as np
import torch

# Two shared cores: torch's default thread count oversubscribes them (~100x slower training).
torch.set_num_threads(1)

PARAMS = ["coupling", "eta", "noise"]
FEATURES = ["f_coupling", "f_eta", "f_noise", "f_junk"]
NOISE = 0.05
SMALL_NET = {"hidden_features": 24, "num_transforms": 2, "max_epochs": 120, "threads": 1, "seed": 3}


def simulate(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The test's simulator: each parameter plus small noise, and one uninformative feature."""
    theta = np.atleast_2d(theta)
    return np.column_stack(
        [theta + NOISE * rng.standard_normal(theta.shape), rng.standard_normal(len(theta))]
    )


def make_prior():
    from sbi.utils import BoxUniform

    return BoxUniform(torch.zeros(len(PARAMS)), torch.ones(len(PARAMS)))
