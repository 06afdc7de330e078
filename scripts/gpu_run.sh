#!/usr/bin/env bash
# The one script to run on the GPU machine (one H200, no network). Stages, in order:
#   build  scripts/gpu_build.sh build-gpu (carried .debs and wheels; incremental when build-gpu/ is kept)
#   test   ctest -L gpu (the kernel and backend tests on the device)
#   bench  bench/engine_gpu.py: engine vs transformers vs roofline per model shape (random bf16 weights)
#   e2e    scripts/gpu_e2e.py: sluice serve on a random-weight SmolLM2 directory with the real tokenizer
#          (.gpu-assets/smollm2-tokenizer, from scripts/export_tokenizer.py), 32 streaming openai clients
# Every stage runs under `timeout` with a budget cut to what is left of GPU_RUN_TOTAL_S (a device call is at
# most 600 s); a stage that fails is recorded and the next one still runs; the exit status is 1 when any
# stage failed or was skipped for lack of time. Results and logs go to $OUT (default ./gpu-out):
#   stages.tsv (stage, status, seconds), gpu_run.md (the summary), <stage>.log, bench/, e2e/.
#
# Usage: scripts/gpu_run.sh [STAGES]      STAGES: comma-separated, default build,test,bench,e2e
# Environment (all optional):
#   GPU_RUN_STAGES    the stages when no argument is given
#   GPU_RUN_TOTAL_S   seconds for the whole script (570)
#   GPU_RUN_BUILD_DIR the build directory (build-gpu)
#   BUILD_S TEST_S BENCH_S E2E_S   per-stage budgets (300, 150, 330, 150), each capped by the time left
#   GPU_BENCH_SHAPES  shapes for the bench (llama-3.1-8b,llama-3.2-1b,smollm2-135m)
#   GPU_BENCH_ARGS    extra bench/engine_gpu.py arguments (e.g. "--compiled" or "--enforce-eager")
#   GPU_E2E_ARGS      extra scripts/gpu_e2e.py arguments (e.g. "--clients 64 --duration 30")
# On a cold machine the build alone can take minutes: run "build,test" in one call and "bench,e2e" (whose
# build stage is then a no-op if included) in the next.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
STAGES=${1:-${GPU_RUN_STAGES:-build,test,bench,e2e}}
TOTAL=${GPU_RUN_TOTAL_S:-570}
BUILD=${GPU_RUN_BUILD_DIR:-build-gpu}
START=$(date +%s)
export LD_LIBRARY_PATH="/tmp/sluice-prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
: > "$OUT/stages.tsv"
failed=0

left() { echo $(( TOTAL - ($(date +%s) - START) )); }

# run_stage NAME BUDGET CMD...: runs CMD under timeout with min(BUDGET, time left - 5), logs to $OUT/NAME.log.
run_stage() {
  local name=$1 budget=$2
  shift 2
  local room=$(( $(left) - 5 ))
  if (( room < 20 )); then
    echo "gpu_run: $name skipped: only ${room}s left" | tee -a "$OUT/$name.log"
    printf '%s\tskipped (no time)\t0\n' "$name" >> "$OUT/stages.tsv"
    failed=1
    return
  fi
  (( budget > room )) && budget=$room
  echo "gpu_run: $name (budget ${budget}s): $*"
  local t0
  t0=$(date +%s)
  timeout --kill-after=10 "$budget" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local status=$rc
  (( rc == 124 || rc == 137 )) && status="$rc (timed out after ${budget}s)"
  printf '%s\t%s\t%s\n' "$name" "$status" "$dt" >> "$OUT/stages.tsv"
  echo "gpu_run: $name -> $status in ${dt}s"
  tail -n 15 "$OUT/$name.log"
  (( rc != 0 )) && failed=1
}

has() { [[ ",$STAGES," == *",$1,"* ]]; }

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true

if has build; then
  run_stage build "${BUILD_S:-300}" bash scripts/gpu_build.sh "$BUILD"
fi
if has test; then
  run_stage test "${TEST_S:-150}" env PYTHONPATH=/tmp/site \
    ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 120
fi
if has bench; then
  room=$(( $(left) - 5 ))
  budget=${BENCH_S:-330}
  (( budget > room )) && budget=$room
  # The benchmark fits its own processes into the stage's budget, less a margin for its report.
  # shellcheck disable=SC2086
  run_stage bench "$budget" python3 bench/engine_gpu.py --bin-dir "$BUILD/bin" --out "$OUT/bench" \
    --shapes "${GPU_BENCH_SHAPES:-llama-3.1-8b,llama-3.2-1b,smollm2-135m}" --total-seconds $(( budget - 20 )) \
    ${GPU_BENCH_ARGS:-}
fi
if has e2e; then
  # shellcheck disable=SC2086
  run_stage e2e "${E2E_S:-150}" env PYTHONPATH=/tmp/site python3 scripts/gpu_e2e.py \
    --sluice "$BUILD/bin/sluice" --out "$OUT/e2e" --clients 32 --duration 20 ${GPU_E2E_ARGS:-}
fi

{
  echo "# GPU run $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) (working tree may differ)"
  echo "- command: \`scripts/gpu_run.sh $STAGES\`, total budget ${TOTAL}s, used $(( $(date +%s) - START ))s"
  echo
  echo "| stage | exit status | seconds |"
  echo "|---|---|---:|"
  while IFS=$'\t' read -r s st dt; do echo "| $s | $st | $dt |"; done < "$OUT/stages.tsv"
  echo
  if [ -f "$OUT/test.log" ]; then
    echo '```'
    grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\*\*\*" "$OUT/test.log" | tail -n 20
    echo '```'
    echo
  fi
  [ -f "$OUT/bench/report.md" ] && cat "$OUT/bench/report.md"
  [ -f "$OUT/e2e/e2e.md" ] && cat "$OUT/e2e/e2e.md"
} > "$OUT/gpu_run.md"
echo "gpu_run: summary in $OUT/gpu_run.md"
exit $failed
