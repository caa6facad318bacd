#!/usr/bin/env bash
# The prepared GPU check of issue 21: under 8 minutes on one GPU (each step has a time limit;
# the limits add up to 470 s). Run it from a checkout with a CUDA build of torch installed:
#
#     bash benchmarks/gpu_check.sh [PYTHON]        # PYTHON defaults to .venv/bin/python
#
# Steps (logs in gpu_check_output/NN_name.log, the last lines echoed): the device; the CUDA tests
# (tests/engine/test_cuda.py and the precision / channels_last / collective tests); one digits
# training epoch with bf16 and one with fp16 AMP; evaluate in bf16 and fp32; predict in bf16; the
# side-by-side speed rows against torchvision on CUDA (benchmarks/speed.py, 4 set-ups, memory
# for RetinaNet); `anchordet benchmark` of the digits RetinaNet. Record the figures in
# BENCHMARKS.md with the GPU's name. Exit status 0 when every step passed.
# GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 GPU_CHECK_TIME_SCALE=20 runs the same steps small on a CPU,
# with 20 times the time limits (a dry run of the script itself).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-.venv/bin/python}}
OUT=${GPU_CHECK_OUT:-gpu_check_output}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
ANCHORDET=("$PY" -m anchordet.cli.main)
DIGITS=(--set data.num_workers=4 --set run.device="$DEVICE" --set solver.epochs=1 --set run.eval_every=1)
SPEED=(--repeats 10 --train-repeats 5)
SPEED_MODELS=(retinanet ssd frcnn)
TIME_SCALE=${GPU_CHECK_TIME_SCALE:-1}
BENCH=(--batch-size 1 32 --repeats 10)
if [ -n "${GPU_CHECK_QUICK:-}" ]; then  # small: to check the script itself
    DIGITS+=(--set data.digits.num_train=64 --set data.digits.num_val=8 --set data.num_workers=0)
    SPEED=(--repeats 1 --train-repeats 1 --size-scale 0.25)
    SPEED_MODELS=(retinanet)
    BENCH=(--batch-size 2 --repeats 1)
fi
failed=()

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, echo the tail
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name (limit ${limit}s): $*"
    start=$(date +%s)
    timeout "$(( limit * TIME_SCALE ))" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    echo "   exit $rc after $(( $(date +%s) - start )) s"
    tail -n 20 "$OUT/$name.log" | sed 's/^/   | /'
    [ "$rc" -eq 0 ] || failed+=("$name")
}

step 00_device 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
    $PY -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available() and \
    torch.cuda.get_device_name(0), \"bf16\", torch.cuda.is_available() and torch.cuda.is_bf16_supported())'"
step 01_cuda_tests 80 "$PY" -m pytest -q -p no:cacheprovider tests/engine/test_cuda.py tests/engine/test_precision.py \
    tests/engine/test_acceleration.py tests/engine/test_distributed.py
step 02_train_bf16 60 "${ANCHORDET[@]}" train --no-progress -c retinanet_digits --precision bf16 "${DIGITS[@]}" \
    --set run.out_dir="$OUT/train_bf16"
step 03_train_fp16 60 "${ANCHORDET[@]}" train --no-progress -c retinanet_digits --precision fp16 "${DIGITS[@]}" \
    --set run.out_dir="$OUT/train_fp16"
step 04_evaluate_bf16 25 "${ANCHORDET[@]}" evaluate --weights "$OUT/train_bf16/model.safetensors" --data digits \
    --precision bf16 --device "$DEVICE" --out "$OUT/eval_bf16"
step 05_evaluate_fp32 25 "${ANCHORDET[@]}" evaluate --weights "$OUT/train_bf16/model.safetensors" --data digits \
    --precision fp32 --device "$DEVICE" --out "$OUT/eval_fp32"
step 06_predict_bf16 25 bash -c "${ANCHORDET[*]} data digits --out '$OUT/scenes' --num-train 1 --num-val 8 && \
    ${ANCHORDET[*]} predict --weights '$OUT/train_bf16/model.safetensors' '$OUT/scenes/images/val' \
    --precision bf16 --device $DEVICE --out '$OUT/predict_bf16'"
SETUPS=(fp32 fp32+cl bf16+cl fp16+cl)
[ "$DEVICE" = cuda ] || SETUPS=(fp32 fp32+cl bf16+cl)
step 07_speed_rows 105 "$PY" benchmarks/speed.py --device "$DEVICE" --models "${SPEED_MODELS[@]}" --no-jit --no-memory \
    --setups "${SETUPS[@]}" "${SPEED[@]}"
step 08_speed_memory 40 "$PY" benchmarks/speed.py --device "$DEVICE" --models retinanet --no-jit --memory-only \
    --setups fp32 bf16+cl "${SPEED[@]}"
step 09_benchmark 20 "${ANCHORDET[@]}" benchmark -c retinanet_digits --device "$DEVICE" --mode infer train \
    "${BENCH[@]}" --json "$OUT/benchmark_retinanet_digits.json"

if [ ${#failed[@]} -eq 0 ]; then
    echo "gpu_check: every step passed; logs in $OUT/"
else
    echo "gpu_check: failed steps: ${failed[*]} (logs in $OUT/)"
    exit 1
fi
