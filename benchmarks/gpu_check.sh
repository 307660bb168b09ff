#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU (CUDA 12 driver), from the repository root,
#   python -m pip install -c constraints.txt --config-settings editable_mode=compat -e '.[cuda,real,dev]'
#   bash benchmarks/gpu_check.sh
# runs the test suite's GPU-relevant subset on the GPU, the synthetic benchmark, a batched captions map
# (side by side with the basic launcher on a reduced sweep, then at full size) and the realdata benchmark,
# and prints absolute figures with the device name. Everything it prints is also under $OUT (default
# benchmarks/out/gpu/). No GPU was lent to the session that wrote it: its figures are not in the README yet.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out/gpu}
mkdir -p "$OUT"
PY=${PY:-python}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec > >(tee "$OUT/gpu_check.log") 2>&1

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "devices"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
$PY - <<'EOF'
import jax, torch
print("jax", jax.__version__, jax.default_backend(), [d.device_kind for d in jax.devices()])
print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "NO CUDA",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
assert jax.default_backend() == "gpu", "jax sees no GPU: install the .[cuda] extra (jax[cuda12])"
assert torch.cuda.is_available(), "torch sees no CUDA device"
EOF

step "tests on the GPU (JAX programs, launchers, realdata on cuda)"
# full float32 matmuls: the launcher test compares two batchings to float32 reduction noise, not TF32's
JAX_PLATFORMS=cuda JAX_DEFAULT_MATMUL_PRECISION=highest $PY -m pytest -q -x -p no:cacheprovider \
  tests/test_synthetic_train.py tests/test_synthetic_minibatch.py tests/test_synthetic_losses.py \
  tests/test_batched_launcher.py tests/test_realdata.py 2>&1 | tail -5

step "synthetic benchmark (compiled run vs Python loop vs PyTorch per-seed loop)"
$PY -m synthetic.bench --out "$OUT/synthetic_bench.json" --torch-threads 1 2>&1 | tail -25

step "captions map: basic vs batched launcher (reduced sweep), then batched at full size"
$PY benchmarks/batched_launcher.py --experiment captions --work "$OUT/sweeps" \
  --out "$OUT/batched_launcher_captions.json"

step "theorem62: basic vs batched launcher (3 points at full size), then all 11 batched"
$PY benchmarks/batched_launcher.py --experiment theorem62 --reduce "data.p_spu=0.5,0.75,1.0" \
  --work "$OUT/sweeps-theorem62" --out "$OUT/batched_launcher_theorem62.json"

step "realdata benchmark (ViT-B-32 random weights, 640 generated images, on cuda)"
$PY -m realdata.bench --models ViT-B-32 --device cuda --cli --out "$OUT/realdata_bench.json" 2>&1 | tail -8

step "done: figures above and in $OUT"
