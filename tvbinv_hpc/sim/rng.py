"""Counter-based random numbers keyed by (seed, simulation index): the noise of a simulation never depends on
its batch, lane, rank or a restart.

A value is ``hash(counter, key)``: two rounds of the SplitMix64 finaliser with two 64-bit keys per simulation
(so streams of different simulations are unrelated, not shifted copies).  Normals come from Box-Muller with
polynomial log / sin / cos written out in plain arithmetic, so that LLVM vectorises the loops (libm calls
would not be) and results are bit-identical in vector and scalar code: no reassociation; multiply-adds are
fused (fastmath "contract", decided per expression, so alike in both; 25 % faster Box-Muller), and every
caller of ``box_muller32`` (inlined: it takes its caller's flags) compiles with that flag.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from tvbinv_hpc.sim.vmath import FMA, log32_positive, sincos_quarter32

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11, _S12, _S1 = (np.uint64(s) for s in (30, 27, 31, 11, 12, 1))
_S32 = np.uint64(32)
_U8, _U1 = np.uint32(8), np.uint32(1)
_LOW32 = np.uint64(0xFFFFFFFF)
_F = np.float32
_F_ANGLE = np.float32(1.5707963267948966 / 16777216.0)
_F_QUARTER_PI = np.float32(0.7853981633974483)
_F_INV_SQRT2 = np.float32(0.7071067811865476)

# Counter domains: noise uses counters below 2**62, the initial history the domain above.
HISTORY_DOMAIN = np.uint64(1) << np.uint64(62)


@nb.njit(cache=True, inline="always", error_model="numpy")
def mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(cache=True, inline="always", error_model="numpy")
def hash2(ctr: np.uint64, k1: np.uint64, k2: np.uint64) -> np.uint64:
    return mix64(mix64(ctr ^ k1) ^ k2)


def sim_keys(seed: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 keys per simulation from (seed, index) only."""
    index = np.asarray(index, dtype=np.int64).astype(np.uint64)
    return _sim_keys(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF), index)


@nb.njit(cache=True, error_model="numpy")
def _sim_keys(seed, index):
    k1 = np.empty(index.size, np.uint64)
    k2 = np.empty(index.size, np.uint64)
    s = mix64(seed * _GOLDEN + _GOLDEN)
    for b in range(index.size):
        k1[b] = mix64(s ^ mix64(index[b] + _GOLDEN))
        k2[b] = mix64(k1[b] + _GOLDEN)
    return k1, k2


@nb.njit(cache=True, inline="always", error_model="numpy")
def uniform(h: np.uint64) -> float:
    """Uniform in [0, 1) from the top 53 bits."""
    return float(np.int64(h >> _S11)) * 1.1102230246251565e-16


@nb.njit(cache=True, inline="always", error_model="numpy")
def box_muller32(hi: np.uint32, lo: np.uint32) -> tuple[np.float32, np.float32]:
    """Two independent standard normals (float32) from the two halves of a random word, Box-Muller in
    float32: hi gives the radius (|z| <= 6.77; P(|z| > 6.77) = 1.3e-11), 24 bits of lo the angle in
    [0, pi/2), 2 bits the quadrant.  32-bit inputs only: a loop of it runs at 16 SIMD lanes."""
    y = np.float32(hi) + _F(0.5)                                 # (0, 2**32), relative precision is enough
    q = _F(22.18071) - log32_positive(y)                         # -ln(y / 2**32) >= 0
    radius = np.sqrt(_F(2.0) * (q if q > _F(0.0) else _F(0.0)))
    phi = np.float32(np.uint32(lo >> _U8)) * _F_ANGLE - _F_QUARTER_PI     # uint32 casts: numba widens
    s, c = sincos_quarter32(phi)
    sx = _F(1.0) - _F(2.0) * np.float32(np.uint32(lo & _U1))
    sy = _F(1.0) - _F(2.0) * np.float32(np.uint32((lo >> _U1) & _U1))
    return sx * radius * ((c - s) * _F_INV_SQRT2), sy * radius * ((s + c) * _F_INV_SQRT2)


@nb.njit(cache=True, inline="always", error_model="numpy")
def halves(h: np.uint64) -> tuple[np.uint32, np.uint32]:
    """The high and low 32 bits of a random word (box_muller32's inputs)."""
    return np.uint32(h >> _S32), np.uint32(h & _LOW32)


@nb.njit(cache=True, inline="always", error_model="numpy")
def normal_pair(h: np.uint64) -> tuple[np.float32, np.float32]:
    """Two independent standard normals (float32) from one random word (box_muller32 of its halves)."""
    hi, lo = halves(h)
    return box_muller32(hi, lo)


@nb.njit(cache=True, error_model="numpy", fastmath=FMA)
def normals(k1: np.uint64, k2: np.uint64, ctr0: np.uint64, n: int) -> np.ndarray:
    """2n normals of one stream from counter ctr0 (pair p uses counter ctr0 + p)."""
    za = np.empty(n)
    zb = np.empty(n)
    for p in range(n):
        za[p], zb[p] = normal_pair(hash2(ctr0 + np.uint64(p), k1, k2))
    out = np.empty(2 * n)
    out[0::2] = za
    out[1::2] = zb
    return out


@nb.njit(cache=True, error_model="numpy")
def uniforms(k1: np.uint64, k2: np.uint64, ctr0: np.uint64, n: int) -> np.ndarray:
    out = np.empty(n)
    for p in range(n):
        out[p] = uniform(hash2(ctr0 + np.uint64(p), k1, k2))
    return out



@nb.njit(cache=True, nogil=True, error_model="numpy")
def fill_random_history(hist, x, lane, k1, k2, horizon, ring, lo_r, span_r, lo_v, span_v, now):
    """Uniform initial history of one simulation straight into its lane of the ring hist (2, N, slots, nb):
    the state ``age`` steps old goes to slot (now - age) mod ring (now: the slot of the current state, which
    is not 0 when a lane takes a simulation mid-run); x (2, N, nb) gets the current state (float64).
    Counter (age * 2 + v) * N + node in HISTORY_DOMAIN: the current state does not depend on the horizon."""
    n = hist.shape[1]
    for age in range(horizon):
        q = (now + ring - age % ring) % ring
        for v in range(2):
            lo, span = (lo_r, span_r) if v == 0 else (lo_v, span_v)
            base = HISTORY_DOMAIN + np.uint64((age * 2 + v) * n)
            for i in range(n):
                val = lo + span * uniform(hash2(base + np.uint64(i), k1, k2))
                hist[v, i, q, lane] = val
                if age == 0:
                    x[v, i, lane] = val
