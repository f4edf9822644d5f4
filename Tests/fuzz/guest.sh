#!/usr/bin/env bash
# Runs inside the cgroup v2 VM (scripts/fuzz-api): a corrald of its own, the TCP bridge to its
# socket, then Schemathesis against openapi/corral.yaml through the bridge. The daemon's log and
# Schemathesis' JUnit report go to /out. Exit status: Schemathesis', or 3 when the daemon died.
#   guest.sh VENV CORRALD EXAMPLES SEED [MAX_SECONDS]
set -uo pipefail
venv=$1 corrald=$2 examples=$3 seed=$4 max_time=${5:-}
echo "+memory +cpu +pids" > /sys/fs/cgroup/cgroup.subtree_control
ip link set lo up 2>/dev/null || true
state=$(mktemp -d /tmp/corral-fuzz.XXXXXX)
socket=$state/corral.sock
# The crash handler prints a symbolicated backtrace into the log when the daemon traps.
export SWIFT_BACKTRACE=enable=yes,interactive=no,color=no,swift-backtrace=/opt/swift/usr/libexec/swift/linux/swift-backtrace-static
"$corrald" --socket "$socket" --state-dir "$state/state" --cgroup-root /sys/fs/cgroup/corral-fuzz --log-level notice 2>/out/daemon.log &
daemon=$!
for _ in $(seq 300); do [[ -S $socket ]] && break; sleep 0.1; done
[[ -S $socket ]] || { echo "fuzz: corrald did not open $socket" >&2; tail -20 /out/daemon.log >&2; exit 3; }
"$venv/bin/python" Tests/fuzz/bridge.py 127.0.0.1:8088 "$socket" 2>/out/bridge.log &
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:8088/v1/health && break; sleep 0.1; done

args=(
    openapi/corral.yaml --url http://127.0.0.1:8088
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance
    # The two event streams never end: a request to them cannot be checked as a response.
    --exclude-path /v1/events --exclude-path /status/events
    --max-examples "$examples" --seed "$seed" --workers 1 --request-timeout 30
    --report junit --report-junit-path /out/schemathesis.xml --no-color
)
[[ -n $max_time ]] && args+=(--max-time "$max_time")
"$venv/bin/st" run "${args[@]}" 2>&1 | tee /out/schemathesis.log
status=${PIPESTATUS[0]}
if ! kill -0 "$daemon" 2>/dev/null; then
    echo "fuzz: corrald died during the run; its log's end:" >&2
    tail -60 /out/daemon.log >&2
    exit 3
fi
exit "$status"
