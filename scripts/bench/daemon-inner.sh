#!/usr/bin/env bash
# Runs inside a pure cgroup v2 kernel: the daemon's CPU and memory with AGENTS
# idle agents watched at 1 s sampling, against the same daemon with none.
# Called by scripts/bench-daemon.
set -euo pipefail
CORRALD=${1:?corrald binary}
AGENTS=${2:-200}
WINDOW=${3:-60}
source "$(dirname "${BASH_SOURCE[0]}")/daemon-common.sh"
start_daemon daemon
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }

idle_cpu=$(measure)
idle_rss=$(rss)
start=$EPOCHREALTIME
launch_idle "$AGENTS"
launched=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
live=$(api http://corral/v1/agents?state=live | grep -o '"id"' | wc -l)
sleep 5
busy_cpu=$(measure)
busy_rss=$(rss)
peak=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
fds=$(ls "/proc/$daemon/fd" | wc -l)
echo "daemon overhead, ${WINDOW} s windows, sampling every 1 s, kernel $(uname -r) (emulated, 2 vCPUs):"
echo "  0 agents:        CPU ${idle_cpu}% of one CPU, RSS $((idle_rss / 1024)) MiB"
echo "  $live agents:      CPU ${busy_cpu}% of one CPU, RSS $((busy_rss / 1024)) MiB (peak $((peak / 1024)) MiB), $fds open descriptors"
echo "  launching $AGENTS agents through the API took ${launched} s"
awk -v a="$busy_rss" -v b="$idle_rss" -v n="$live" 'BEGIN { if (n > 0) printf "  per agent: %.1f KiB of RSS\n", (a - b) / n }'
stop_daemon "$AGENTS"
