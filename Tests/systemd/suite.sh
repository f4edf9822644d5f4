#!/usr/bin/env bash
# The host-service e2e suite: Corral installed as a user installs it, under a real systemd as
# PID 1 on a pure cgroup v2 kernel (scripts/e2e-systemd boots that VM and runs this inside it).
# Every check reads its answer back from systemd or the kernel. Prints one line per check and
# "systemd-e2e: N passed, M failed"; exits non-zero when anything failed.
#
#   Tests/systemd/suite.sh REPO DEB   (as root, systemd as PID 1; DEB from scripts/package)
set -uo pipefail
repo=${1:?usage: suite.sh REPO DEB}
deb=${2:?usage: suite.sh REPO DEB}
cd "$repo"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[[ $(cat /proc/1/comm) == systemd ]] || { echo "systemd-e2e: PID 1 is $(cat /proc/1/comm), not systemd" >&2; exit 2; }

source "$repo/Tests/checks.sh"
prop() { systemctl show -p "$2" --value "$1"; }
main_pid() { prop corral.service MainPID; }
is_active() { [[ $(systemctl is-active corral.service) == active ]]; }
agent_field() { # agent_field ID FIELD: from `corral agents list --json`
    corral agents list --json 2>/dev/null | jq -r --arg id "$1" --arg f "$2" '.[] | select(.id == $id) | .[$f] // empty'
}
agent_running() { [[ $(agent_field "$1" state) == running ]]; }
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }
alive() { kill -0 "$1" 2>/dev/null; }

# --- install as the README says -----------------------------------------------------------
install_corral() {
    cp "$deb" /tmp/ || return 1
    (cd /tmp && apt-get install -y -q "./${deb##*/}") 2>&1 | tail -4 | sed 's/^/     | /'
    ((PIPESTATUS[0] == 0)) || return 1
    [[ $(systemctl is-enabled corral.service) == enabled ]] || { note "not enabled"; return 1; }
    until_true 60 is_active || { note "not active: $(systemctl is-active corral)"; journalctl -u corral --no-pager | tail -20; return 1; }
}

ready_and_status() {
    local type status
    type=$(prop corral.service Type)
    status=$(prop corral.service StatusText)
    note "Type=$type StatusText='$status'"
    [[ $type == notify && -n $status ]]
}

daemon_cgroup() {
    local pid cg
    pid=$(main_pid)
    cg=$(cgroup_of "$pid")
    note "corrald (pid $pid) in $cg"
    [[ $cg == /system.slice/corral.service* ]]
}

agent_a1=""
agent_start() {
    corral agents start --name a1 -- sleep 100000 >/dev/null || return 1
    until_true 10 agent_running a1 || { note "a1 not running: $(corral agents list 2>&1)"; return 1; }
    agent_a1=$(agent_field a1 pid)
    local cg max
    cg=$(cgroup_of "$agent_a1")
    max=$(cat "/sys/fs/cgroup$cg/memory.max")
    # standard_agent's hard limit, 500 MB, as the kernel keeps it: whole pages.
    local expected=$((500000000 / $(getconf PAGESIZE) * $(getconf PAGESIZE)))
    note "a1 (pid $agent_a1) in $cg, memory.max $max (expected $expected)"
    [[ $cg == /system.slice/corral-agents.scope/standard_agent/a1 && $max == "$expected" ]]
}

agent_r1=""
run_from_another_service() {
    systemd-run --unit=corral-client --quiet corral run --name r1 -- sleep 100000 || return 1
    until_true 20 agent_running r1 || { note "r1 not running: $(corral agents list 2>&1)"; journalctl -u corral-client --no-pager | tail; return 1; }
    agent_r1=$(agent_field r1 pid)
    local cg
    cg=$(cgroup_of "$agent_r1")
    note "r1 (pid $agent_r1, corral run in corral-client.service) in $cg"
    [[ $cg == */standard_agent/r1 ]]
}

status_follows_agents() {
    local text
    until_true 10 bash -c '[[ $(systemctl show -p StatusText --value corral) == "2 agents running, 0 suspended"* ]]' || {
        note "StatusText='$(prop corral.service StatusText)' with a1 and r1 running"
        return 1
    }
    text=$(prop corral.service StatusText)
    corral agents start --name brief -- sleep 6 >/dev/null || return 1
    until_true 10 bash -c '[[ $(systemctl show -p StatusText --value corral) == "3 agents running"* ]]' || { note "never counted 3"; return 1; }
    until_true 20 bash -c '[[ $(systemctl show -p StatusText --value corral) == "2 agents running"* ]]' || { note "never back to 2"; return 1; }
    note "StatusText '$text' -> 3 -> '$(prop corral.service StatusText)'"
}

# The reservation lands on the agents' scope as unit properties.
reservation_on_scope() {
    local scope=/sys/fs/cgroup/system.slice/corral-agents.scope mem pids total
    mem=$(cat $scope/memory.max)
    pids=$(cat $scope/pids.max)
    total=$(($(awk '/MemTotal/{print $2}' /proc/meminfo) * 1024))
    note "corral-agents.scope: memory.max $mem (MemTotal $total), pids.max $pids, cpu.max $(cat $scope/cpu.max)"
    [[ $mem != max && $pids != max ]] && ((mem < total))
}

# Agents started by the daemon inherit the unit's sandbox: they still run python3, git and
# curl to loopback, and write in their (private) /tmp.
tools_under_sandbox() {
    python3 -m http.server 18080 --bind 127.0.0.1 --directory /etc >/dev/null 2>&1 &
    local server=$!
    until_true 20 curl -sf -o /dev/null http://127.0.0.1:18080/hostname || { kill $server; note "no loopback server"; return 1; }
    corral agents start --name tools --cwd /tmp -- bash -c '
        set -e
        python3 -c "import json, ssl; print(json.dumps({\"python\": 3}))"
        git init -q /tmp/work && cd /tmp/work
        echo hello >file && git add file && git -c user.name=a -c user.email=a@example.com commit -qm first
        curl -sf http://127.0.0.1:18080/hostname >/tmp/work/fetched
        echo "tools ok: $(git rev-list --count HEAD) commit, fetched $(wc -c </tmp/work/fetched) bytes"
    ' >/dev/null || { kill $server; return 1; }
    until_true 60 bash -c '[[ $(corral agents list --all --json | jq -r ".[] | select(.id == \"tools\") | .state") == exited ]]'
    local code log
    code=$(corral agents list --all --json | jq -r '.[] | select(.id == "tools") | .exit_status')
    log=$(cat /var/lib/corral/logs/tools.log 2>/dev/null || ls /var/lib/corral/logs)
    kill $server
    note "exit status $code; log: $(echo "$log" | tail -3 | tr '\n' ' ')"
    [[ $code == 0 && $log == *"tools ok: 1 commit"* ]]
}

# systemctl reload: a broken file is refused (old configuration kept, STATUS= and the journal
# say why, the unit stays active); a good one applies to the next agent.
reload_configuration() {
    local since
    since=$(date +%s)
    cp /etc/corral/corral.yaml /tmp/corral.yaml.orig
    printf 'grups:\n  standard_agent: {}\n' >/etc/corral/corral.yaml
    systemctl reload corral.service || { note "reload failed"; return 1; }
    is_active || { note "not active after a broken reload"; return 1; }
    local text
    text=$(prop corral.service StatusText)
    note "broken file: StatusText '$text'"
    [[ $text == *"configuration NOT reloaded"*grups* ]] || return 1
    journalctl -u corral --since "@$since" --no-pager | grep -q "configuration not reloaded" || { note "nothing in the journal"; return 1; }
    printf 'groups:\n  standard_agent:\n    limits:\n      memory: {hard: 300MB}\n' >/etc/corral/corral.yaml
    systemctl reload corral.service || return 1
    text=$(prop corral.service StatusText)
    [[ $text != *"NOT reloaded"* ]] || { note "still '$text'"; return 1; }
    corral agents start --name a2 -- sleep 100000 >/dev/null || return 1
    until_true 10 agent_running a2 || return 1
    local pid max expected=$((300000000 / $(getconf PAGESIZE) * $(getconf PAGESIZE)))
    pid=$(agent_field a2 pid)
    max=$(cat "/sys/fs/cgroup$(cgroup_of "$pid")/memory.max")
    note "good file: a2 memory.max $max (expected $expected); StatusText '$text'"
    corral agents kill a2 >/dev/null
    cp /tmp/corral.yaml.orig /etc/corral/corral.yaml
    systemctl reload corral.service
    [[ $max == "$expected" ]]
}

# The watchdog: a stopped daemon (SIGSTOP: its engine makes no progress) is restarted by
# systemd; agents keep running. WatchdogSec=6s in a drop-in, so that the test is quick.
watchdog_restarts_a_stopped_daemon() {
    mkdir -p /etc/systemd/system/corral.service.d
    printf '[Service]\nWatchdogSec=6s\n' >/etc/systemd/system/corral.service.d/watchdog.conf
    systemctl daemon-reload
    systemctl restart corral.service || return 1
    until_true 30 is_active || return 1
    sleep 8 # longer than the watchdog: pings arrive while the engine runs
    local pid before
    pid=$(main_pid)
    before=$(prop corral.service NRestarts)
    [[ $(main_pid) == "$pid" ]] || { note "restarted while healthy"; return 1; }
    kill -STOP "$pid"
    until_true 40 bash -c '[[ $(systemctl show -p NRestarts --value corral) -gt '"$before"' ]]' || { note "NRestarts stayed $before"; kill -CONT "$pid"; return 1; }
    reattached_within_5s || return 1
    note "SIGSTOP of $pid: watchdog restart, NRestarts $before -> $(prop corral.service NRestarts); journal: $(journalctl -u corral --no-pager | grep -m1 -o 'Watchdog timeout[^!]*')"
    rm -f /etc/systemd/system/corral.service.d/watchdog.conf
    systemctl daemon-reload
}

# Re-attached: listed as running with the same pid, within 5 s of READY.
reattached_within_5s() {
    local started=$SECONDS
    until_true 60 is_active || { note "not active after 60 s: $(systemctl status corral --no-pager | head -5)"; return 1; }
    local ready=$SECONDS
    until_true 5 agent_running a1 || { note "a1 not listed as running 5 s after READY"; return 1; }
    note "active after $((ready - started)) s, a1 listed $((SECONDS - ready)) s after READY"
    [[ $(agent_field a1 pid) == "$agent_a1" ]] && alive "$agent_a1" && alive "$agent_r1"
}

# (A manual restart resets NRestarts: any count above 0 afterwards is systemd restarting a
# failed start, the restart loop of status=219/CGROUP.)
restart_with_agents() {
    local before
    before=$(main_pid)
    systemctl restart corral.service || { note "systemctl restart failed"; journalctl -u corral --no-pager | tail -20; return 1; }
    reattached_within_5s || return 1
    sleep 5
    note "corrald pid $before -> $(main_pid), NRestarts $(prop corral.service NRestarts), Result $(prop corral.service Result)"
    [[ $(prop corral.service NRestarts) == 0 && $(prop corral.service Result) == success && $(main_pid) != "$before" ]] && is_active
}

# The journal: native entries (journalctl CORRAL_AGENT=…): an enforcement action with its
# MESSAGE_ID, group, resource, action and outcome; the re-attachments of the restarts above.
journal_fields() {
    corral agents start --name hog --memory-high 20MB -- python3 -c 'import time; x = b"x" * (60 << 20); time.sleep(100000)' >/dev/null ||
        return 1
    local query='select(.CORRAL_ACTION != null and .CORRAL_RESOURCE == "memory")' entry
    export JQ_QUERY=$query
    until_true 40 bash -c '[[ -n $(journalctl -u corral CORRAL_AGENT=hog -o json --no-pager | jq -c "$JQ_QUERY") ]]' || {
        note "no action for hog in the journal: $(journalctl -u corral CORRAL_AGENT=hog --no-pager | tail -5)"
        corral history hog | tail -5
        corral agents kill hog >/dev/null
        return 1
    }
    entry=$(journalctl -u corral CORRAL_AGENT=hog -o json --no-pager | jq -c "$query" | head -1)
    corral agents kill hog >/dev/null
    note "$(echo "$entry" | jq -c '{MESSAGE, PRIORITY, MESSAGE_ID, CORRAL_AGENT, CORRAL_GROUP, CORRAL_RESOURCE, CORRAL_ACTION, CORRAL_OUTCOME}')"
    [[ $(jq -r .MESSAGE_ID <<<"$entry") == 5778c11af50240aea154c588b621e74c && $(jq -r .CORRAL_GROUP <<<"$entry") == standard_agent &&
        $(jq -r .CORRAL_RESOURCE <<<"$entry") == memory && $(jq -r .CORRAL_OUTCOME <<<"$entry") == succeeded &&
        $(jq -r .PRIORITY <<<"$entry") == 5 ]] || return 1
    local reattached
    reattached=$(journalctl -u corral CORRAL_AGENT=a1 MESSAGE_ID=678b58bddd6841a29f52cfe299b635f6 -o cat --no-pager | wc -l)
    note "a1's re-attachments in the journal: $reattached"
    ((reattached >= 2))
}

# The README's way to turn the metrics address on: a drop-in (what `systemctl edit corral`
# writes; systemd 252 has no `edit --stdin`) replacing ExecStart= with the flag, under the
# unit's own sandbox (RestrictAddressFamilies, the system call filter). Removed afterwards.
metrics_dropin() {
    local dir=/etc/systemd/system/corral.service.d url=http://127.0.0.1:9464 ok=0 page code
    mkdir -p "$dir"
    printf '[Service]\nExecStart=\nExecStart=/usr/bin/corrald --admin-group corral --metrics-address 127.0.0.1:9464\n' >"$dir/metrics.conf"
    systemctl daemon-reload && systemctl restart corral.service || ok=1
    ((ok == 0)) && until_true 30 is_active || ok=1
    # a1's working set appears once it is re-attached and sampled with memory.stat.
    if ((ok == 0)) && until_true 30 bash -c "curl -sf $url/metrics | grep -q '^corral_agent_memory_working_set_bytes{agent=\"a1\",group=\"standard_agent\"} '"; then
        note "$(curl -sf $url/metrics | grep -E '^corral_(agent_memory_working_set_bytes\{agent="a1"|build_info|agents\{state="running"\})' | paste -sd ';' | sed 's/;/; /g')"
        page=$(curl -sf "$url/" | grep -o '<title>[^<]*</title>')
        code=$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/agents")
        note "GET / $page; GET /v1/agents on the metrics address: $code"
        [[ -n $page && $code == 404 ]] || ok=1
    else
        note "no working set for a1 at $url/metrics: $(curl -sS $url/metrics 2>&1 | head -3)"
        journalctl -u corral --no-pager | tail -5
        ok=1
    fi
    rm -f "$dir/metrics.conf"
    rmdir "$dir" 2>/dev/null
    systemctl daemon-reload && systemctl restart corral.service && until_true 30 is_active || { note "not active without the drop-in"; ok=1; }
    ! curl -sf -o /dev/null "$url/metrics" || { note "the address still answers without the drop-in"; ok=1; }
    return "$ok"
}

crash_restarts() {
    local pid before
    pid=$(main_pid)
    before=$(prop corral.service NRestarts)
    kill -KILL "$pid"
    until_true 30 bash -c '[[ $(systemctl show -p NRestarts --value corral) -gt '"$before"' ]]' || { note "NRestarts stayed $before"; return 1; }
    reattached_within_5s || return 1
    note "SIGKILL of $pid: NRestarts $before -> $(prop corral.service NRestarts), new pid $(main_pid)"
}

stop_then_start() {
    systemctl stop corral.service || return 1
    alive "$agent_a1" && alive "$agent_r1" || { note "an agent died with the daemon's stop"; return 1; }
    local result status
    result=$(prop corral.service Result)
    status=$(prop corral.service ExecMainStatus)
    note "stopped (Result=$result, exit status $status); a1 and r1 still running"
    [[ $result == success && $status == 0 ]] || return 1
    systemctl start corral.service || return 1
    reattached_within_5s
}

# The package installed again over a running system (what an upgrade does): the daemon
# restarts, agents keep running and are re-attached.
reinstall_over_running() {
    local before
    before=$(main_pid)
    (cd /tmp && apt-get install -y -q --reinstall "./${deb##*/}") 2>&1 | tail -2 | sed 's/^/     | /'
    ((PIPESTATUS[0] == 0)) || return 1
    reattached_within_5s || return 1
    note "corrald pid $before -> $(main_pid)"
    [[ $(main_pid) != "$before" ]]
}

# Removed: nothing of Corral's left running, the agents' scope and cgroups gone.
remove_package() {
    apt-get remove -y -q corral 2>&1 | tail -2 | sed 's/^/     | /'
    ((PIPESTATUS[0] == 0)) || return 1
    until_true 20 bash -c '! pgrep -x corrald >/dev/null' || { note "corrald still running: $(pgrep -a corrald)"; return 1; }
    until_true 20 bash -c "! kill -0 $agent_a1 && ! kill -0 $agent_r1" || { note "agents still running"; return 1; }
    local left
    left=$(find /sys/fs/cgroup -name 'corral*' -type d 2>/dev/null)
    note "after removal: corral cgroups left: ${left:-none}; corral-agents.scope $(systemctl is-active corral-agents.scope)"
    [[ -z $left ]]
}

check "apt-get install ./corral_*.deb: enabled and active" install_corral
check "Type=notify readiness and STATUS=" ready_and_status
check "daemon in corral.service's cgroup" daemon_cgroup
check "corral agents start: <group>/<agent> with the group's memory.max" agent_start
check "corral run from another service joins the daemon's tree" run_from_another_service
check "STATUS= follows agents as they come and go" status_follows_agents
check "the system reservation on corral-agents.scope" reservation_on_scope
check "sandboxed agent runs python3, git, curl to loopback" tools_under_sandbox
check "systemctl reload: broken file refused, good file applied" reload_configuration
check "watchdog: a stopped daemon is restarted, agents survive" watchdog_restarts_a_stopped_daemon
check "systemctl restart with agents running: re-attached, no restart loop" restart_with_agents
check "journal: an action found by CORRAL_AGENT, with MESSAGE_ID and fields" journal_fields
check "systemctl edit drop-in with --metrics-address: scraped under the unit's sandbox" metrics_dropin
check "SIGKILL under Restart=on-failure: restarted, agents re-attached" crash_restarts
check "systemctl stop keeps agents; start re-attaches them" stop_then_start
check "package reinstalled over a running system: agents re-attached" reinstall_over_running
check "apt-get remove: nothing left running, cgroups gone" remove_package

if ((failed > 0)); then
    echo "--- journal of corral.service and corral-agents.scope (first 60 and last 120 lines)"
    journalctl -u corral.service -u corral-agents.scope --no-pager -o short-monotonic | head -60
    echo "..."
    journalctl -u corral.service -u corral-agents.scope --no-pager -o short-monotonic | tail -120
fi
echo "systemd-e2e: $passed passed, $failed failed${failures[*]:+ (${failures[*]})}"
((failed == 0 && passed > 0))
