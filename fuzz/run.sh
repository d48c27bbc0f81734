#!/usr/bin/env bash
# Fuzzes every target of a STOWAGE_FUZZ build for FUZZ_SECONDS each (default 60), one after the
# other, from its committed seeds (fuzz/corpus/<name>, read only) plus what earlier runs found
# (<build>/fuzz/work/<name>). Memory is capped at 512 MB and each input at the target's -max_len
# (fuzz/CMakeLists.txt); one input running over 10 s counts as a hang. Stops at the first target that
# finds something: the input is left in <build>/fuzz/artifacts/ and the command to replay it printed.
# FUZZ_SEED=N fixes libFuzzer's seed (default: a new one each run): CI uses it so that what CI runs
# is a prefix of what a longer run with the same seed and an empty working corpus runs here.
# Usage: fuzz/run.sh BUILD_DIR [TARGET ...]
set -euo pipefail
build="${1:?usage: fuzz/run.sh BUILD_DIR [TARGET ...]}"
shift
seconds="${FUZZ_SECONDS:-60}"
seed_flag=()
[ -z "${FUZZ_SEED:-}" ] || seed_flag=(-seed="$FUZZ_SEED")
root="$(cd "$(dirname "$0")/.." && pwd)"
list="$build/fuzz/targets.txt"
[ -f "$list" ] || { echo "fuzz/run.sh: $list missing: configure $build with -DSTOWAGE_FUZZ=ON" >&2; exit 2; }
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
mkdir -p "$build/fuzz/artifacts"
total_runs=0
passed=0
while read -r name max_len; do
  [ -n "$name" ] || continue
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  work="$build/fuzz/work/$name"
  mkdir -p "$work"
  log="$build/fuzz/$name.log"
  echo "== fuzz_$name: ${seconds}s, -max_len=$max_len"
  if ! "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -rss_limit_mb=512 -max_len="$max_len" -timeout=10 \
      -print_final_stats=1 "${seed_flag[@]}" -artifact_prefix="$build/fuzz/artifacts/$name-" \
      "$work" "$root/fuzz/corpus/$name" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz_$name FAILED: see $log; replay with $build/fuzz/fuzz_$name $build/fuzz/artifacts/$name-*" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "   ${runs:-?} executions, $(ls "$work" | wc -l) inputs in its working corpus"
  total_runs=$((total_runs + ${runs:-0}))
  passed=$((passed + 1))
done <"$list"
echo "every target ran ${seconds}s without a finding ($total_runs executions in all)"
echo "fuzz: $passed passed, 0 failed"
