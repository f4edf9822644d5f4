#!/usr/bin/env bash
# Runs inside a pure cgroup v2 kernel: the daemon's CPU and memory with AGENTS
# idle agents, against the same daemon with none; then adaptive sampling (idle
# agents every 10 s, the default) against every agent every 1 s
# (intervals.idle_sampling: 1s), switched by SIGHUP reloads in alternating
# windows, and the CPU per agent-sample. Called by scripts/bench-daemon.
set -euo pipefail
CORRALD=${1:?corrald binary}
AGENTS=${2:-200}
WINDOW=${3:-60}
source "$(dirname "${BASH_SOURCE[0]}")/daemon-common.sh"
config=$(mktemp /tmp/corral-bench-config.XXXXXX)
# lightweight_agent's seed totals (500 processes, 1 GB) stop a start at 500 sleepers: raised, as an operator would.
sampling() {
    printf 'intervals:\n  sampling: 1s\n  idle_sampling: %s\ngroups:\n  lightweight_agent:\n    totals: {memory: 8G, cpu: 200%%, processes: 20000}\n' "$1" >"$config"
}
sampling 10s
start_daemon daemon --config "$config"
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }

idle_cpu=$(measure)
idle_rss=$(rss)
# Half the agents first, settled, then the rest: the RSS between the two is what an agent
# more costs, without what the first ones make once (the runtime's type caches, the
# store's statements, the heap's first arenas).
half=$((AGENTS / 2))
start=$EPOCHREALTIME
launch_idle "$half"
launched_half=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
wait_idle $((half * 98 / 100)) 600
half_live=$(api http://corral/v1/agents?state=live | grep -o '"id"' | wc -l)
half_rss=$(rss)
start2=$EPOCHREALTIME
launch_idle "$AGENTS" $((half + 1))
launched=$(awk -v a="$start2" -v b="$EPOCHREALTIME" -v h="$launched_half" 'BEGIN { printf "%.1f", b - a + h }')
live=$(api http://corral/v1/agents?state=live | grep -o '"id"' | wc -l)
# Steady state: new agents start active (their start-up, and a degradation when the exec
# burst crossed the CPU limit, keep them so for a while); wait until nearly all are idle.
wait_idle $((live * 98 / 100)) 600
busy_cpu=$(measure)
busy_rss=$(rss)
peak=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
fds=$(ls "/proc/$daemon/fd" | wc -l)
# Adaptive against every second, alternating (emulation drifts between minutes).
declare -a adaptive every
for _ in 1 2; do
    sampling 10s; kill -HUP "$daemon"; sleep 12
    adaptive+=("$(measure)")
    sampling 1s; kill -HUP "$daemon"; sleep 2
    every+=("$(measure)")
done
echo "daemon overhead, ${WINDOW} s windows, kernel $(uname -r) (emulated, 2 vCPUs):"
echo "  0 agents:        CPU ${idle_cpu}% of one CPU, RSS $((idle_rss / 1024)) MiB"
echo "  $live agents, steady: CPU ${busy_cpu}% of one CPU, RSS $((busy_rss / 1024)) MiB (peak $((peak / 1024)) MiB), $fds open descriptors"
awk -v n="$AGENTS" -v t="$launched" 'BEGIN { printf "  launching %d agents through the API (8 requests at a time) took %.1f s: %.1f agents/s\n", n, t, n / t }'
echo "  steady state: $idle_count of $live agents sampled at the idle cadence, ${settled} s after the last start"
awk -v a="$busy_rss" -v b="$idle_rss" -v n="$live" 'BEGIN { if (n > 0) printf "  per agent: %.1f KiB of RSS (all of the growth over the daemon with none, divided by the agents)\n", (a - b) / n }'
awk -v a="$busy_rss" -v b="$half_rss" -v n="$((live - half_live))" -v h="$half_live" -v r="$half_rss" 'BEGIN {
    if (n > 0) printf "  an agent more: %.1f KiB of RSS (%d settled agents: %d MiB; %d more: the growth over them)\n", (a - b) / n, h, r / 1024, n }'
echo "  adaptive sampling (idle agents every 10 s): ${adaptive[*]}% of one CPU; every agent every 1 s: ${every[*]}%"
awk -v a="${adaptive[*]}" -v e="${every[*]}" -v z="$idle_cpu" -v n="$live" 'BEGIN {
    k = split(a, x, " "); split(e, y, " "); for (i = 1; i <= k; i++) { sa += x[i]; se += y[i] }
    ma = sa / k; me = se / k
    printf "  means: adaptive %.2f%%, every second %.2f%%: ratio %.2f; ", ma, me, ma / me
    if (n > 0) printf "CPU per agent-sample at 1 s: %.0f µs (%.3f%% of one CPU per agent); 1,000 idle agents by that rate: adaptive %.0f%%, every second %.0f%%\n", (me - z) / 100 / n * 1e6, (me - z) / n, z + (ma - z) * 1000 / n, z + (me - z) * 1000 / n }'
rm -f "$config"
stop_daemon "$AGENTS"
