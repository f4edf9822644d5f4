#!/usr/bin/env bash
# Inside a pure cgroup v2 kernel (scripts/bench-bystander): a bystander outside Corral (a CPU
# loop counting iterations and a 10 ms sleep/wake probe: corral-stress bystander) alone, beside
# misbehaving agents started plainly, then the same agents under corrald in lightweight_agent
# and in standard_agent. Prints one line per case and the comparison.
#   bystander-inner.sh CORRALD CORRAL_STRESS SECONDS
set -euo pipefail
CORRALD=$1 stress=$2 seconds=$3
source "$(dirname "${BASH_SOURCE[0]}")/daemon-common.sh"
cpus=$(nproc)
plain=/sys/fs/cgroup/bench-plain

# The misbehaving agents: three CPU spinners, a memory hog growing 20 MB at a time to 600 MB,
# a fork storm keeping up to 1,000 processes.
agents=(
    "spin1|$stress spin 600" "spin2|$stress spin 600" "spin3|$stress spin 600"
    "hog|$stress mem 600 600 20" "storm|$stress forkloop 1000 600"
)

# A shell command's latency while the bystander runs: `sh -c true`, 20 times, p50 and max in ms.
shell_latency() {
    local times=() t0
    sleep 2
    for _ in $(seq 20); do
        t0=$EPOCHREALTIME
        sh -c true
        times+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
        sleep 0.2
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%s %s\n", a[int((NR + 1) / 2)], a[NR] }'
}

# CPU time (µs) of the cgroups given, from their cpu.stat; of the daemon, from /proc.
usage_usec() { cat "$@" 2>/dev/null | awk '$1 == "usage_usec" { s += $2 } END { print s + 0 }'; }
daemon_usec() { if [[ -n ${daemon:-} ]]; then awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1e6 / hz }' "/proc/$daemon/stat"; else echo 0; fi; }

# Runs the bystander for $seconds; sets $rate $p50 $p99 $shell_p50 $shell_max, and $agents_cpu
# and $daemon_cpu (what the agents' cgroups, given as arguments, and corrald used, in CPUs).
measure_bystander() {
    local out shell a0 d0 t0
    out=$(mktemp)
    a0=$(usage_usec "$@") d0=$(daemon_usec) t0=$EPOCHREALTIME
    "$stress" bystander "$seconds" >"$out" &
    local pid=$!
    shell=$(shell_latency)
    wait "$pid"
    agents_cpu=$(awk -v a="$a0" -v b="$(usage_usec "$@")" -v t0="$t0" -v t1="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) / 1e6 / (t1 - t0) }')
    daemon_cpu=$(awk -v a="$d0" -v b="$(daemon_usec)" -v t0="$t0" -v t1="$EPOCHREALTIME" 'BEGIN { printf "%.2f", (b - a) / 1e6 / (t1 - t0) }')
    read -r _ rate p50 p99 _ _ <"$out"
    read -r shell_p50 shell_max <<<"$shell"
    rm -f "$out"
}

declare -A RATE P50 P99 SHELL SHELLMAX CAPS USED
record() {
    RATE[$1]=$rate P50[$1]=$p50 P99[$1]=$p99 SHELL[$1]=$shell_p50 SHELLMAX[$1]=$shell_max CAPS[$1]=$2
    USED[$1]=$(awk -v a="$agents_cpu" -v d="$daemon_cpu" 'BEGIN { printf "%.2f", a + d }')
    printf '%-22s %12.0f it/s  wake p50 %6.2f ms  p99 %7.2f ms  shell p50 %6.1f ms (max %s); agents used %s CPUs, corrald %s\n' \
        "$1" "$rate" "$p50" "$p99" "$shell_p50" "$shell_max" "$agents_cpu" "$daemon_cpu"
}

echo "bystander: $seconds s per case, $cpus vCPUs (TCG), kernel $(uname -r)"
measure_bystander
record solo "-"
solo_first=$rate

# The emulator's control: one plain CPU loop beside the bystander and nothing else. By
# arithmetic it leaves the single-threaded bystander a whole CPU (on 2 or more); on real cores
# the bystander keeps its solo rate, under TCG it does not (two busy vCPUs slow each other),
# and this says by how much in the same boot.
mkdir -p "$plain"
bash -c 'echo $$ > '"$plain"'/cgroup.procs; exec '"$stress"' spin 600' >/dev/null 2>&1 &
disown
sleep 2
measure_bystander "$plain/cpu.stat"
record one_plain_loop "loop"
echo 1 >"$plain/cgroup.kill"
sleep 2

# Unmanaged: the same programs in a plain cgroup (no limit), only so that they can be ended.
for agent in "${agents[@]}"; do
    bash -c 'echo $$ > '"$plain"'/cgroup.procs; exec '"${agent#*|}" >/dev/null 2>&1 &
    disown
done
sleep 5
measure_bystander "$plain/cpu.stat"
record unmanaged "none"
echo 1 >"$plain/cgroup.kill"
sleep 2
rmdir "$plain" 2>/dev/null || true

# Under Corral: the same agents through the API, in one group.
managed() {
    local group=$1 cpu_cap
    start_daemon "bystander-$group"
    for agent in "${agents[@]}"; do
        local name=${agent%%|*} command=${agent#*|} json
        json=$(printf '"%s",' $command)
        api -o /dev/null -X POST http://corral/v1/agents -d "{\"id\":\"$name\",\"group\":\"$group\",\"command\":[${json%,}]}"
    done
    sleep 5
    # cpu.max of the spinners, in cores: what the caps take.
    cpu_cap=$(for s in spin1 spin2 spin3; do cat "$root/$group/$s/cpu.max" 2>/dev/null; done | awk '$1 != "max" { c += $1 / $2 } END { printf "%.2f", c }')
    measure_bystander "$root/$group"/*/cpu.stat
    record "$group" "$cpu_cap"
    for agent in "${agents[@]}"; do api -o /dev/null -X POST "http://corral/v1/agents/${agent%%|*}/kill" || true; done
    sleep 3
    kill "$daemon"
    wait "$daemon" || true
    for d in "$root"/*/*/ "$root"/*/; do rmdir "$d" 2>/dev/null || true; done
    rmdir "$root" 2>/dev/null || true
    rm -rf "$state"
}
managed lightweight_agent
managed standard_agent
# Solo again: emulation drifts over minutes; the reference is the mean of both.
daemon=
measure_bystander
echo "solo again: $(printf '%.0f' "$rate") it/s (first $(printf '%.0f' "$solo_first"))"
RATE[solo]=$(awk -v a="$solo_first" -v b="$rate" 'BEGIN { print (a + b) / 2 }')

echo
echo "bystander against solo (targets: lightweight_agent ≥ 85% of solo throughput and p99 ≤ 2× solo;"
echo "standard_agent within 10% of what the caps leave; unmanaged for contrast; one_plain_loop is"
echo "the emulator's control: a single unlimited loop on another CPU, which real cores would not feel):"
printf '%-22s %10s %10s %12s %14s %16s %14s\n' case throughput "vs solo" "p99 wake" "p99 vs solo" "caps leave" "others used"
for case in solo one_plain_loop unmanaged lightweight_agent standard_agent; do
    leave="-"
    # What the spinners' cpu.max caps leave the single-threaded bystander, by arithmetic:
    # min(1, CPUs - caps) of one CPU (unmanaged: a fair share of the CPUs among 4 runnable loops).
    case ${CAPS[$case]} in
        - | loop) leave="1.00" ;;
        none) leave=$(awk -v n="$cpus" 'BEGIN { printf "%.2f", (n / 4 < 1 ? n / 4 : 1) }') ;;
        *) leave=$(awk -v n="$cpus" -v c="${CAPS[$case]}" 'BEGIN { l = n - c; printf "%.2f", (l < 1 ? l : 1) }') ;;
    esac
    printf '%-22s %10.0f %9.1f%% %10.2f ms %13.2fx %16s %10s CPU\n' "$case" "${RATE[$case]}" \
        "$(awk -v a="${RATE[$case]}" -v b="${RATE[solo]}" 'BEGIN { print 100 * a / b }')" "${P99[$case]}" \
        "$(awk -v a="${P99[$case]}" -v b="${P99[solo]}" 'BEGIN { print (b > 0 ? a / b : 0) }')" "$leave of a CPU" "${USED[$case]}"
done
