#!/usr/bin/env bash
# Runs inside a pure cgroup v2 kernel (the VM, or a unified host as root): times
# `corral run -- /bin/true` against a shell doing the same cgroup work and against
# libcgroup's cgcreate/cgset/cgexec/cgdelete. Called by scripts/bench-launch.
set -euo pipefail
CORRAL=${1:?corral binary}
RUNS=${2:-21}
STRESS=${3:-$(dirname "$CORRAL")/corral-stress}
# Agents as before policies existed: no filter, no namespace, no_new_privs off, all capabilities.
UNCONFINED=$(mktemp /tmp/corral-bench-unconfined.XXXXXX.yaml)
cat > "$UNCONFINED" <<'YAML'
groups:
  standard_agent:
    security: {seccomp: none, no_new_privileges: false, cgroup_namespace: false, capabilities: all}
YAML
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

# The default policy (filter, no_new_privs, cgroup and mount namespace) as nobody.
corral_nobody() {
    "$CORRAL" run --name bench --user nobody -- /bin/true 2>/dev/null
}

corral_unconfined() {
    "$CORRAL" run --name bench --config "$UNCONFINED" -- /bin/true 2>/dev/null
}

plain() { /bin/true; }

echo "+memory +cpu +pids" > $CG/cgroup.subtree_control
declare -A samples=()
names=(plain floor cgexec corral nobody unconfined)
# Warm up caches once (binaries come over 9p).
for n in "${names[@]}"; do
    case $n in plain) plain ;; floor) floor ;; cgexec) cgexec_run ;; corral) corral_run ;; nobody) corral_nobody ;; unconfined) corral_unconfined ;; esac
done
# Interleave the variants so drift hits all of them alike.
for ((i = 0; i < RUNS; i++)); do
    for n in "${names[@]}"; do
        start=$EPOCHREALTIME
        case $n in plain) plain ;; floor) floor ;; cgexec) cgexec_run ;; corral) corral_run ;; nobody) corral_nobody ;; unconfined) corral_unconfined ;; esac
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
m_nobody=$(echo "${samples[nobody]}" | median)
m_unconfined=$(echo "${samples[unconfined]}" | median)
echo "launch latency, median of $RUNS runs each (ms), kernel $(uname -r):"
printf '  %-44s %6s ms  (p90 %s)\n' "/bin/true alone" "$m_plain" "$(echo "${samples[plain]}" | p90)"
printf '  %-44s %6s ms  (p90 %s)\n' "shell floor (mkdir, limits, cgroup.procs, rmdir)" "$m_floor" "$(echo "${samples[floor]}" | p90)"
printf '  %-44s %6s ms  (p90 %s)\n' "cgcreate + cgset + cgexec + cgdelete" "$m_cgexec" "$(echo "${samples[cgexec]}" | p90)"
printf '  %-44s %6s ms  (p90 %s)\n' "corral run -- /bin/true" "$m_corral" "$(echo "${samples[corral]}" | p90)"
echo "  corral / floor  = $(ratio "$m_corral" "$m_floor")x (target <= 1.5x)"
echo "  corral / cgexec = $(ratio "$m_corral" "$m_cgexec")x (target < 1x)"
printf '  %-44s %6s ms  (p90 %s)\n' "corral run, unconfined (no filter, no ns)" "$m_unconfined" "$(echo "${samples[unconfined]}" | p90)"
printf '  %-44s %6s ms  (p90 %s)\n' "corral run --user nobody (default profile)" "$m_nobody" "$(echo "${samples[nobody]}" | p90)"
echo "  default policy as nobody / unconfined = $(ratio "$m_nobody" "$m_unconfined")x (target <= 1.1x)"
echo "  default policy as root / unconfined   = $(ratio "$m_corral" "$m_unconfined")x"

# A syscall-heavy loop under the default filter against none (ns per getpid, median of 3).
loop() { "$CORRAL" run --name bench "$@" -- "$STRESS" getpid 10000000 2>/dev/null | awk '/ns per call/ {print $2}'; }
filtered=(); open=()
for ((i = 0; i < 3; i++)); do filtered+=("$(loop)"); open+=("$(loop --config "$UNCONFINED")"); done
m_filtered=$(printf '%s\n' "${filtered[@]}" | sort -n | sed -n 2p)
m_open=$(printf '%s\n' "${open[@]}" | sort -n | sed -n 2p)
echo "getpid x 10^7, median of 3: ${m_filtered} ns per call under the default filter, ${m_open} ns without"
echo "  filtered / unfiltered = $(awk -v a="$m_filtered" -v b="$m_open" 'BEGIN { printf "%.2f", a / b }')x"
rm -f "$UNCONFINED"
