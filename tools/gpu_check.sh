#!/usr/bin/env bash
# The GPU path measured in one step (issue 14, target 5), on a machine with an NVIDIA GPU:
#   tools/gpu_check.sh [OUT_DIR]        (default: gpu_check/<date>; nothing there is overwritten)
# 1. installs the `gpu` extra into the Python that runs it, unless ONNX Runtime already offers
#    CUDAExecutionProvider and numba-cuda and CuPy import (so it also runs offline, pre-installed);
# 2. runs the GPU tests on the real device (tests/kernels/cuda, tests/caffe_port/test_gpu_path.py);
# 3. runs `caffe-port bench --device cuda` on VGG16 and EfficientNet-Lite0 at batch 1 and 8 with
#    the PyTorch CUDA peer, and writes the JSON and the tables.
# Aimed at under 8 minutes on an H100 (the bench's repeats are 5 by default; GPU_CHECK_REPEATS
# sets them). Each step's output goes to OUT_DIR; the first failing step stops the script with
# its name on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${1:-gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    echo "gpu_check: $OUT already holds files; give another folder" >&2; exit 2
fi
mkdir -p "$OUT"
step() { echo "gpu_check: $1" >&2; }
fail() { echo "gpu_check: failed at $1 (see $OUT)" >&2; exit 1; }

step "checking the GPU stack"
if ! "$PYTHON" - <<'PY' >"$OUT/stack.txt" 2>&1
import onnxruntime, numba.cuda, cupy
assert "CUDAExecutionProvider" in onnxruntime.get_available_providers(), onnxruntime.get_available_providers()
assert numba.cuda.is_available(), "numba.cuda sees no GPU"
print(onnxruntime.__version__, cupy.__version__, numba.cuda.get_current_device().name)
PY
then
    step "installing the gpu extra"
    "$PYTHON" -m pip install -q -e ".[gpu]" >"$OUT/install.txt" 2>&1 || fail "pip install -e .[gpu]"
    "$PYTHON" -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers()" \
        >>"$OUT/install.txt" 2>&1 || fail "ONNX Runtime without its CUDA provider after the install"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/gpu.csv" 2>&1 || true

step "GPU tests"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/kernels/cuda tests/caffe_port/test_gpu_path.py \
    >"$OUT/tests.txt" 2>&1 || fail "the GPU tests"
tail -1 "$OUT/tests.txt" >&2

step "caffe-port bench --device cuda (VGG16, EfficientNet-Lite0; batch 1 and 8; PyTorch CUDA peer)"
"$PYTHON" -m caffe_port.cli bench --device cuda --models vgg16,efficientnet-lite0 --batch 1,8 \
    --repeats "${GPU_CHECK_REPEATS:-5}" --no-notebook --no-startup --json >"$OUT/bench.json" \
    2>"$OUT/bench.stderr" || fail "caffe-port bench --device cuda"
"$PYTHON" -m caffe_port.cli bench --load "$OUT/bench.json" >"$OUT/bench.txt" 2>&1 || fail "reading bench.json"
cat "$OUT/bench.txt"
step "written: $OUT/bench.json, bench.txt, tests.txt"
