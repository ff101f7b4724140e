#!/usr/bin/env bash
# The GPU acceptance checks of the PyTorch engine in one command, for one `device` call (docs/PERFORMANCE.md,
# "GPU"): the gpu-marked tests, decode against the memory-bandwidth limit at batch 64 on a ~1.1B model,
# and the engine bench on CUDA in bfloat16 ((a) transformers static batches vs (c) Hangar's engine).
# Needs only what the GPU image holds (torch, transformers, safetensors, tokenizers, numpy, pytest); run
# from the repository root. Results go to $OUT (or ./gpu-results), logs included. ~6-8 minutes on an H100.
set -u -o pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
status=0
timeout 240 "$PY" -m pytest tests/gpu -q -p no:cacheprovider -o addopts="-ra" 2>&1 | tee "$OUT/tests.txt" \
    || status=1
timeout 150 "$PY" bench/decode_bandwidth.py --device cuda --dtype bfloat16 --batch 64 --context 512 \
    --json "$OUT/decode.json" 2>&1 | tee "$OUT/decode.txt" || status=1
timeout 240 "$PY" bench/engine_throughput.py --device cuda --dtype bfloat16 --engines a,c --same-process \
    --hidden 2048 --intermediate 5632 --layers 22 --heads 32 --kv-heads 4 --json "$OUT/engine.json" \
    2>&1 | tee "$OUT/engine.txt" || status=1
exit $status
