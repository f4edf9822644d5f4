#!/usr/bin/env bash
# Runs in the VM (scripts/profile-launch): corrald under callgrind, RUNS launches through it.
set -uo pipefail
bin=${1:?usage: profile-launch-inner.sh DIR RUNS}
runs=${2:-5}
out=/tmp/callgrind.corrald
mkdir -p /tmp/corral-state /run/corral
cd /tmp
CORRALD_NO_INIT=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$out "$bin/corrald" \
    --socket /run/corral/corral.sock --state-dir /tmp/corral-state --cgroup-root /sys/fs/cgroup/corral \
    --log-target stderr --no-memory-lock >/tmp/corrald.log 2>&1 &
daemon=$!
for _ in $(seq 600); do [[ -S /run/corral/corral.sock ]] && break; sleep 0.5; done
[[ -S /run/corral/corral.sock ]] || { echo "profile-launch: corrald did not start under valgrind" >&2; tail -20 /tmp/corrald.log >&2; exit 1; }
for _ in 1 2; do "$bin/corral" run --name warm -- /bin/true >/dev/null 2>&1; done
callgrind_control -i on $daemon >/dev/null
for _ in $(seq "$runs"); do "$bin/corral" run --name bench -- /bin/true >/dev/null 2>&1 || echo "profile-launch: a run failed" >&2; done
callgrind_control -i off $daemon >/dev/null
callgrind_control -d $daemon >/dev/null
kill -TERM $daemon
wait $daemon
dump=$out.1
total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "corrald: $total instructions for $runs runs of corral run -- /bin/true: $((total / runs)) a run"
echo "heaviest frames (inclusive; a share of the whole):"
callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null |
    grep -E "Corral[A-Za-z]*[0-9]|JSONEncoderC6encodeyAA4DataVxKSERzlF \[|JSONDecoderC6decode|DatabaseC13inTransaction|sqlite3_step" |
    grep -v "TQ[0-9]_\|TY[0-9]_\|'2 \[" | head -40 | cut -c1-200
echo "callers of JSONEncoder.encode:"
callgrind_annotate --tree=caller --inclusive=yes --threshold=100 "$dump" 2>/dev/null |
    grep -B12 "\* .*JSONEncoderC6encodeyAA4DataVxKSERzlF \[" | grep "<" | cut -c1-200
