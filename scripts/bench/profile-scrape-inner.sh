#!/usr/bin/env bash
# Runs in the VM (scripts/profile-scrape): each corrald given under callgrind, $AGENTS idle
# agents, 40 scrapes back to back on one kept connection with instrumentation on.
set -uo pipefail
echo "+memory +cpu +pids" >/sys/fs/cgroup/cgroup.subtree_control
AGENTS=${AGENTS:-200}
address=127.0.0.1:19466
scrapes=40
for bin in "$@"; do
    out=/tmp/callgrind.scrape.$(basename "$bin")
    wrapper=/tmp/callgrind-wrapper.$(basename "$bin")
    # valgrind counts each byte a `rep movsb` moves as an instruction, and glibc's memcpy takes
    # that path above a few KiB: a copy of 600 KB in one piece counted 640K, ten times its vector
    # loop's count. The tunable keeps memcpy on the vector loop, so that a large copy counts as
    # what it costs (the wall-clock figures are scripts/bench-metrics').
    printf '#!/bin/sh\nGLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1000000000 exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%s %s "$@"\n' "$out" "$bin" >"$wrapper"
    chmod +x "$wrapper"
    CORRALD=$wrapper
    source "$(dirname "${BASH_SOURCE[0]}")/daemon-common.sh"
    # Under valgrind libseccomp cannot build a filter: the sleepers go without one.
    launch_idle() {
        seq 1 "$1" | xargs -P 8 -I{} curl -sS --unix-socket "$socket" -H 'Content-Type: application/json' -o /dev/null \
            -w '%{http_code}\n' -X POST http://corral/v1/agents \
            -d '{"id":"idle{}","group":"lightweight_agent","command":["/bin/sleep","3600"],"seccomp":"none"}' | grep -vc '^201$' |
            awk -v n="$1" '$1 > 0 { print "  " $1 " of " n " agents did not start" > "/dev/stderr" }'
    }
    DAEMON_LOG=/tmp/callgrind.log start_daemon scrape --metrics-address "$address"
    for _ in $(seq 600); do [[ -S $socket ]] && break; sleep 0.5; done
    [[ -S $socket ]] || { echo "profile-scrape: corrald did not start under valgrind" >&2; tail -20 /tmp/callgrind.log >&2; exit 1; }
    launch_idle "$AGENTS"
    wait_idle $((AGENTS * 95 / 100)) 900
    echo "=== $(basename "$bin"): $idle_count of $AGENTS agents idle after $settled s"
    # Two scrapes first: the kept lines are drawn, as they are between a real Prometheus' scrapes.
    curl -sS -o /dev/null "http://$address/metrics"
    curl -sS -o /dev/null "http://$address/metrics"
    urls=()
    for _ in $(seq $scrapes); do urls+=(-o /dev/null "http://$address/metrics"); done
    callgrind_control -i on "$daemon" >/dev/null
    t0=$EPOCHREALTIME
    curl -sS "${urls[@]}"
    t1=$EPOCHREALTIME
    callgrind_control -i off "$daemon" >/dev/null
    callgrind_control -d "$daemon" >/dev/null
    dump=$(ls -t "$out"* | head -1)
    total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    echo "corrald: $total instructions over $scrapes scrapes in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: $((total / scrapes)) a scrape (background work in the window included)"
    # The scrape's own parts, each synchronous: the snapshot (on the engine's actor) and the text.
    # Not the async `scrape` frame: callgrind puts whatever job ran on its thread across an
    # await under it (its figure moved by 30% between runs), nor the background work, which
    # moves with the window's length.
    inclusive=$(callgrind_annotate --inclusive=yes "$dump" 2>/dev/null)
    snapshot=$(awk '/CorralEngine0B0C7metrics14endedRetention12drawnThrough/ { gsub(",", "", $1); print $1; exit }' <<<"$inclusive")
    text=$(awk '/DaemonMetricsC16expositionBuffery7NIOCore04ByteF0VSg0A6Engine0D8SnapshotVF / { gsub(",", "", $1); print $1; exit }' <<<"$inclusive")
    [[ -n $snapshot && -n $text ]] &&
        echo "the scrape's own parts: $(((snapshot + text) / scrapes)) instructions a scrape (snapshot $((snapshot / scrapes)), text $((text / scrapes)))"
    echo "heaviest frames (inclusive; a share of the whole):"
    callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null |
        grep -E "Corral[A-Za-z]*[0-9]|Hasher|SS4hash|swift_retain \[|swift_release \[" | grep -v "TQ[0-9]_\|TY[0-9]_\|'2 \[" | head -25 | cut -c1-200
    stop_daemon "$AGENTS" 2>/dev/null
    rm -f "$out"*
done
