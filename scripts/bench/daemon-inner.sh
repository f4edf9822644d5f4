#!/usr/bin/env bash
# Runs inside a pure cgroup v2 kernel: the daemon's CPU and memory with AGENTS
# idle agents watched at 1 s sampling, against the same daemon with none.
# Called by scripts/bench-daemon.
set -euo pipefail
CORRALD=${1:?corrald binary}
AGENTS=${2:-200}
WINDOW=${3:-60}
state=$(mktemp -d /tmp/corral-bench-daemon.XXXXXX)
socket=$state/corral.sock
"$CORRALD" --socket "$socket" --state-dir "$state/state" --cgroup-root /sys/fs/cgroup/corral-bench-daemon --log-level warning &
daemon=$!
for _ in $(seq 200); do [[ -S $socket ]] && break; sleep 0.1; done
api() { curl -sS --unix-socket "$socket" -H 'Content-Type: application/json' "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)
measure() {
    local t0 c0 t1 c1
    t0=$EPOCHREALTIME c0=$(ticks)
    sleep "$WINDOW"
    t1=$EPOCHREALTIME c1=$(ticks)
    awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", 100 * c / hz / (t1 - t0) }'
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }

idle_cpu=$(measure)
idle_rss=$(rss)
start=$EPOCHREALTIME
for i in $(seq "$AGENTS"); do
    api -X POST http://corral/v1/agents -d "{\"id\":\"idle$i\",\"group\":\"lightweight_agent\",\"command\":[\"/bin/sleep\",\"3600\"]}" >/dev/null
done
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
for i in $(seq "$AGENTS"); do api -X POST "http://corral/v1/agents/idle$i/kill" >/dev/null || true; done
sleep 3
kill "$daemon"; wait "$daemon" || true
for d in /sys/fs/cgroup/corral-bench-daemon/*/; do rmdir "$d" 2>/dev/null || true; done
rmdir /sys/fs/cgroup/corral-bench-daemon/supervisor /sys/fs/cgroup/corral-bench-daemon 2>/dev/null || true
rm -rf "$state"
