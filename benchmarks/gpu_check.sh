#!/usr/bin/env bash
# Everything we check on a GPU, in one call (under 8 minutes), on a machine with one NVIDIA GPU
# and JAX with CUDA already installed:
#
#   bash benchmarks/gpu_wheels.sh                  # here, with a network: fills .gpu_wheels/
#   OUT=/some/folder bash benchmarks/gpu_check.sh  # there; results under $OUT
#
# Stages, each with its own time limit; one that fails or runs out of time is recorded in
# $OUT/stages.txt and the next one still runs:
#   install    the project with --no-deps (the machine's jax, jaxlib, flax, optax, orbax stay,
#              so our pins never fight its CUDA build), then .gpu_wheels/*.whl if carried;
#              versions.json says what ran
#   gpu_tests  the tests marked gpu: cuDNN parity, the compiled Pallas kernel, offload
#   attention  benchmarks/attention.py --preset h200 (bf16, 512-32k tokens): xla, cudnn, our
#              pallas, blockwise, chunked, auto, and jax's bundled Pallas kernel; the CSV, the
#              PNG and the auto table rebuilt from these rows (auto_table.json)
#   step_mfu   benchmarks/step_mfu.py on configs/llm_1b.py (1.24B parameters, bf16, 8 x 2048
#              tokens on one GPU): seconds per step, TFLOP/s and MFU
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/stages.txt"

stage() {  # stage NAME SECONDS COMMAND...: output in $OUT/NAME.log, rc in stages.txt
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "[$(date +%T)] $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$((SECONDS - start))" | tee -a "$OUT/stages.txt"
  tail -n 5 "$OUT/$name.log"
}

stage install 60 bash -c "$PY -m pip install --no-deps --no-build-isolation -e . &&
  if [ -d .gpu_wheels ]; then $PY -m pip install --no-deps --no-index .gpu_wheels/*.whl; fi"
$PY - > "$OUT/versions.json" 2>&1 <<'PYEOF'
import importlib.metadata as md, json, platform
import jax
names = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "jraph", "numpy",
         "torch", "transformers")
versions = {}
for name in names:
    try:
        versions[name] = md.version(name)
    except md.PackageNotFoundError:
        versions[name] = None
print(json.dumps({"python": platform.python_version(), "backend": jax.default_backend(),
                  "devices": [d.device_kind for d in jax.devices()], "packages": versions},
                 indent=1))
PYEOF
cat "$OUT/versions.json"

stage gpu_tests 120 $PY -m pytest -q -p no:randomly -p no:cacheprovider -m gpu \
  tests/test_attention.py tests/test_attention_pallas.py tests/test_train_memory.py \
  --junitxml "$OUT/gpu_tests.xml"
stage attention 200 $PY benchmarks/attention.py --preset h200 --head-dims 128 --repeats 5 \
  --out "$OUT" --table
cp astrojax/models/attention/auto_table.json "$OUT/auto_table.json" 2>/dev/null
stage step_mfu 100 $PY benchmarks/step_mfu.py --config configs/llm_1b.py --batch 8 --seq 2048 \
  --steps 10 --out "$OUT"
echo "done: $(tr '\n' ';' < "$OUT/stages.txt")"
