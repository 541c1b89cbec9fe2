"""The software and hardware a result was computed with, for a methods section or a bug
report (``hsad info --environment``).

Maps and models record hsad's own version and code digest (``hsad_code``); what else moves
the numbers is listed here: the libraries' versions, the BLAS and its kernel family (AVX2
and AVX-512 kernels round differently, docs/reliability.md), torch's CPU capability and
threads, scikit-learn's (cluster RX's k-means), and the GPU when one is used.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

#: distributions whose versions can change a result or a file hsad writes
PACKAGES = ("numpy", "scipy", "torch", "scikit-learn", "scikit-image", "xarray", "dask",
            "rasterio", "pyproj", "spectral", "safetensors", "matplotlib", "h5py",
            "threadpoolctl")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    """The processor's model name (Linux's /proc/cpuinfo), else the platform's word."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _blas() -> list[dict]:
    """Each BLAS/OpenMP library numpy, scipy and torch loaded: its API, version, kernel
    family (OpenBLAS's core type) and threads, as threadpoolctl reports them."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "architecture", "threading_layer",
            "num_threads", "filepath")
    return [{k: info[k] for k in keys if k in info} for info in threadpool_info()]


def _torch() -> dict:
    import torch

    found = {"threads": torch.get_num_threads(),
             "cpu_capability": torch.backends.cpu.get_cpu_capability(),
             "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if found["cuda_available"]:
        found["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return found


def environment() -> dict:
    """A JSON-ready account of the software and hardware this process computes with."""
    import numpy  # noqa: F401  (loaded first, so that its BLAS is listed)
    import rasterio

    from hsad import __version__
    from hsad.outputs.provenance import code_digest

    try:
        import pyproj

        proj = pyproj.proj_version_str
    except ImportError:
        proj = None
    return {
        "hsad": __version__, "hsad_code": code_digest(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "packages": {name: _version(name) for name in PACKAGES},
        "gdal": rasterio.__gdal_version__, "proj": proj,
        "torch": _torch(),
        "blas": _blas(),
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
                        if k in os.environ},
    }


def environment_text(env: dict) -> str:
    """``env`` (:func:`environment`) as lines for a person to read or paste."""
    torch = env["torch"]
    gpu = ", ".join(torch.get("gpus", [])) or "none"
    lines = [("hsad", f"{env['hsad']} (code {env['hsad_code']})"),
             ("python", env["python"]), ("platform", env["platform"]),
             ("cpu", f"{env['cpu']} ({env['cpu_count']} logical cores)"),
             ("torch", f"{env['packages']['torch']} (CPU capability "
                       f"{torch['cpu_capability']}, {torch['threads']} threads; CUDA "
                       f"{torch['cuda'] or 'none'}, GPU {gpu})"),
             ("gdal", env["gdal"]), ("proj", env["proj"])]
    lines += [(name, version) for name, version in env["packages"].items()
              if name != "torch" and version]
    for lib in env["blas"]:
        words = [lib.get("version"), lib.get("architecture") or lib.get("threading_layer"),
                 f"({lib.get('num_threads')} threads)"]
        lines.append((lib.get("internal_api", "blas"), " ".join(w for w in words if w)))
    lines += list(env["threads_env"].items())
    return "\n".join(f"{k + ':':16s}{v}" for k, v in lines)


__all__ = ["PACKAGES", "environment", "environment_text"]
