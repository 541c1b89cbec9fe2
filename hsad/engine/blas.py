"""BLAS routines that release the GIL, for tile tasks that dask runs in threads.

SciPy's ``scipy.linalg.blas`` wrappers hold the GIL while BLAS runs, so two tile tasks
calling ``strmm`` run one after the other. The same routines are published, as C function
pointers, by SciPy's public Cython API (``scipy.linalg.cython_blas``); calling them through
``ctypes`` releases the GIL for the duration of the call.
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


@cache
def _trmm(prefix: str):
    """``?trmm`` of SciPy's Cython BLAS as a ctypes function (which drops the GIL)."""
    from scipy.linalg import cython_blas

    capsule = cython_blas.__pyx_capi__[f"{prefix}trmm"]
    address = _capsule_pointer(capsule, _capsule_name(capsule))
    real = ctypes.c_float if prefix == "s" else ctypes.c_double
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                 ctypes.c_char_p, _INT, _INT, ctypes.POINTER(real),
                                 ctypes.c_void_p, _INT, ctypes.c_void_p, _INT)
    return prototype(address), real


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
