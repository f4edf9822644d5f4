# Sourced by the daemon benchmarks (daemon-inner.sh, metrics-inner.sh), inside a pure
# cgroup v2 kernel: one corrald with its own socket, state and cgroup root, idle agents
# started through its API, its CPU measured from /proc, and the cleanup.
#
#   start_daemon NAME [CORRALD ARGS...]   sets $daemon, $state, $socket, $root
#   api CURL ARGS...                      a request on the daemon's socket
#   measure [COMMAND...]                  CPU % of one CPU over $WINDOW s, while COMMAND runs in the background
#   launch_idle N                         N sleepers in lightweight_agent; failures said on stderr
#   stop_daemon N                         kills the N sleepers, stops the daemon, removes its cgroups and state

start_daemon() {
    local name=$1
    shift
    state=$(mktemp -d "/tmp/corral-bench-$name.XXXXXX")
    socket=$state/corral.sock
    root=/sys/fs/cgroup/corral-bench-$name
    "$CORRALD" --socket "$socket" --state-dir "$state/state" --cgroup-root "$root" --log-level warning "$@" &
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
    [[ -n $helper ]] && { kill "$helper"; wait "$helper" 2>/dev/null || true; }
    awk -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", 100 * c / hz / (t1 - t0) }'
}

launch_idle() {
    local failed=0 answer i
    for i in $(seq "$1"); do
        answer=$(api -X POST http://corral/v1/agents -w ' %{http_code}' \
            -d "{\"id\":\"idle$i\",\"group\":\"lightweight_agent\",\"command\":[\"/bin/sleep\",\"3600\"]}")
        if [[ $answer != *" 201" ]]; then
            ((failed == 0)) && echo "  agent idle$i did not start: $answer" >&2
            failed=$((failed + 1))
        fi
    done
    ((failed == 0)) || echo "  $failed of $1 agents did not start" >&2
}

stop_daemon() {
    local i d
    for i in $(seq "$1"); do api -X POST "http://corral/v1/agents/idle$i/kill" >/dev/null || true; done
    sleep 3
    kill "$daemon"; wait "$daemon" || true
    for d in "$root"/*/; do rmdir "$d" 2>/dev/null || true; done
    rmdir "$root/supervisor" "$root" 2>/dev/null || true
    rm -rf "$state"
}
