#!/usr/bin/env bash
# The GPU check in one go, for the GPU machine (its own python3, nothing installed there).
#
#   here:  bash tools/gpu_check.sh prepare   # copies Fashion-MNIST into .gpu-data/ (ignored)
#   there: bash tools/gpu_check.sh run       # with .gpu-data carried along; results in $OUT
#
# "run" prints the device, runs the oracle suite on CuPy arrays (make test-gpu), the
# benchmark against PyTorch + cuDNN (make bench-gpu) and two epochs of the seed recipe on
# real Fashion-MNIST on the GPU, each under its own time limit (about 6 minutes in all).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/dojang-gpu-out}
mkdir -p "$OUT"
case "${1:-run}" in
prepare)
    src=${DOJANG_DATA:-/usr/share/datasets}/fashion-mnist
    mkdir -p .gpu-data/fashion-mnist
    cp "$src"/*-ubyte.gz .gpu-data/fashion-mnist/
    ls -l .gpu-data/fashion-mnist
    ;;
run)
    export PYTHONUNBUFFERED=1 DOJANG_DATA="$PWD/.gpu-data"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
    python3 -c "import cupy, torch; print('cupy', cupy.__version__, 'torch', torch.__version__)"
    timeout 200 make test-gpu 2>&1 | tee "$OUT/test-gpu.log" | tail -40
    timeout 100 make bench-gpu 2>&1 | tee "$OUT/bench-gpu.log"
    timeout 120 env PYTHONPATH=src python3 -m dojang.cli train --recipe seed --epochs 2 \
        --device gpu --out "$OUT/seed-gpu" 2>&1 | tail -25 | tee "$OUT/seed-gpu.log"
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
