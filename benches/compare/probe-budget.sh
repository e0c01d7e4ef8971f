#!/bin/bash
# The cost of --probe-ssh and --device-info against a plain scan (issue: exposure evidence,
# budget 1.3x): 3,000 clean simulated cameras, RUNS interleaved runs of each mode, each run
# started once the TIME-WAIT sockets of the previous one have cleared. Prints one line per
# run ("mode run seconds") and the median of each mode.
# Usage: cargo build --release && benches/compare/probe-budget.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/sshfleet
runs=${1:-7}
dir=$(mktemp -d)
trap 'kill "$sim" 2>/dev/null; rm -rf "$dir"' EXIT
"$bin" sim --devices 3000 --faults none --inventory-out "$dir/inv.csv" >"$dir/sim.out" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q ready "$dir/sim.out" && break; sleep 0.2; done
grep -q ready "$dir/sim.out" || { echo "the simulator did not start"; exit 1; }
export SSHFLEET_PASSWORD=pass
for r in $(seq "$runs"); do
  for mode in plain probe info; do
    case $mode in plain) flag=();; probe) flag=(--probe-ssh);; info) flag=(--device-info);; esac
    for _ in $(seq 120); do [ "$(ss -tan state time-wait | wc -l)" -le 200 ] && break; sleep 1; done
    start=$(date +%s.%N)
    "$bin" scan --inventory "$dir/inv.csv" "${flag[@]}" -o "$dir/$mode.csv" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    echo "$mode $r $(echo "$end - $start" | bc)" | tee -a "$dir/times"
  done
done
for mode in plain probe info; do
  awk -v m="$mode" '$1 == m { print $3 }' "$dir/times" | sort -n \
    | awk -v m="$mode" '{ a[NR] = $1 } END { printf "%s median %.3f s\n", m, a[int((NR + 1) / 2)] }'
done
