#!/usr/bin/env bash
# Run the test suite once per BLAS/SIMD kernel family, as a cheap stand-in for other CPUs.
#
#   scripts/test_cpu_kernels.sh [pytest args…]       (make test-kernels)
#   FAMILIES="prescott zen" scripts/test_cpu_kernels.sh   (a subset)
#
# A failed family's whole pytest output is kept in $KERNEL_LOG_DIR (default /tmp) and named
# in the summary.
#
# Each run forces the kernels that OpenBLAS (numpy, scipy), MKL (torch's BLAS) and ATen
# (torch's own vectorised ops) would pick on an older or different CPU. Families that
# need instructions this CPU lacks (SkylakeX needs AVX-512) are reported, not run: forcing
# them dies with SIGILL. See docs/reliability.md.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { [[ " $flags " == *" $1 "* ]]; }

#        name          OPENBLAS_CORETYPE  MKL_ENABLE_INSTRUCTIONS  ATEN_CPU_CAPABILITY  needs
configs=(
  "prescott     Prescott     SSE4_2   default  pni"
  "sandybridge  Sandybridge  AVX      default  avx"
  "haswell      Haswell      AVX2     avx2     avx2"
  "zen          Zen          AVX2     avx2     avx2"
  "skylakex     SkylakeX     AVX512   avx512   avx512f"
)
declare -A result
status=0
for row in "${configs[@]}"; do
  read -r name core mkl aten need <<<"$row"
  if [ -n "${FAMILIES:-}" ] && [[ " $FAMILIES " != *" $name "* ]]; then
    result[$name]="not asked for"
    continue
  fi
  if ! has "$need"; then
    result[$name]="not run: this CPU lacks $need"
    continue
  fi
  echo "=== $name: OPENBLAS_CORETYPE=$core MKL_ENABLE_INSTRUCTIONS=$mkl ATEN_CPU_CAPABILITY=$aten"
  log=$(mktemp)
  OPENBLAS_CORETYPE=$core MKL_ENABLE_INSTRUCTIONS=$mkl ATEN_CPU_CAPABILITY=$aten \
    "$PY" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log" | tail -n 3
  rc=${PIPESTATUS[0]}
  result[$name]="rc $rc: $(grep -E '^[0-9]+ (passed|failed)|(passed|failed).* in ' "$log" | tail -n 1)"
  if [ "$rc" -eq 0 ]; then
    rm -f "$log"
  else  # keep the whole output of a failed run: a rare failure must be readable afterwards
    status=1
    kept="${KERNEL_LOG_DIR:-/tmp}/hsad-kernels-$name-$(date +%Y%m%dT%H%M%S).log"
    mv "$log" "$kept" && result[$name]+=" (full output: $kept)"
  fi
done
echo
echo "kernel family  result"
for row in "${configs[@]}"; do
  read -r name _ <<<"$row"
  printf '%-13s  %s\n' "$name" "${result[$name]}"
done
exit $status
