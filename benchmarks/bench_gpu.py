"""HADGAN scoring throughput on CUDA and on the CPU, in the same run.

Trains a HADGAN model briefly (CPU, fixed seed) on a synthetic scene, then measures, on
each device available:

* ``inference``: the network over every pixel, :func:`hsad.engine.infer_batches` in
  batches of ``--batch`` (fp32; on CUDA also bf16 and fp16 autocast);
* ``scoring``: the whole ``detector.score`` (residual inference, tiled spatial–spectral
  fusion on the CPU, map in memory).

Figures are Mpixel/s (best of ``--repeat`` after one warm-up run). Without a CUDA GPU the
script says so, prints the CPU figures and exits 0.

    .venv/bin/python benchmarks/bench_gpu.py
    .venv/bin/python benchmarks/bench_gpu.py --size 256x256x100 --repeat 1
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_gemm_bound import best_time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="512x512x200", help="ROWSxCOLSxBANDS")
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: what hsad uses while dask runs tiles)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    from hsad import detectors, engine, synthetic
    from hsad.cube import good_band_mask

    rows, cols, bands = (int(v) for v in args.size.lower().split("x"))
    pixels = rows * cols
    scene = synthetic.make_scene(rows=rows, cols=cols, bands=bands, seed=0)
    cube = scene.cube.persist()
    det = detectors.get("hadgan", epochs=2, sample_size=20_000, progress=False, device="cpu")
    det.fit(cube)
    spectra = np.asarray(cube.values[:, :, good_band_mask(cube)], np.float32)
    spectra = spectra.reshape(-1, spectra.shape[-1])

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
        print(f"CUDA: {torch.cuda.get_device_name(0)}")
    else:
        print("no CUDA GPU on this machine: CPU figures only")
    print(f"scene {rows}x{cols}x{bands}, HADGAN hidden {det.hidden} x {det.depth}, "
          f"batch {args.batch}, torch threads {torch.get_num_threads()}")
    print(f"{'device':<8s} {'what':<22s} {'Mpixel/s':>9s} {'seconds':>8s}")
    for device in devices:
        det.set_params(device=device)
        det._ensure_device()
        precisions = ["fp32"] if device == "cpu" else ["fp32", "bf16", "fp16"]
        for precision in precisions:
            def infer(precision=precision, device=device):
                engine.infer_batches(det._reconstruct, spectra, prepare=det._prepare,
                                     batch=args.batch, device=det.device_,
                                     precision=precision)
                if device == "cuda":
                    torch.cuda.synchronize()
            infer()  # warm-up (CUDA context, kernels)
            seconds = best_time(infer, args.repeat)
            print(f"{device:<8s} {'inference ' + precision:<22s} {pixels / seconds / 1e6:9.2f} "
                  f"{seconds:8.2f}")
        seconds = best_time(lambda: det.score(cube).values, 1)
        print(f"{device:<8s} {'scoring (with fusion)':<22s} {pixels / seconds / 1e6:9.2f} "
              f"{seconds:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
