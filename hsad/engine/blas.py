"""BLAS routines that release the GIL, for tile tasks that dask runs in threads.

SciPy's ``scipy.linalg.blas`` wrappers hold the GIL while BLAS runs, so two tile tasks
calling ``strmm`` run one after the other. The same routines are published, as C function
pointers, by SciPy's public Cython API (``scipy.linalg.cython_blas``); calling them through
``ctypes`` releases the GIL for the duration of the call. Also the upper-triangular
factor the RX family multiplies by (:func:`triangular_factor`) and the power of two that
keeps its float32 product in range (:func:`working_scale`).
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np

_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

_INT = ctypes.POINTER(ctypes.c_int)


def _routine(name: str, *argtypes):
    """BLAS routine ``name`` of SciPy's Cython BLAS as a ctypes function (which drops the
    GIL while it runs)."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[name]
    address = _capsule_pointer(capsule, _capsule_name(capsule))
    return ctypes.CFUNCTYPE(None, *argtypes)(address)


@cache
def _trmm(prefix: str):
    """``?trmm`` and its real type."""
    real = ctypes.c_float if prefix == "s" else ctypes.c_double
    char, ptr = ctypes.c_char_p, ctypes.c_void_p
    return _routine(f"{prefix}trmm", char, char, char, char, _INT, _INT,
                    ctypes.POINTER(real), ptr, _INT, ptr, _INT), real


@cache
def _dsyrk():
    real = ctypes.POINTER(ctypes.c_double)
    char, ptr = ctypes.c_char_p, ctypes.c_void_p
    return _routine("dsyrk", char, char, _INT, _INT, real, ptr, _INT, real, ptr, _INT)


def upper_trmm(tri: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``cols ← tri @ cols`` in place, without the GIL, and return ``cols``.

    ``tri``: upper-triangular ``(B, B)``, Fortran order; ``cols``: ``(B, n)`` Fortran order
    (the transpose of a C-ordered ``(n, B)`` array of pixels), same float dtype. Half the
    work of a general product (BLAS ``?trmm``, side L, upper, no transpose, non-unit).
    """
    dtype = tri.dtype
    if dtype not in (np.float32, np.float64) or cols.dtype != dtype:
        raise TypeError(f"upper_trmm needs float32 or float64 arrays of one dtype, "
                        f"got {tri.dtype} and {cols.dtype}")
    b, n = cols.shape
    if tri.shape != (b, b) or not tri.flags.f_contiguous or not cols.flags.f_contiguous:
        raise ValueError("upper_trmm needs a Fortran-ordered (B, B) factor and (B, n) columns")
    if cols.size == 0:
        return cols
    if n >= 2**31:
        raise ValueError("upper_trmm: too many columns for 32-bit BLAS integers")
    routine, real = _trmm("s" if dtype == np.float32 else "d")
    m_, n_ = ctypes.c_int(b), ctypes.c_int(n)
    routine(b"L", b"U", b"N", b"N", ctypes.byref(m_), ctypes.byref(n_),
            ctypes.byref(real(1.0)), tri.ctypes.data, ctypes.byref(m_),
            cols.ctypes.data, ctypes.byref(m_))
    return cols


def add_upper_gram(total: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``total ← total + cols @ colsᵀ`` in its upper triangle, in place, without the GIL;
    returns ``total``.

    ``total``: float64 ``(B, B)``, Fortran order (its strict lower triangle is left as it
    was); ``cols``: float64 ``(B, n)``, Fortran order (the transpose of a C-ordered
    ``(n, B)`` array of pixels). A symmetric rank-k update (BLAS ``dsyrk``): half the work
    of a general product, and no ``(B, B)`` result to allocate and add per piece.
    """
    b, n = cols.shape
    if total.dtype != np.float64 or cols.dtype != np.float64:
        raise TypeError(f"add_upper_gram needs float64 arrays, got {total.dtype} and "
                        f"{cols.dtype}")
    if (total.shape != (b, b) or not total.flags.f_contiguous
            or not total.flags.writeable or not cols.flags.f_contiguous):
        raise ValueError("add_upper_gram needs a writeable Fortran-ordered (B, B) total and "
                         "(B, n) columns")
    if cols.size == 0:
        return total
    if n >= 2**31:
        raise ValueError("add_upper_gram: too many columns for 32-bit BLAS integers")
    b_, n_, one = ctypes.c_int(b), ctypes.c_int(n), ctypes.c_double(1.0)
    _dsyrk()(b"U", b"N", ctypes.byref(b_), ctypes.byref(n_), ctypes.byref(one),
             cols.ctypes.data, ctypes.byref(b_), ctypes.byref(one), total.ctypes.data,
             ctypes.byref(b_))
    return total


def upper_to_symmetric(upper: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle is ``upper``'s (a new C-ordered array)."""
    return np.triu(upper) + np.triu(upper, 1).T


def triangular_factor(white: np.ndarray) -> np.ndarray:
    """Upper-triangular B×B R with RᵀR = W Wᵀ (QR of Wᵀ, zero rows below the rank).

    ``‖R (x − μ)‖²`` equals ``‖Wᵀ(x − μ)‖²``, with a triangular product at half a GEMM's cost.
    """
    b, r = white.shape
    tri = np.zeros((b, b))
    if r:
        tri[:r] = np.linalg.qr(white.T, mode="r")
    return tri


#: a triangular factor whose largest entry lies outside 2^±SCALE_EXPONENT is rescaled by a
#: power of two before the float32 product (data on a scale of 1e-39 have factors of 1e39,
#: beyond float32's range, and centred values below its normal numbers)
SCALE_EXPONENT = 32


def working_scale(tri: np.ndarray | None) -> float:
    """A power of two ``s`` such that ``tri / s`` and ``s·(x − μ)`` sit in float32's
    comfortable range: 1 for the factors of data on any ordinary scale, which keeps their
    scores to the bit; scores are unchanged in exact arithmetic (``‖(R/s)(s·x)‖ = ‖R x‖``)."""
    if tri is None:
        return 1.0
    peak = float(np.max(np.abs(tri), initial=0.0))
    if not np.isfinite(peak) or peak == 0.0:
        return 1.0
    exponent = int(np.round(np.log2(peak)))
    return 1.0 if abs(exponent) <= SCALE_EXPONENT else float(2.0 ** exponent)


#: a float32 mean's rounding residue δ is taken off the centred values (one more pass over
#: them) where ‖R δ‖ exceeds this times √B: below it, it moves a typical score (about B)
#: by 2 zᵀRδ ≈ 2‖Rδ‖, some 1e-6 of it at 200 bands, float32's own rounding (data at 2000
#: ± 20, say); above it (1e4 + reflectance: 14 %, 300 K ± 0.05 K) it is taken off
RESIDUE_TOLERANCE = 1e-5


def working_mean(mean, block_dtype, dtype, scale: float = 1.0, tri=None,
                 linear=None) -> tuple[np.ndarray, np.ndarray | None, float]:
    """``(mean, residue, shift)`` to centre ``block_dtype`` pixels with for scores in
    ``dtype``: ``x − mean − residue`` is ``x − μ`` to ``dtype``'s rounding of the centred
    values, and ``shift`` is what a linear term ``aᵀ(x − mean)`` then holds beyond
    ``aᵀ(x − μ)`` (``linear`` a; 0 where the residue is taken off the values).

    The mean is held in float64 where ``dtype`` cannot hold the input (int32 near 2³¹,
    float64) or the values are ``scale``-d; else in ``dtype``, off by up to half its step
    (5e-4 at 1e4 in float32: beside a spread of 1e-2 that moved RX's scores by 14 %). That
    residue δ is taken off the centred values, which ``x − mean`` gives exactly where ``x``
    is near the mean (Sterbenz), where it moves the quadratic term ``‖R(x − μ)‖²`` (``tri``
    R, or (k, B, B) factors) beyond :data:`RESIDUE_TOLERANCE`; a linear term alone takes
    it as the constant ``shift`` (no pass over the values). ``residue`` is None where no
    pass is needed.
    """
    exact = np.asarray(mean, dtype=np.float64)
    held = exact.astype(np.result_type(block_dtype, dtype, np.float64 if scale != 1.0 else dtype))
    delta = exact - held
    if scale != 1.0 or not delta.any():
        return held, None, 0.0
    shift = float(np.asarray(linear, np.float64) @ delta) if linear is not None else 0.0
    if tri is None:
        return held, None, shift
    factors = np.asarray(tri, dtype=np.float64).reshape(-1, delta.size, delta.size)
    moved = max(float(np.linalg.norm(np.triu(r) @ delta)) for r in factors)
    if moved <= RESIDUE_TOLERANCE * np.sqrt(delta.size):
        return held, None, shift
    return held, delta.astype(dtype), 0.0
