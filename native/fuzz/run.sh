#!/usr/bin/env bash
# Runs every libFuzzer harness built in BUILD_DIR for SECONDS each, two at a time, starting from
# its seed corpus in native/fuzz/corpus/<harness>/. Inputs the fuzzer finds go to a temporary
# working corpus (the repository's seeds stay as they are); a crash, leak, sanitizer report, hang
# or memory blow-up is saved under BUILD_DIR/fuzz-findings/ and fails the run.
#   bash native/fuzz/run.sh BUILD_DIR [SECONDS]
set -euo pipefail
build_dir=$(cd "$1" && pwd)
seconds=${2:-20}
cd "$(dirname "$0")"
fuzz_dir=$PWD
findings="$build_dir/fuzz-findings"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$findings"

run_one() {  # harness name
  local name=$1 log="$work/$1.log"
  mkdir -p "$work/$name"
  local dict=()
  [ -f "$fuzz_dir/$name.dict" ] && dict=(-dict="$fuzz_dir/$name.dict")
  if "$build_dir/$name" "$work/$name" "$fuzz_dir/corpus/$name" "${dict[@]}" \
      -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$findings/$name-" >"$log" 2>&1; then
    echo "fuzz $name: $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") inputs in ${seconds} s, no findings"
  else
    echo "fuzz $name: FAILED (input saved under $findings; reproduce with $build_dir/$name <input>)"
    tail -n 60 "$log"
    return 1
  fi
}

names=()
for harness in "$fuzz_dir"/fuzz_*.c; do
  names+=("$(basename "$harness" .c)")
done
failed=0
pids=()
for name in "${names[@]}"; do
  run_one "$name" &
  pids+=($!)
  if [ ${#pids[@]} -eq 2 ]; then
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    pids=()
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit $failed
