#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS (default 10) from the committed seeds, keeping
# what it learns in .ferry-run/fuzz; fails on the first crash, and prints the executions.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rc=0
for t in parse ctl ct stt; do
  bin=dataplane/build-fuzz/fuzz_$t
  work=.ferry-run/fuzz/$t
  mkdir -p "$work" "$work-crashes"
  out=$("$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$work-crashes/" \
        "$work" "dataplane/fuzz/corpus/$t" 2>&1)
  status=$?
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' <<<"$out" | grep -o '[0-9]*$')
  if [ $status -ne 0 ]; then
    echo "fuzz_$t: FAILED after ${runs:-?} executions"
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" <<<"$out" | head -20
    rc=1
  else
    echo "fuzz_$t: ${runs} executions in ${secs} s, no crash"
  fi
  # the ctl target's EAL leaves its runtime directory; the segment it unlinks itself
  rm -rf /var/run/dpdk/ferry-fuzz-* 2>/dev/null
done
exit $rc
