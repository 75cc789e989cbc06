"""Vectorisable elementary functions for numba loops (libm calls stop LLVM vectorising a loop, and there is
no SVML here): IEEE bit tricks plus polynomials, accurate to ~1e-15 relative.  No fastmath: results are
identical in vector and scalar code, so a simulation does not depend on its lane."""
from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_LN2 = 0.6931471805599453
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_INV_LN2 = 1.4426950408889634
_SQRT2 = 1.4142135623730951
_S52 = np.uint64(52)
_MANT = np.uint64(0x000FFFFFFFFFFFFF)
_F = np.float32
_MANT32 = np.uint32(0x007FFFFF)
_EXP32 = np.uint32(0x3F800000)
_S23 = np.uint32(23)
_EXP1 = np.uint64(0x3FF0000000000000)
# fastmath flags of the kernel's fast path and of every function that inlines box_muller32: fused
# multiply-adds only (no reassociation, NaN/inf semantics kept), decided per expression, so vector and
# scalar code get the same bits
FMA = {"contract"}


@intrinsic
def _bits_of(typingctx, x):
    """The IEEE bits of a float64 as uint64 (a register bitcast, vectorisable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.uint64(types.float64), codegen


@intrinsic
def _float_of(typingctx, x):
    """The float64 whose IEEE bits are the uint64 x."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.uint64), codegen


@intrinsic
def _bits_of32(typingctx, x):
    """The IEEE bits of a float32 as uint32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.uint32(types.float32), codegen


@intrinsic
def _float_of32(typingctx, x):
    """The float32 whose IEEE bits are the uint32 x."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def wide_vectors(typingctx):
    """Mark the numba function that calls this to be vectorised with 512-bit registers where the CPU has
    them (LLVM function attribute prefer-vector-width=512; no effect elsewhere).  LLVM's tuning for recent
    Intel cores prefers 256-bit vectors for every function; for the kernel's loops, which are nearly all of
    a simulation's time, 512 bits are ~20 % faster on this project's machine (README, Performance).  Call
    it in every function of the kernel: a 256-bit function that inlines a 512-bit one splits its vectors.
    Lane width never changes a result (every loop is elementwise per lane)."""
    def codegen(context, builder, signature, args):
        # llvmlite's AttributeSet accepts only its known keywords; a string attribute is valid LLVM IR
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


@nb.njit(cache=True, inline="always", error_model="numpy")
def log32_positive(y: np.float32) -> np.float32:
    """float32 natural log of a normal positive float32 (relative error ~1e-7); 16 lanes per AVX-512 op."""
    bits = _bits_of32(y)
    m = _float_of32((bits & _MANT32) | _EXP32)                 # [1, 2)
    big = _F(1.0) if m > _F(1.4142135) else _F(0.0)
    m = m * (_F(1.0) - _F(0.5) * big)
    e = _F(np.int32(bits >> _S23) - np.int32(127)) + big
    t = (m - _F(1.0)) / (m + _F(1.0))
    t2 = t * t
    p = _F(1.0 / 9.0)
    p = p * t2 + _F(1.0 / 7.0)
    p = p * t2 + _F(1.0 / 5.0)
    p = p * t2 + _F(1.0 / 3.0)
    p = p * t2 + _F(1.0)
    return _F(2.0) * t * p + e * _F(0.6931472)


@nb.njit(cache=True, inline="always", error_model="numpy")
def sincos_quarter32(psi: np.float32) -> tuple[np.float32, np.float32]:
    """float32 (sin, cos) of psi in [-pi/4, pi/4] (error < 2e-9, below float32 rounding)."""
    x2 = psi * psi
    s = _F(1.0 / 362880.0)
    s = s * x2 - _F(1.0 / 5040.0)
    s = s * x2 + _F(1.0 / 120.0)
    s = s * x2 - _F(1.0 / 6.0)
    s = psi + psi * x2 * s
    c = _F(-1.0 / 3628800.0)
    c = c * x2 + _F(1.0 / 40320.0)
    c = c * x2 - _F(1.0 / 720.0)
    c = c * x2 + _F(1.0 / 24.0)
    c = c * x2 - _F(0.5)
    c = _F(1.0) + x2 * c
    return s, c


@nb.njit(cache=True, inline="always", error_model="numpy")
def _log_mantissa(m: float) -> float:
    """ln(m) for m in [sqrt(1/2), sqrt(2)]: 2 atanh((m - 1) / (m + 1)) series."""
    t = (m - 1.0) / (m + 1.0)
    t2 = t * t
    p = 1.0 / 17.0
    p = p * t2 + 1.0 / 15.0
    p = p * t2 + 1.0 / 13.0
    p = p * t2 + 1.0 / 11.0
    p = p * t2 + 1.0 / 9.0
    p = p * t2 + 1.0 / 7.0
    p = p * t2 + 1.0 / 5.0
    p = p * t2 + 1.0 / 3.0
    p = p * t2 + 1.0
    return 2.0 * t * p


@nb.njit(cache=True, inline="always", error_model="numpy")
def vlog(x: float) -> float:
    """Natural log of a float64 (normal numbers; 0 -> -inf, < 0 or NaN -> NaN, inf -> inf)."""
    bits = _bits_of(x)
    m = _float_of((bits & _MANT) | _EXP1)
    big = 1.0 if m > _SQRT2 else 0.0
    m = m * (1.0 - 0.5 * big)
    e = float(np.int64(bits >> _S52) - 1023) + big
    y = _log_mantissa(m) + e * _LN2
    y = -np.inf if x == 0.0 else y
    y = np.inf if x == np.inf else y
    return y if x >= 0.0 else np.nan


@nb.njit(cache=True, inline="always", error_model="numpy")
def vexp(x: float) -> float:
    """exp of a float64 (overflow -> inf, underflow -> 0, NaN -> NaN)."""
    xc = min(max(x, -708.0), 709.0)
    k = np.rint(xc * _INV_LN2)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    y = p * _float_of(np.uint64(np.int64(k) + 1023) << _S52)
    y = np.inf if x > 709.0 else y
    y = 0.0 if x < -708.0 else y
    return y if x == x else np.nan
