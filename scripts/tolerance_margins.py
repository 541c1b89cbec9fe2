"""pytest plugin: how much of each ``assert_allclose`` tolerance the suite uses.

    PYTHONPATH=scripts .venv/bin/python -m pytest -p tolerance_margins -q
    (writes tolerance_margins.json: call site -> worst |a - d| / (atol + rtol·|d|))

A ratio near 1 means the test passes by a hair on this machine and may fail on another
CPU or BLAS; docs/reliability.md lists the last audit.
"""

import json
import os
import traceback

import numpy as np
import numpy.testing as npt

_orig = npt.assert_allclose
REC = {}

def _wrapped(actual, desired, rtol=1e-7, atol=0, equal_nan=True, err_msg="", verbose=True,
             **kw):
    try:
        a = np.asarray(actual, dtype=np.float64)
        d = np.asarray(desired, dtype=np.float64)
        a, d = np.broadcast_arrays(a, d)
        ok = np.isfinite(a) & np.isfinite(d)
        tol = atol + rtol * np.abs(d[ok])
        err = np.abs(a[ok] - d[ok])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(tol > 0, err / tol, np.where(err > 0, np.inf, 0))
        r = float(ratio.max()) if ratio.size else 0.0
        fr = [f for f in traceback.extract_stack()[:-1] if "/tests/" in f.filename]
        site = f"{os.path.basename(fr[-1].filename)}:{fr[-1].lineno}" if fr else "?"
        REC[site] = max(REC.get(site, 0.0), r)
    except Exception:  # noqa: BLE001  measuring must never change a test's outcome
        pass
    return _orig(actual, desired, rtol=rtol, atol=atol, equal_nan=equal_nan, err_msg=err_msg,
                 verbose=verbose, **kw)

npt.assert_allclose = _wrapped

def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("MARGIN_OUT", "tolerance_margins.json")
    with open(out, "w") as fh:
        json.dump(REC, fh, indent=1, sort_keys=True)
