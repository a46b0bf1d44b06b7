#!/usr/bin/env bash
# The GPU check of issue 15, one script, at most 8 minutes on one H200:
#   1. the GPU correctness tests (tests/test_gpu.py: the line engine against a plain per-α loop on CUDA in every
#      BatchNorm mode in float32, GPU training against CPU training, the compute options, no host sync per iteration);
#   2. the GPU figures (benchmarks/gpu_figures.py: CIFAR-ResNet-20 training iterations/s at batch 128 under each
#      compute option, a 100-point ResNet-20 line on 10k test images with and without BN recompute against a plain
#      per-α loop, the projected wall time of the full cifar10-resnet_20 Frankle study).
# Results (log, gpu_figures.json/.txt, the tests' junit XML) go under $OUT (default: results/gpu_check).
#
#   bash benchmarks/gpu_check.sh               # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --cpu-smoke   # tiny sizes on the CPU, seconds: checks the script itself (CI)
#
# Exit status: 0 when the tests passed and the figures were written; 1 otherwise; 2 for a usage error.
set -uo pipefail
cd "$(dirname "$0")/.."

smoke=0
case "${1:-}" in
  "") ;;
  --cpu-smoke) smoke=1 ;;
  *) echo "error: unknown argument ${1}; use no argument (GPU) or --cpu-smoke." >&2; exit 2 ;;
esac

OUT="${OUT:-results/gpu_check}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
log="$OUT/gpu_check.log"
: > "$log"

if [[ $smoke == 1 ]]; then
  device=cpu
  # the test file's harness on the CPU (its CUDA-only tests skip); the full CPU run: LOSSPATH_TEST_DEVICE=cpu pytest
  tests=(tests/test_gpu.py -k "line_on_the_device_equals or lenet")
  export LOSSPATH_TEST_DEVICE=cpu
  figures=(--device cpu --smoke)
  test_limit=120 figure_limit=120
else
  if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: no CUDA GPU is visible here; on a CPU machine run: bash benchmarks/gpu_check.sh --cpu-smoke" >&2
    exit 2
  fi
  device=cuda
  tests=(tests/test_gpu.py)
  figures=(--device cuda)
  test_limit=150 figure_limit=300  # plus start-up: within 8 minutes
fi

{
  echo "== gpu_check ($([[ $smoke == 1 ]] && echo "CPU smoke" || echo GPU)) $(date -u +%FT%TZ), device $device =="
  python -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|',
             torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
} 2>&1 | tee -a "$log"

echo -e "\n== 1. correctness tests: ${tests[*]} ==" | tee -a "$log"
timeout "$test_limit" python -m pytest "${tests[@]}" -q -rs -p no:cacheprovider --junitxml="$OUT/test_gpu.xml" 2>&1 \
  | tee -a "$log"
tests_rc=${PIPESTATUS[0]}

echo -e "\n== 2. figures ==" | tee -a "$log"
timeout "$figure_limit" python benchmarks/gpu_figures.py "${figures[@]}" --out "$OUT" 2>&1 | tee -a "$log"
figures_rc=${PIPESTATUS[0]}

echo -e "\n== tests exit status $tests_rc, figures exit status $figures_rc (124: over the time limit); results in $OUT ==" \
  | tee -a "$log"
[[ $tests_rc == 0 && $figures_rc == 0 ]]
