#!/usr/bin/env bash
# The GPU checks in three device calls (stages) for a session that is lent a GPU: build and the gpu-marked
# tests; fastbert bench on CUDA (bert-base fp16/bf16, with and without CUDA graphs); the bundled MiniLM, a
# profile, the Triton kernel sweeps and a torch.compile reference. Each stage's logs and results land in one
# archive under $OUT (a device call returns at most 8 files) plus summary.txt, printed as it goes.
#
# Here, once per session (the bundled model package is not on the GPU image and too big to carry whole):
#     echo /.gpu/ >> .git/info/exclude && python benchmarks/gpu_prepare.py .gpu/minilm
# Then one device `run` per stage, each with carry [".gpu"]: `bash benchmarks/gpu_session.sh tests`, then
# `... bench`, then `... extra`. Each stage fits one call's 10 minutes (every step has its own time limit, so
# one hang does not cost the rest), and the editable build is reused while the machine stays warm.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
[ -f .gpu/minilm/config.json ] && export FASTBERT_MODEL_DIR=$PWD/.gpu/minilm
SUMMARY="$OUT/summary.txt"
say() { echo "== $*" | tee -a "$SUMMARY"; }
step() {  # step SECONDS NAME COMMAND...: run with a time limit, log to $WORK/NAME.log, keep its tail
    local limit=$1 name=$2
    shift 2
    say "$name"
    timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    tail -n 12 "$WORK/$name.log" | tee -a "$SUMMARY"
    [ $rc -eq 0 ] || say "$name exited $rc"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader | tee -a "$SUMMARY"
python3 -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__,
'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$SUMMARY"
# the editable install survives between calls while the machine stays warm
python3 -c "import fastbert._tokenizer, fastbert.kernels" 2>/dev/null ||
    step 240 build python3 -m pip install --no-build-isolation --no-deps -e .

stage=${1:-tests}
case "$stage" in
tests)  # the gpu-marked tests: kernels compiled for real, fp16/bf16 parity with the FlashAttention 2x rule
    step 480 tests-gpu python3 -m pytest -q -p no:cacheprovider -m gpu tests
    ;;
bench)  # issue 7's cases on bert-base: fastbert vs transformers sdpa/eager, then fastbert as CUDA graph replays
    for dtype in fp16 bf16; do
        step 200 "bench-bert-base-$dtype" python3 -m fastbert bench --device cuda --dtype "$dtype" \
            --model bert-base --batch-sizes 1,32 --seq-lens 128,512 --dists full,real --modes infer,train \
            --out "$WORK/bench-bert-base-$dtype"
        step 90 "bench-bert-base-$dtype-graphs" python3 -m fastbert bench --device cuda --dtype "$dtype" \
            --model bert-base --batch-sizes 1,32 --seq-lens 128 --dists full,real --modes infer --providers fastbert,hf-sdpa \
            --cuda-graphs --out "$WORK/bench-bert-base-$dtype-graphs"
    done
    ;;
extra)  # the default bench on the bundled MiniLM, a profile, the per-kernel sweeps, torch.compile reference
    step 150 bench-minilm python3 -m fastbert bench --device cuda --out "$WORK/bench-minilm"
    step 90 profile python3 -m fastbert profile --device cuda --model bert-base --batch-size 32 --seq-len 128 --dist real \
        --out "$WORK/profile"
    step 180 kernel-sweeps python3 benchmarks/bench_kernel_sweeps.py
    step 150 bench-compile python3 -m fastbert bench --device cuda --dtype fp16 --model bert-base --batch-sizes 32 \
        --seq-lens 128 --dists full --modes infer --compile --out "$WORK/bench-compile"
    ;;
*)
    echo "usage: bash benchmarks/gpu_session.sh [tests|bench|extra]" >&2
    exit 2
    ;;
esac
tar czf "$OUT/gpu-$stage.tgz" -C "$WORK" .
say "wrote $OUT/gpu-$stage.tgz; unpack it under benchmarks/results/<device>-<date>/"
