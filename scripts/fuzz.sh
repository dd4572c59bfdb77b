#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang 16 (into build-fuzz/, apart from the g++
# build) and runs each for a bounded time over a copy of its seed corpus (fuzz/corpus/TARGET).
# Fails, naming the target and the input that did it, on any crash, leak, timeout, out-of-memory
# or sanitizer report. Installs nothing: scripts/setup.sh installs clang-16 and libFuzzer.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--merge] [TARGET...]
#
#   --seconds N  time per target (default 8, the bound of the test command; run longer by hand,
#                e.g. --seconds 600)
#   --jobs J     targets run side by side (default 2)
#   --merge      afterwards, fold the inputs that add coverage into fuzz/corpus/TARGET (by hand,
#                then commit them; the test command never writes the committed corpus)
#   TARGET       filter article pickle hnsw tokenizer safetensors request (default: all)
# Environment: VSTORE_FUZZ_BUILD_DIR (default <repo>/build-fuzz), VSTORE_FUZZ_OPT (the -O level of
# the fuzz build, default 0: a third of -O1's compile time, which matters in the test command;
# use 1 for long runs, built into <build dir>-O1), VSTORE_FUZZ_MODEL_DIR (the tokenizer's model,
# default VSTORE_DATA_DIR/models/all-MiniLM-L6-v2). Crashing inputs are kept in
# <build dir>/artifacts/TARGET/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
all_targets=(filter article pickle hnsw tokenizer safetensors request)

seconds=8
jobs=2
merge=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:-}"; shift 2 ;;
    --jobs) jobs="${2:-}"; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1 (expected --seconds N, --jobs J, --merge or target names)" >&2; exit 2 ;;
    *)
      if [[ " ${all_targets[*]} " != *" $1 "* ]]; then
        echo "fuzz: unknown target \"$1\"; expected one of: ${all_targets[*]}" >&2
        exit 2
      fi
      targets+=("$1"); shift ;;
  esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: --seconds must be a positive integer, not \"$seconds\"" >&2; exit 2; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: --jobs must be a positive integer, not \"$jobs\"" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

command -v clang++-16 >/dev/null || { echo "fuzz: clang++-16 not found; run scripts/setup.sh (it installs clang-16 libfuzzer-16-dev libclang-rt-16-dev)" >&2; exit 1; }
opt="${VSTORE_FUZZ_OPT:-0}"
[[ "$opt" =~ ^[0-3]$ ]] || { echo "fuzz: VSTORE_FUZZ_OPT must be 0 to 3, not \"$opt\"" >&2; exit 2; }
build="${VSTORE_FUZZ_BUILD_DIR:-$root/build-fuzz}"
[ "$opt" = 0 ] || build="$build-O$opt"
data="${VSTORE_DATA_DIR:-$root/.vstore}"
model_dir="${VSTORE_FUZZ_MODEL_DIR:-$data/models/all-MiniLM-L6-v2}"
if [[ " ${targets[*]} " == *" tokenizer "* ]] && [ ! -f "$model_dir/vocab.txt" ]; then
  echo "fuzz: the tokenizer target needs a model directory with vocab.txt: $model_dir has none (set VSTORE_FUZZ_MODEL_DIR or run scripts/setup.sh)" >&2
  exit 1
fi

started=$(date +%s)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++-16 "${launcher[@]}" \
  -DVSTORE_FUZZ_OPT="$opt" >/dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$build" -j2 --target "${build_targets[@]}"
built=$(date +%s)
echo "fuzz: built ${#targets[@]} target(s) in $((built - started)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/vstore-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT

# One target: its corpus copied to $work, its artifacts kept in $build/artifacts/TARGET/.
run_target() {
  local t=$1
  local corpus="$work/corpus/$t" artifacts="$build/artifacts/$t" log="$work/$t.log"
  mkdir -p "$corpus" "$artifacts" "$work/tmp/$t"
  cp "$root/fuzz/corpus/$t"/* "$corpus"/
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$artifacts/")
  case "$t" in filter|article|request) args+=(-dict="$root/fuzz/json.dict") ;; esac
  local rc=0
  # The wall-clock bound catches a target that stops answering libFuzzer's own time limit.
  TMPDIR="$work/tmp/$t" VSTORE_FUZZ_MODEL_DIR="$model_dir" \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
    timeout --kill-after=10 $((seconds + 120)) "$build/fuzz_$t" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$work/$t.rc"
}

running=0
for t in "${targets[@]}"; do
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=()
for t in "${targets[@]}"; do
  log="$work/$t.log"
  rc=$(cat "$work/$t.rc" 2>/dev/null || echo 1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  printf 'fuzz: %-12s runs %-9s exec/s %-7s cov %-6s ft %-6s corpus %s\n' "$t" "${runs:-?}" "${speed:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}"
  # (a slow-unit-* file is only libFuzzer's note of an input that took over 10 s once, e.g. on a
  # loaded machine; a real hang is a timeout-* file)
  crash=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | grep -v '/slow-unit-' | tail -1 || true)
  if [ "$rc" != 0 ] || [ -n "$crash" ] || grep -qE '^SUMMARY: |ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
    echo "fuzz: FAILED: target $t (exit $rc)${crash:+; the input is $crash}" >&2
    { grep -E 'ERROR:|runtime error:|SUMMARY:|^fuzz_[a-z]*: |what\(\)' "$log" || true; } | head -n 10 | sed 's/^/  /' >&2
    cp "$log" "$build/artifacts/$t/last-run.log"
    echo "  (whole log: $build/artifacts/$t/last-run.log; reproduce: $build/fuzz_$t ${crash:-INPUT})" >&2
    failed+=("$t")
  elif [ "$merge" = 1 ]; then
    before=$(ls "$root/fuzz/corpus/$t" | wc -l)
    "$build/fuzz_$t" -merge=1 "$root/fuzz/corpus/$t" "$work/corpus/$t" >"$work/$t.merge.log" 2>&1 \
      || { echo "fuzz: merging the corpus of $t failed (log: $work/$t.merge.log)" >&2; failed+=("$t"); continue; }
    echo "fuzz: $t: fuzz/corpus/$t has $(ls "$root/fuzz/corpus/$t" | wc -l) inputs (was $before)"
  fi
done
echo "fuzz: ${#targets[@]} target(s), ${seconds} s each, ${jobs} at a time: $(( $(date +%s) - started )) s in all (build $((built - started)) s)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
