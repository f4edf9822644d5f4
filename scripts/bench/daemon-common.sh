# Sourced by the daemon benchmarks (daemon-inner.sh, metrics-inner.sh), inside a pure
# cgroup v2 kernel: one corrald with its own socket, state and cgroup root, idle agents
# started through its API, its CPU measured from /proc, and the cleanup.
#
#   start_daemon NAME [CORRALD ARGS...]   sets $daemon, $state, $socket, $root; its log to $DAEMON_LOG if set
#   api CURL ARGS...                      a request on the daemon's socket
#   measure [COMMAND...]                  CPU % of one CPU over $WINDOW s, while COMMAND runs in the background
#   launch_idle N [FROM]                  sleepers idleFROM…idleN (FROM 1) in lightweight_agent, 8 requests at a time;
#                                         failures said on stderr
#   wait_idle N SECONDS                   waits until N agents are sampled at the idle cadence (or SECONDS pass);
#                                         sets $settled (seconds waited) and $idle_count
#   stop_daemon N                         kills the N sleepers, stops the daemon, removes its cgroups and state

start_daemon() {
    local name=$1
    shift
    state=$(mktemp -d "/tmp/corral-bench-$name.XXXXXX")
    socket=$state/corral.sock
    root=/sys/fs/cgroup/corral-bench-$name
    # 1,000 agents need ~10 descriptors each (the daemon says so at 4,096).
    ulimit -Hn 65536 2>/dev/null && ulimit -n 65536
    # DAEMON_LOG: where its log goes (default: this script's stderr).
    "$CORRALD" --socket "$socket" --state-dir "$state/state" --cgroup-root "$root" --log-level warning "$@" 2>>"${DAEMON_LOG:-/dev/stderr}" &
    daemon=$!
    for _ in $(seq 300); do [[ -S $socket ]] && break; sleep 0.1; done
}

api() { curl -sS --unix-socket "$socket" -H 'Content-Type: application/json' "$@"; }
ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)

measure() {
    local t0 c0 t1 c1 helper=""
    if (($#)); then "$@" & helper=$!; fi
    t0=$EPOCHREALTIME c0=$(ticks)
    sleep "$WINDOW"
    t1=$EPOCHREALTIME c1=$(ticks)
    [[ -n $helper ]] && { kill "$helper" 2>/dev/null || true; wait "$helper" 2>/dev/null || true; }
    awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", 100 * c / hz / (t1 - t0) }'
}

launch_idle() {
    local answers failed first
    mkdir -p "$state/answers"
    answers=$(seq "${2:-1}" "$1" | xargs -P 8 -I{} curl -sS --unix-socket "$socket" -H 'Content-Type: application/json' \
        -o "$state/answers/{}" -w '%{http_code} {}\n' -X POST http://corral/v1/agents \
        -d '{"id":"idle{}","group":"lightweight_agent","command":["/bin/sleep","3600"]}')
    failed=$(grep -vc '^201 ' <<<"$answers" || true)
    if ((failed > 0)); then
        first=$(grep -v '^201 ' <<<"$answers" | head -1)
        echo "  $failed of $1 agents did not start; the first: HTTP $first $(cat "$state/answers/${first#* }" 2>/dev/null)" >&2
    fi
    rm -rf "$state/answers"
}

wait_idle() {
    local want=$1 limit=$2 start=$EPOCHREALTIME
    idle_count=0
    while :; do
        # From /v1/health, not /metrics: a first scrape makes every agent's series, which the
        # memory figure would then count.
        idle_count=$(api http://corral/v1/health | grep -o '"idle":[0-9]*' | cut -d: -f2)
        idle_count=${idle_count:-0}
        settled=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
        ((idle_count >= want || settled >= limit)) && break
        sleep 5
    done
}

stop_daemon() {
    local i d
    seq "$1" | xargs -P 8 -I{} curl -sS --unix-socket "$socket" -o /dev/null -X POST "http://corral/v1/agents/idle{}/kill" || true
    sleep 3
    kill "$daemon"; wait "$daemon" || true
    for d in "$root"/*/; do rmdir "$d" 2>/dev/null || true; done
    rmdir "$root/supervisor" "$root" 2>/dev/null || true
    rm -rf "$state"
}
