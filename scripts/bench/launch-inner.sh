#!/usr/bin/env bash
# Runs inside a pure cgroup v2 kernel (the VM, or a unified host as root): times
# `corral run -- /bin/true` against a shell doing the same cgroup work and against
# libcgroup's cgcreate/cgset/cgexec/cgdelete. Called by scripts/bench-launch.
set -euo pipefail
CORRAL=${1:?corral binary}
RUNS=${2:-21}
CG=/sys/fs/cgroup
ROOT=$CG/corral-bench-floor

# The same limits corral writes for standard_agent: leaf memory.high/max/oom.group, cpu.max, pids.max.
floor() {
    mkdir -p "$ROOT/standard_agent"
    echo "+memory +cpu +pids" > "$ROOT/cgroup.subtree_control"
    echo "+memory +cpu +pids" > "$ROOT/standard_agent/cgroup.subtree_control"
    mkdir "$ROOT/standard_agent/leaf"
    local d=$ROOT/standard_agent/leaf
    echo 500000000 > "$d/memory.max"
    echo 200000000 > "$d/memory.high"
    echo 1 > "$d/memory.oom.group"
    echo "30000 100000" > "$d/cpu.max"
    echo 100 > "$d/pids.max"
    sh -c "echo \$\$ > $d/cgroup.procs && exec /bin/true"
    rmdir "$d"
}

cgexec_run() {
    cgcreate -g memory,cpu,pids:/corral-bench-cgexec
    cgset -r memory.max=500000000 -r memory.high=200000000 -r memory.oom.group=1 \
        -r cpu.max="30000 100000" -r pids.max=100 corral-bench-cgexec
    cgexec -g memory,cpu,pids:/corral-bench-cgexec /bin/true
    cgdelete -g memory,cpu,pids:/corral-bench-cgexec
}

corral_run() {
    "$CORRAL" run --name bench -- /bin/true 2>/dev/null
}

plain() { /bin/true; }

echo "+memory +cpu +pids" > $CG/cgroup.subtree_control
declare -A samples=()
names=(plain floor cgexec corral)
# Warm up caches once (binaries come over 9p).
for n in "${names[@]}"; do
    case $n in plain) plain ;; floor) floor ;; cgexec) cgexec_run ;; corral) corral_run ;; esac
done
# Interleave the variants so drift hits all of them alike.
for ((i = 0; i < RUNS; i++)); do
    for n in "${names[@]}"; do
        start=$EPOCHREALTIME
        case $n in plain) plain ;; floor) floor ;; cgexec) cgexec_run ;; corral) corral_run ;; esac
        end=$EPOCHREALTIME
        samples[$n]+="$(( (${end/./} - ${start/./}) / 1000 )) "
    done
done
rmdir "$ROOT/standard_agent" "$ROOT" 2>/dev/null || true

source "$(dirname "${BASH_SOURCE[0]}")/stats.sh"
m_plain=$(echo "${samples[plain]}" | median)
m_floor=$(echo "${samples[floor]}" | median)
m_cgexec=$(echo "${samples[cgexec]}" | median)
m_corral=$(echo "${samples[corral]}" | median)
echo "launch latency, median of $RUNS runs each (ms), kernel $(uname -r):"
printf '  %-44s %6s ms  (p90 %s)\n' "/bin/true alone" "$m_plain" "$(echo "${samples[plain]}" | p90)"
printf '  %-44s %6s ms  (p90 %s)\n' "shell floor (mkdir, limits, cgroup.procs, rmdir)" "$m_floor" "$(echo "${samples[floor]}" | p90)"
printf '  %-44s %6s ms  (p90 %s)\n' "cgcreate + cgset + cgexec + cgdelete" "$m_cgexec" "$(echo "${samples[cgexec]}" | p90)"
printf '  %-44s %6s ms  (p90 %s)\n' "corral run -- /bin/true" "$m_corral" "$(echo "${samples[corral]}" | p90)"
echo "  corral / floor  = $(ratio "$m_corral" "$m_floor")x (target <= 1.5x)"
echo "  corral / cgexec = $(ratio "$m_corral" "$m_cgexec")x (target < 1x)"
