"""UTD and RXD-UTD depend on the data's units; RX does not.

    python benchmarks/utd_units.py            # the development scenes (HSAD_DATA_DIR)

The "uniform target" 1 of UTD and RXD-UTD is a vector of ones in the data's own units, so
rescaling the data (DN to reflectance, ``--apply-scale``) moves it relative to the scene
and changes the maps and their ranking. Prints AUC(D,F) of rx, utd and rxd-utd on every
development scene as stored and multiplied by 1e-4 (DN scaled as a reflectance product's
``reflectance scale factor = 10000`` scales it), and the scene's largest value.
"""

from __future__ import annotations

import warnings

import numpy as np

from hsad import datasets
from hsad.detectors import get
from hsad.outputs.metrics import auc_df

SCALES = (1.0, 1e-4)
METHODS = ("rx", "utd", "rxd-utd")


def main() -> None:
    print("scene,max value," + ",".join(f"{m} x{s:g}" for m in METHODS for s in SCALES))
    rows = []
    for name in datasets.names():
        cube, truth = datasets.load(name)
        values = cube.values.astype(np.float32)
        aucs = []
        for method in METHODS:
            for scale in SCALES:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a rank-deficient scene's pseudo-inverse
                    scores = get(method).fit_score(values * np.float32(scale))
                aucs.append(auc_df(np.asarray(scores), np.asarray(truth)))
        rows.append(aucs)
        print(f"{name},{float(values.max()):.4g}," + ",".join(f"{a:.4f}" for a in aucs),
              flush=True)
    print("mean,," + ",".join(f"{a:.4f}" for a in np.mean(rows, axis=0)))


if __name__ == "__main__":
    main()
