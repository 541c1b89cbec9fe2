"""RX, HADGAN and f-AnoGAN throughput on CUDA (fp32, bf16) beside the CPU, in one run.

One script for issue #16's GPU figures. It generates a scene (default 4096 x 4096 x 200
float32, 13.4 GB, in memory: one ``synthetic.make_scene`` tile of 512 x 512, rolled and
re-noised per tile, on the GPU with torch when CUDA is present), trains a small HADGAN and
a small f-AnoGAN once (fixed seed, ``--epochs`` epochs on ``--sample`` pixels) and
measures, in Mpixel/s:

* ``rx fit+score``: hsad's global RX (streamed float64 moments, float32 triangular
  scoring, numpy/BLAS under dask's threaded scheduler). RX runs on the CPU by design, so
  it has a CPU figure only, measured up to the whole scene.
* ``<model> training``: ``fit`` (sampling + training), counted as sample pixels x epochs
  (f-AnoGAN: both stages' epochs) per second; on the CPU and on CUDA (fp32; hsad trains
  in fp32 only).
* ``<model> inference``: the network the tile loop runs, alone, through
  :func:`hsad.engine.infer_batches` as the tile loop calls it (on CUDA: raw values through a
  pinned buffer, normalisation on the GPU, forward, results back through a pinned buffer;
  on the CPU: normalisation and forward there): HADGAN its reconstruction (the residual), f-AnoGAN
  its score terms (encoder, generator and critic features). CPU fp32 on a crop of
  ``--cpu-size``; CUDA fp32 and bf16 autocast up to the whole scene.
* ``<model> score``: the whole ``detector.score`` through hsad's engine, map computed into
  memory. HADGAN scores with D_SS: residual inference, then the spatial-spectral fusion on
  the CPU (moments, RX of the residual, attribute filters on halo tiles). f-AnoGAN scores
  with its plain score A(x): inference only. CPU on the ``--cpu-size`` crop; CUDA fp32 and
  bf16 (dask config ``hsad.precision``) on crops growing to the whole scene.

Every measurement starts with an untimed warm-up on its smallest step (CUDA context,
kernels), then times steps of growing size (pixels or crops x4) while the next step's
predicted time (linear in pixels, x1.25) fits its share of ``--budget-s`` (the whole
run's budget; shares weighted score 2, others 1, time left over passes on), then repeats
the last step up to ``--repeat`` timed runs. A figure is the best time of the largest step
measured; the details under the table give that step's size for each figure, so a whole
score measured on a crop says so. Without CUDA the CPU figures are printed, the absence of
CUDA is said, and the exit status is 0 (1 if a measurement failed).

    .venv/bin/python benchmarks/bench_gpu.py                          # CUDA machine, <5 min
    .venv/bin/python benchmarks/bench_gpu.py --json out.json
    .venv/bin/python benchmarks/bench_gpu.py --size 512x512x200 --cpu-size 256x256
    .venv/bin/python benchmarks/bench_gpu.py --device cpu ...   # dry run of the CUDA path

``--device cpu`` runs the CUDA columns on the CPU (autocast is CUDA-only, so "bf16" is fp32
there): a test of this script's CUDA bookkeeping, not a figure. ``--device none``: CPU
columns only. benchmarks/README_gpu.md gives the command for the CUDA machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass

import numpy as np

#: Edge of the synthetic base tile the scene is built from.
TILE = 512
#: Standard deviation of the noise added to each rolled copy of the base tile.
NOISE = 0.002
#: A step's predicted time (linear in its pixels) is multiplied by this before it starts.
MARGIN = 1.25
#: Smallest crop edge of the crop steps (also the warm-up of whole-score measurements).
FIRST_CROP = 64
#: Share weights of the measurements in the time budget.
WEIGHTS = {"rx": 1.0, "inference": 1.0, "score": 2.0}
MODELS = ("hadgan", "fanogan")


@dataclass
class Result:
    """One table cell: ``work`` on ``column``, its largest step measured."""

    work: str
    column: str
    pixels: int = 0
    seconds: float = math.nan
    runs: int = 0
    size: str = ""
    note: str = ""

    @property
    def mpixel_s(self) -> float:
        return self.pixels / self.seconds / 1e6 if self.runs and self.seconds > 0 else math.nan

    def as_dict(self) -> dict:
        out = {**asdict(self), "mpixel_s": self.mpixel_s}
        return {k: None if isinstance(v, float) and math.isnan(v) else v
                for k, v in out.items()}


def parse_size(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) not in (2, 3) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLS[xBANDS], got {text!r}")
    return values


# ---------------------------------------------------------------- the scene


def generate(shape: tuple[int, int, int], device, seed: int = 0):
    """A ``(rows, cols, bands)`` float32 numpy scene and its wavelengths.

    One ``synthetic.make_scene`` base tile (``TILE`` square at most), copied over the scene
    rolled by a random shift per tile, plus white noise of ``NOISE``; built strip by strip
    with torch on ``device`` (the GPU when CUDA is present) and copied into host memory.
    """
    import torch

    from hsad import synthetic

    rows, cols, bands = shape
    ref = synthetic.make_scene(rows=min(TILE, rows), cols=min(TILE, cols), bands=bands,
                               seed=seed).cube
    base = torch.from_numpy(np.ascontiguousarray(ref.values, dtype=np.float32)).to(device)
    th, tw = base.shape[:2]
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    out = np.empty(shape, dtype=np.float32)
    for r0 in range(0, rows, th):
        h = min(th, rows - r0)
        strip = torch.empty((h, cols, bands), dtype=torch.float32, device=device)
        for c0 in range(0, cols, tw):
            w = min(tw, cols - c0)
            shift = tuple(int(s) for s in rng.integers(0, min(64, th, tw), 2))
            strip[:, c0:c0 + w] = torch.roll(base, shifts=shift, dims=(0, 1))[:h, :w]
        strip.add_(torch.randn(strip.shape, generator=gen, device=device), alpha=NOISE)
        torch.from_numpy(out[r0:r0 + h]).copy_(strip)  # device → host (synchronous)
        del strip
    return out, np.asarray(ref["wavelength"].values, dtype=np.float64)


def as_cube(values: np.ndarray, wavelength: np.ndarray):
    """The scene as an hsad cube (all bands good) in tiles of :func:`engine.chunks_for`
    under the session's memory budget, as ``hsad detect`` would tile it; no copy."""
    from hsad import engine
    from hsad.cube import make_cube, wrap_numpy

    tile = engine.chunks_for(values.shape, values.dtype)
    data = wrap_numpy(values, chunks=(*tile, -1))
    cube = make_cube(data, wavelength=wavelength, good_band=np.ones(values.shape[2], bool),
                     source_format="synthetic")
    return cube, tile


# ---------------------------------------------------------------- measuring


def crop_steps(rows: int, cols: int, start: int = FIRST_CROP) -> list[tuple[int, int]]:
    """Crops ``(r, c)`` from ``start`` square, edges doubling, up to ``(rows, cols)``."""
    steps: list[tuple[int, int]] = []
    edge = start
    while True:
        step = (min(rows, edge), min(cols, edge))
        if step not in steps:
            steps.append(step)
        if step == (rows, cols):
            return steps
        edge *= 2


def pixel_steps(total: int, batch: int) -> list[int]:
    """Pixel counts from two batches, x4 each, up to ``total``."""
    steps, n = [], 2 * batch
    while n < total:
        steps.append(n)
        n *= 4
    return [*steps, total]


def measure(sizes: list[int], run, share: float, repeat: int, sync=None):
    """Time ``run(i)`` over steps of ``sizes`` pixels (ascending) within ``share`` seconds.

    An untimed warm-up of step 0, then one timed run per step while the next step's
    predicted time (the last one's, scaled by pixels, x ``MARGIN``) fits the share, then
    repeats of the last step up to ``repeat`` timed runs while they fit.
    Returns ``(step, best seconds, timed runs of that step)``.
    """
    end = time.perf_counter() + share

    def timed(i: int) -> float:
        t0 = time.perf_counter()
        run(i)
        if sync is not None:
            sync()
        return time.perf_counter() - t0

    run(0)
    if sync is not None:
        sync()
    i, best, runs = 0, timed(0), 1
    while i + 1 < len(sizes):
        predicted = best * sizes[i + 1] / sizes[i] * MARGIN
        if time.perf_counter() + predicted > end:
            break
        i += 1
        best, runs = timed(i), 1
    while runs < max(1, repeat) and time.perf_counter() + best * MARGIN <= end:
        best = min(best, timed(i))
        runs += 1
    return i, best, runs


def tile_forward(det):
    """``forward(x, keys)`` as the tile loop (``NeuralDetector._tile``) runs it for the
    detector's ``output``: the reconstruction for a fused output (HADGAN's D_SS), the score
    terms otherwise (f-AnoGAN's A(x))."""
    import torch

    from hsad.detectors.reconstruction import FUSED
    from hsad.nn.noise import PixelNoise

    residual = det.output_ in FUSED

    def forward(x, keys):
        terms = [det._score(x, PixelNoise(int(det.seed), keys, x.device))
                 ] if det.score_terms else []
        parts = ([det._reconstruct(x)] if residual else []) + terms
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    return forward, "reconstruction" if residual else "score terms"


# ---------------------------------------------------------------- the run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=(4096, 4096, 200),
                    help="the scene, ROWSxCOLSxBANDS (default 4096x4096x200)")
    ap.add_argument("--cpu-size", type=parse_size, default=(512, 512),
                    help="top-left crop for the CPU figures of the networks, ROWSxCOLS")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of a figure's last step")
    ap.add_argument("--batch", type=int, default=None,
                    help="inference batch (default: hsad's, engine.batch_for the device: "
                         "8192 on the CPU, 65536 on CUDA)")
    ap.add_argument("--budget-s", type=float, default=240.0,
                    help="seconds for the whole run, shared by the measurements")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs (each stage)")
    ap.add_argument("--sample", type=int, default=20_000, help="training sample (pixels)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads for CPU inference alone (default: torch's)")
    ap.add_argument("--memory-limit", default=None,
                    help="hsad's memory budget (tiles, spilling); default hsad's own")
    ap.add_argument("--device", choices=("auto", "cuda", "cpu", "none"), default="auto",
                    help="device of the CUDA columns: auto (CUDA if present), cuda, none, "
                         "or cpu (dry run of the CUDA path on the CPU, for tests)")
    ap.add_argument("--json", default=None, help="write the figures as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    deadline = t_start + args.budget_s

    import dask
    import torch

    from hsad import detectors
    from hsad.engine import infer_batches
    from hsad.engine.inference import batch_for
    from hsad.nn.trainer import cpu_threads

    rows, cols, bands = (*args.size, 200)[:3] if len(args.size) == 2 else args.size
    if len(args.cpu_size) == 3 and args.cpu_size[2] != bands:
        ap.error(f"--cpu-size has {args.cpu_size[2]} bands, the scene {bands}")
    cuda_ok = torch.cuda.is_available()
    if args.device == "cuda" and not cuda_ok:
        print("--device cuda: no CUDA GPU on this machine (torch.cuda.is_available() is "
              "False)", file=sys.stderr)
        return 2
    accel = {"auto": "cuda" if cuda_ok else None, "cuda": "cuda", "cpu": "cpu",
             "none": None}[args.device]
    accel_label = {"cuda": "CUDA", "cpu": "CPU-as-CUDA", None: "CUDA"}[accel]
    columns = ["CPU", f"{accel_label} fp32", f"{accel_label} bf16"]
    crop_r, crop_c = min(rows, args.cpu_size[0]), min(cols, args.cpu_size[1])
    if accel is None:  # only the crop is needed
        rows, cols = crop_r, crop_c
    pixels = rows * cols
    config = {"hsad.memory_limit": args.memory_limit} if args.memory_limit else {}

    info = {
        "argv": list(argv) if argv is not None else sys.argv[1:],
        "python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "load_start": list(os.getloadavg()),
        "accelerator": None, "scene": [rows, cols, bands], "cpu_crop": [crop_r, crop_c],
        "batch": {d: args.batch or batch_for(d) for d in ("cpu", "cuda")},
        "epochs": args.epochs, "sample": args.sample,
    }
    print(f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load "
          f"average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; python "
          f"{info['python']}, torch {torch.__version__} (CUDA build {torch.version.cuda}), "
          f"{torch.get_num_threads()} torch threads")
    if accel == "cuda":
        name = torch.cuda.get_device_name(0)
        props = torch.cuda.get_device_properties(0)
        info["accelerator"] = f"{name}, {props.total_memory / 2**30:.0f} GiB"
        print(f"CUDA device: {info['accelerator']}")
    elif accel == "cpu":
        info["accelerator"] = "cpu (dry run of the CUDA path)"
        print("dry run: the CUDA columns run on the CPU (bf16 autocast is CUDA-only: fp32 "
              "there); these are not GPU figures")
    else:
        print("no CUDA GPU here (torch.cuda.is_available() is False)" if not cuda_ok else
              "--device none", "- CPU figures only")

    results: list[Result] = []
    failed = 0

    def dump() -> None:  # after every figure, so a run cut short keeps what it measured
        if args.json:
            with open(args.json, "w") as f:
                json.dump({**info, "results": [r.as_dict() for r in results]}, f, indent=1,
                          default=str)

    with dask.config.set(config):
        # ---- the scene -------------------------------------------------------------
        t0 = time.perf_counter()
        gen_device = torch.device(accel or "cpu")
        try:
            values, wavelength = generate((rows, cols, bands), gen_device, args.seed)
        except Exception:  # e.g. a CUDA failure: the CPU can do it, more slowly
            if gen_device.type == "cpu":
                raise
            traceback.print_exc()
            print("generating on the GPU failed: generating on the CPU instead", flush=True)
            gen_device = torch.device("cpu")
            values, wavelength = generate((rows, cols, bands), gen_device, args.seed)
        info["generate_s"] = time.perf_counter() - t0
        cube, tile = as_cube(values, wavelength)
        crop = cube.isel(y=slice(0, crop_r), x=slice(0, crop_c))
        info["tile"] = list(tile)
        print(f"scene {rows}x{cols}x{bands} float32 ({values.nbytes / 1e9:.2f} GB) "
              f"generated on {gen_device.type} in {info['generate_s']:.1f} s; tiles "
              f"{tile[0]}x{tile[1]}; CPU crop {crop_r}x{crop_c}; inference batch "
              f"{info['batch']['cpu']} (CPU), {info['batch']['cuda']} (CUDA)")

        def sync():
            if accel == "cuda":
                torch.cuda.synchronize()

        if accel == "cuda":  # CUDA context and cuBLAS before anything is timed
            warm = torch.ones(256, 256, device="cuda")
            (warm @ warm).sum().item()

        # ---- training (once per device; the CPU-trained models are measured) ----------
        trained = {}
        for model in MODELS:
            params = {"epochs": args.epochs, "sample_size": args.sample, "progress": False,
                      "seed": args.seed}
            if model == "fanogan":
                params["encoder_epochs"] = args.epochs
            for column, device in ((columns[0], "cpu"), (columns[1], accel)):
                if device is None:
                    results.append(Result(f"{model} training", column, note="no CUDA"))
                    continue
                res = Result(f"{model} training", column, size=f"{crop_r}x{crop_c}")
                try:
                    warm = {**params, "epochs": 1, "sample_size": 64}
                    if model == "fanogan":
                        warm["encoder_epochs"] = 1
                    detectors.get(model, **warm, device=device).fit(crop)  # first calls
                    sync()
                    det = detectors.get(model, **params, device=device)
                    t0 = time.perf_counter()
                    det.fit(crop)
                    sync()
                    res.seconds = time.perf_counter() - t0
                    stages = 2 if model == "fanogan" else 1
                    res.pixels = det.n_train_ * args.epochs * stages
                    res.runs = 1
                    res.note = (f"{det.n_train_} px x {args.epochs} epochs"
                                f"{' x 2 stages' if stages == 2 else ''}, fit incl. sampling")
                    trained.setdefault(model, det)
                except Exception as exc:  # report, go on with the others
                    failed += 1
                    res.note = f"error: {type(exc).__name__}: {exc}"
                    traceback.print_exc()
                results.append(res)
                print(f"  trained {model} on {device}: {res.seconds:.1f} s {res.note}",
                      flush=True)

        # ---- the measurements ---------------------------------------------------------
        jobs = []  # (weight, Result, sizes, run, size labels, setup)

        def add(kind, res, sizes, run, labels, setup=None):
            jobs.append((WEIGHTS[kind], res, sizes, run, labels, setup))

        rx_crops = crop_steps(rows, cols)

        def rx_run(i):
            r, c = rx_crops[i]
            part = cube.isel(y=slice(0, r), x=slice(0, c))
            _ = detectors.get("rx").fit(part).score(part).values  # map into memory

        add("rx", Result("rx fit+score", columns[0], note="CPU by design (numpy/BLAS)"),
            [r * c for r, c in rx_crops], rx_run, [f"{r}x{c}" for r, c in rx_crops])
        for column in columns[1:]:
            results.append(Result("rx fit+score", column, note="RX runs on the CPU"))

        cpu_spectra = np.ascontiguousarray(values[:crop_r, :crop_c]).reshape(-1, bands)
        all_spectra = values.reshape(-1, bands)  # a view
        keys = np.arange(pixels, dtype=np.int64)
        for model in MODELS:
            det = trained.get(model)
            targets = [(columns[0], "cpu", "fp32")]
            if accel is not None:
                targets += [(columns[1], accel, "fp32"), (columns[2], accel, "bf16")]
            for kind in ("inference", "score"):
                work = f"{model} {kind}"
                if det is None:
                    for column, _, _ in targets:
                        results.append(Result(work, column, note="not trained"))
                    continue
                for column, device, precision in targets:
                    def setup(det=det, device=device):
                        det.set_params(device=device)
                        det._ensure_device()

                    if kind == "inference":
                        spectra = cpu_spectra if device == "cpu" and column == columns[0] \
                            else all_spectra
                        batch = args.batch or batch_for(device)
                        sizes = pixel_steps(len(spectra), batch)
                        forward, what = tile_forward(det)
                        threads = args.threads if device == "cpu" else None

                        def run(i, det=det, spectra=spectra, sizes=sizes, forward=forward,
                                precision=precision, threads=threads, batch=batch):
                            n = sizes[i]
                            with cpu_threads(threads):
                                infer_batches(forward, spectra[:n], prepare=det._prepare,
                                              on_device=det._normalise,
                                              batch=batch, device=det.device_,
                                              precision=precision, keys=keys[:n],
                                              grad=det.score_needs_grad
                                              and bool(det.score_terms))

                        labels = [f"{n} px" for n in sizes]
                        note = f"{what}, {precision}"
                    else:
                        limit = (crop_r, crop_c) if column == columns[0] else (rows, cols)
                        crops = crop_steps(*limit)

                        def run(i, det=det, crops=crops, precision=precision):
                            r, c = crops[i]
                            part = cube.isel(y=slice(0, r), x=slice(0, c))
                            with dask.config.set({"hsad.precision": precision}):
                                _ = det.score(part).values  # map into memory

                        sizes = [r * c for r, c in crops]
                        labels = [f"{r}x{c}" for r, c in crops]
                        note = f"output {det.output_}, {precision}"
                    add(kind, Result(work, column, note=note), sizes, run, labels, setup)

        print(f"measuring {len(jobs)} figures within {args.budget_s:.0f} s of the start "
              f"({max(0.0, deadline - time.perf_counter()):.0f} s left)", flush=True)
        for k, (weight, res, sizes, run, labels, setup) in enumerate(jobs):
            left = deadline - time.perf_counter()
            share = left * weight / sum(j[0] for j in jobs[k:])
            if left <= 0:
                res.note = f"skipped: time budget spent ({res.note})"
                results.append(res)
                continue
            try:
                if setup is not None:
                    setup()
                i, best, runs = measure(sizes, run, share, args.repeat,
                                        sync if "CUDA" in res.column else None)
                res.pixels, res.seconds, res.runs, res.size = sizes[i], best, runs, labels[i]
            except Exception as exc:  # report, go on with the others
                failed += 1
                res.note = f"error: {type(exc).__name__}: {exc} ({res.note})"
                traceback.print_exc()
            results.append(res)
            dump()
            print(f"  {res.work:<18s} {res.column:<16s} {res.size:>12s} "
                  f"{res.mpixel_s:9.3g} Mpixel/s  ({res.seconds:.2f} s, share {share:.0f} s)",
                  flush=True)
        for model in MODELS:  # leave the models on the CPU
            if model in trained:
                trained[model].set_params(device="cpu")

    # ---- the table ------------------------------------------------------------------
    info["load_end"] = list(os.getloadavg())
    if accel == "cuda":
        info["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    info["wall_s"] = time.perf_counter() - t_start
    rows_order = ["rx fit+score"] + [f"{m} {k}" for m in MODELS
                                     for k in ("training", "inference", "score")]
    cell = {(r.work, r.column): r for r in results}
    print()
    print(f"Mpixel/s (scene {rows}x{cols}x{bands}; CPU figures of the networks on the "
          f"{crop_r}x{crop_c} crop; sizes below)")
    print(f"{'work':<20s}" + "".join(f"{c:>18s}" for c in columns))
    for work in rows_order:
        line = f"{work:<20s}"
        for column in columns:
            r = cell.get((work, column))
            if r is None or (not r.runs and not r.note.startswith(("error", "skipped"))):
                text = "-"
            elif not r.runs:
                text = "error" if r.note.startswith("error") else "skipped"
            else:
                text = f"{r.mpixel_s:.3g}"
            line += f"{text:>18s}"
        print(line)
    print()
    print("details: work, column, largest step measured (crop or pixels), best seconds, "
          "timed runs at that step")
    for work in rows_order:
        for column in columns:
            r = cell.get((work, column))
            if r is None or (not r.runs and not r.note.startswith(("error", "skipped"))):
                continue
            print(f"  {work:<18s} {column:<16s} {r.size:>12s} {r.pixels:>10d} px "
                  f"{r.seconds:8.2f} s x{r.runs}  {r.note}")
    print(f"RX runs on the CPU by design (numpy/BLAS); its CUDA cells are empty. Load "
          f"average at the end {' '.join(f'{v:.2f}' for v in info['load_end'])}.")
    if accel is None:
        print("CUDA absent: CPU figures only.")
    print(f"total wall time {info['wall_s']:.1f} s")
    dump()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
