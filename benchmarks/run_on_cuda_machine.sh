#!/usr/bin/env bash
# Issue #16's GPU figures in one run on the project's lent CUDA machine
# (benchmarks/README_gpu.md): install the carried wheels (.whl/), check the imports, run
# the CUDA tests (tests/test_cuda.py and the CUDA training test), bench_gpu.py (RX, HADGAN,
# f-AnoGAN; CPU, CUDA fp32, CUDA bf16), then the
# out-of-core CLI run on a 2048 x 2048 x 200 int16 ENVI scene (RX and HADGAN D_SS GeoTIFFs
# through `hsad detect`, the network on the GPU). Logs and JSON go to $OUT (or ./gpu_out).
# Each step is bounded: TESTS_S, BENCH_S, OOC_S (defaults 100 + 270 + 130 = 500 s), so that
# with the setup (install, copy, import check: about 10-20 s) the default run ends within
# the `timeout_s 560` that README_gpu.md gives it, with a margin: a step that reaches its
# limit is cut by its own timeout, not the whole run by the device's.
set -u -o pipefail
out=$(realpath -m "${OUT:-gpu_out}")
repo=$PWD
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
# hsad as installed: the package, with cli/ as hsad.cli (pyproject.toml's package-dir)
rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r hsad /tmp/pkg/ && cp -r cli /tmp/pkg/hsad/cli
export PYTHONPATH=/tmp/site:/tmp/pkg PYTHONUNBUFFERED=1
cd /tmp  # not the checkout: its hsad/ lacks hsad.cli
{ nvidia-smi -L; nproc; free -g | head -2; uptime; } 2>&1 | tee "$out/machine.txt"
python3 -c "import numpy, numba, torch, dask, rasterio, xarray, shapely, safetensors
print('numpy', numpy.__version__, 'numba', numba.__version__, 'torch', torch.__version__,
      'dask', dask.__version__, 'rasterio', rasterio.__version__, 'xarray', xarray.__version__)
import hsad.detectors, hsad.cli.main" 2>&1 | tee -a "$out/machine.txt" || exit 1
timeout "${TESTS_S:-100}" python3 -m pytest -q -p no:cacheprovider "$repo"/tests/test_cuda.py \
    "$repo"/tests/test_hadgan.py::test_cuda_training_runs 2>&1 | tee "$out/tests.txt"
timeout "${BENCH_S:-270}" python3 "$repo"/benchmarks/bench_gpu.py --json "$out/bench_gpu.json" "$@" \
    2>&1 | tee "$out/bench_gpu.txt"
mkdir -p /tmp/ooc
timeout "${OOC_S:-130}" python3 "$repo"/benchmarks/bench_out_of_core.py --size 2048x2048x200 \
    --memory-limit 1GB --dir /tmp/ooc --json "$out/out_of_core.json" 2>&1 \
    | tee "$out/out_of_core.txt"
