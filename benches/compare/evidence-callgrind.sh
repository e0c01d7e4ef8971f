#!/bin/bash
# The scanner's own instructions for a plain scan against `--probe-ssh` (the SSH evidence),
# counted by callgrind: the simulator runs in its own process, so only the client is
# counted, and an instruction count does not move with the machine's load (wall times on a
# shared machine do). Two fleets of N clean cameras: the simulator's mix (SSH on for about
# 30 %), then the same cameras all with SSH on (remediated first), where every probe is a
# full key exchange. Prints the instructions of each run, their ratio, and the cost of one
# evidence conversation (the difference over the cameras with SSH on).
# Usage: cargo build --release && benches/compare/evidence-callgrind.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${SSHFLEET_BIN:-target/release/sshfleet}
n=${1:-300}
dir=$(mktemp -d)
trap 'kill "$sim" 2>/dev/null; rm -rf "$dir"' EXIT
"$bin" sim --devices "$n" --faults none --seed 5 --inventory-out "$dir/inv.csv" \
    --truth-out "$dir/truth.jsonl" >"$dir/sim.out" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q ready "$dir/sim.out" && break; sleep 0.2; done
grep -q ready "$dir/sim.out" || { echo "the simulator did not start"; exit 1; }
export SSHFLEET_PASSWORD=pass

# Instructions (Ir) of one scan under callgrind. Generous deadlines: callgrind runs the
# client about fifty times slower, and a timed-out device would measure less work.
instructions() {
  local out=$dir/cg.$1
  shift
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" scan --inventory "$dir/inv.csv" \
      --concurrency 32 --timeout 30s --quiet -o "$dir/report.jsonl" "$@" >/dev/null 2>&1 || true
  [ "$(wc -l <"$dir/report.jsonl")" -eq "$n" ] || { echo "incomplete report"; exit 1; }
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

compare() {
  local fleet=$1 on
  local plain evidence
  plain=$(instructions "$fleet-plain")
  evidence=$(instructions "$fleet-evidence" --probe-ssh)
  on=$(grep -c '"ssh_host_key":"SHA256' "$dir/report.jsonl" || true)
  echo "$fleet: $n cameras, $on host keys read"
  echo "  plain    $plain instructions"
  echo "  evidence $evidence instructions"
  awk -v p="$plain" -v e="$evidence" -v on="$on" -v n="$n" 'BEGIN {
    printf "  ratio %.3fx; %.0f instructions per camera plain, %.0f more per evidence conversation\n",
      e / p, p / n, (on > 0 ? (e - p) / on : 0) }'
}

compare clean
"$bin" remediate --inventory "$dir/inv.csv" --ssh enabled --apply --yes --quiet \
    --rate 100000/s --burst 1000 -o "$dir/remediate.jsonl" >/dev/null 2>&1 || true
compare ssh-on
