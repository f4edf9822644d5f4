#!/usr/bin/env bash
# Inside a pure cgroup v2 kernel (scripts/bench-memory): where corrald's memory per agent goes.
# FIRST idle sleepers, then up to TOTAL; the per-agent figure is the slope between the two
# steady states (so the binary's code paged in once and the runtime's own start-up do not count
# per agent), split into the brk heap (malloc's main arena), other anonymous memory (the
# per-thread arenas, large blocks, stacks) and file-backed pages. Run once per MALLOC_ARENA_MAX
# value given (default: the allocator's own default, then 2).
#   memory-inner.sh CORRALD FIRST TOTAL [ARENAS...]
set -euo pipefail
CORRALD=$1 FIRST=$2 TOTAL=$3
shift 3
arenas=("$@")
((${#arenas[@]})) || arenas=(default 2)
WINDOW=1
source "$(dirname "${BASH_SOURCE[0]}")/daemon-common.sh"
config=$(mktemp /tmp/corral-bench-config.XXXXXX)
cat >"$config" <<CONFIG
intervals: {sampling: 1s, idle_sampling: 10s}
groups:
  lightweight_agent:
    totals: {memory: 64G, cpu: 20000%, processes: 40000}
CONFIG

launch_range() {
    seq "$1" "$2" | xargs -P 8 -I{} curl -sS --unix-socket "$socket" -H 'Content-Type: application/json' \
        -o /dev/null -w '%{http_code}\n' -X POST http://corral/v1/agents \
        -d '{"id":"idle{}","group":"lightweight_agent","command":["/bin/sleep","3600"]}' | grep -vc '^201' || true
}

# KiB: heap, other anonymous, file-backed (from smaps), and VmRSS.
footprint() {
    awk '
        /^[0-9a-f]+-[0-9a-f]+ / { kind = ($6 == "[heap]") ? "heap" : ($6 == "" || $6 ~ /^\[/) ? "anon" : "file"; next }
        /^Rss:/ { kb[kind] += $2 }
        END { printf "%d %d %d\n", kb["heap"], kb["anon"], kb["file"] }' "/proc/$daemon/smaps"
}

echo "memory: corrald with $FIRST, then $TOTAL idle agents; kernel $(uname -r) (emulated, $(nproc) vCPUs)"
for arena in "${arenas[@]}"; do
    if [[ $arena == default ]]; then unset MALLOC_ARENA_MAX; else export MALLOC_ARENA_MAX=$arena; fi
    start_daemon memory --config "$config"
    read -r h0 a0 f0 <<<"$(footprint)"
    failed=$(launch_range 1 "$FIRST")
    wait_idle $((FIRST * 98 / 100)) 600
    sleep 15
    read -r h1 a1 f1 <<<"$(footprint)"
    failed2=$(launch_range $((FIRST + 1)) "$TOTAL")
    wait_idle $((TOTAL * 98 / 100)) 900
    sleep 15
    read -r h2 a2 f2 <<<"$(footprint)"
    n=$((TOTAL - FIRST))
    awk -v arena="$arena" -v n="$n" -v first="$FIRST" -v total="$TOTAL" -v fails="$((failed + failed2))" \
        -v h0="$h0" -v a0="$a0" -v f0="$f0" -v h1="$h1" -v a1="$a1" -v f1="$f1" -v h2="$h2" -v a2="$a2" -v f2="$f2" 'BEGIN {
        printf "  MALLOC_ARENA_MAX=%s (%d starts failed)\n", arena, fails
        printf "    no agents:   brk heap %6.1f MiB, other anon %6.1f MiB, file %6.1f MiB\n", h0/1024, a0/1024, f0/1024
        printf "    %5d agents: brk heap %6.1f MiB, other anon %6.1f MiB, file %6.1f MiB, total %6.1f MiB (%.1f KiB per agent from zero)\n", first, h1/1024, a1/1024, f1/1024, (h1+a1+f1)/1024, (h1+a1+f1-h0-a0-f0)/first
        printf "    %5d agents: brk heap %6.1f MiB, other anon %6.1f MiB, file %6.1f MiB, total %6.1f MiB (%.1f KiB per agent from zero)\n", total, h2/1024, a2/1024, f2/1024, (h2+a2+f2)/1024, (h2+a2+f2-h0-a0-f0)/total
        printf "    slope %d → %d: brk heap %.1f + other anon %.1f + file %.1f = %.1f KiB per agent\n", first, total, (h2-h1)/n, (a2-a1)/n, (f2-f1)/n, (h2+a2+f2-h1-a1-f1)/n }'
    stop_daemon "$TOTAL"
done
rm -f "$config"
