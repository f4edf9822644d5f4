#!/usr/bin/env bash
# Runs in the VM whose PID 1 is systemd (scripts/bench-pressure --oomd): installs the Debian
# package, then runs the host pressure scenario twice in this one boot — with corral.service's
# host ladder, and with the ladder off and systemd-oomd watching corral-agents.scope
# (ManagedOOMMemoryPressure=kill at its defaults; Debian's 252: PSI memory full > 60% for 20 s) —
# and prints the outcome of each.
set -euo pipefail
DEB=${1:?usage: pressure-systemd-inner.sh DEB STRESS}
STRESS=${2:?usage: pressure-systemd-inner.sh DEB STRESS}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[[ $(cat /proc/1/comm) == systemd ]] || { echo "bench-pressure: PID 1 is not systemd" >&2; exit 2; }
command -v /usr/lib/systemd/systemd-oomd >/dev/null || { echo "bench-pressure: systemd-oomd is not installed (apt-get install systemd-oomd, or scripts/setup)" >&2; exit 1; }
cp "$DEB" /tmp/
(cd /tmp && apt-get install -y -q "./${DEB##*/}" >/dev/null 2>&1) || { echo "bench-pressure: apt-get install failed" >&2; exit 1; }
active() { for _ in $(seq 300); do [[ $(systemctl is-active corral) == active ]] && return 0; sleep 0.2; done; return 1; }
active || { echo "bench-pressure: corral.service is not active" >&2; exit 1; }

scope=/sys/fs/cgroup/system.slice/corral-agents.scope
config() {
    cat >/etc/corral/corral.yaml <<YAML
intervals: {sampling: 500ms}
groups:
  hog:
    description: grows to 220 MB over 55 s
    limits:
      memory: {soft: 290MB, hard: 300MB, action: warn}
      cpu: {soft: 100%, hard: 200%, action: warn}
      processes: {soft: 10, hard: 20, action: warn}
    totals: {memory: 4G, cpu: 800%, processes: 200}
host_pressure:
  enabled: $1
  memory_high: 75%
  memory_critical: 90%
  step_interval: 500ms
  quiet_period: 3s
  recovery_interval: 1s
YAML
    systemctl restart corral
    active || { echo "bench-pressure: corral.service did not come back" >&2; exit 1; }
}
field() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null || echo 0; }
full_total() { sed -n 's/^full .*total=\([0-9]*\).*/\1/p' "$scope/memory.pressure"; }

scenario() {
    local name=$1
    for _ in $(seq 100); do [[ $(corral agents list --json | jq length) == 0 ]] && break; sleep 0.3; done
    local oom_before stall_before started
    oom_before=$(field "$scope/memory.events" oom_kill)
    stall_before=$(full_total)
    started=$EPOCHREALTIME
    local oomd_before
    oomd_before=$(journalctl -u systemd-oomd --no-pager -q 2>/dev/null | grep -c "Killed" || true)
    for i in 1 2 3 4 5 6 7 8; do
        corral agents start --name "$name$i" --group hog --priority "$i" -- "$STRESS" memramp 220 55 2 >/dev/null
    done
    for _ in $(seq 1200); do [[ $(corral agents list --json | jq length) == 0 ]] && break; sleep 0.5; done
    local seconds=$(((${EPOCHREALTIME/./} - ${started/./}) / 1000000))
    local agents completed killed oomd_after
    agents=$(corral agents list --all --json | jq "[.[] | select(.id | startswith(\"$name\"))]")
    completed=$(jq '[.[] | select(.state == "exited" and .exit_status == 0)] | length' <<<"$agents")
    killed=$(jq '[.[] | select(.state != "exited" or .exit_status != 0)] | length' <<<"$agents")
    oomd_after=$(journalctl -u systemd-oomd --no-pager -q 2>/dev/null | grep -c "Killed" || true)
    local klog
    klog=$(dmesg | grep -c "corral-agents.scope/hog/$name" || true)
    printf '%s: killed %s, completed %s/8, OOM kills in the root %s (kernel log: %s lines), systemd-oomd kills %s, full memory stall %s s, %s s\n' \
        "$2" "$killed" "$completed" "$(($(field "$scope/memory.events" oom_kill) - oom_before))" "$klog" "$((oomd_after - oomd_before))" \
        "$(awk -v a="$stall_before" -v b="$(full_total)" 'BEGIN { printf "%.2f", (b - a) / 1000000 }')" "$seconds"
    corral history --json | jq -r --arg p "$name" '[.[] | select(.kind == "host_pressure" and (.agent | startswith($p))) | "\(.agent) \(.action)"] | join(", ")' |
        sed 's/^/  host_pressure steps: /'
}

echo "host pressure under systemd $(systemctl --version | head -1 | cut -d' ' -f2) as PID 1, kernel $(uname -r), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), allocatable $(cat "$scope/memory.max")"
config true
scenario lad "Corral's host ladder (corral.service)"
config false
# The VM harness masks systemd-oomd (it must not run under the other suites): unmask it here.
systemctl unmask systemd-oomd.service systemd-oomd.socket >/dev/null 2>&1 || true
systemctl daemon-reload
systemctl start systemd-oomd.socket systemd-oomd.service || { echo "bench-pressure: systemd-oomd did not start" >&2; systemctl status systemd-oomd --no-pager >&2 || true; exit 1; }
systemctl set-property --runtime corral-agents.scope ManagedOOMMemoryPressure=kill
sleep 2
oomctl 2>/dev/null | sed -n '1,12p' | sed 's/^/  oomctl: /' || true
scenario ood "ladder off, systemd-oomd on corral-agents.scope (ManagedOOMMemoryPressure=kill at its defaults, above)"
journalctl -u systemd-oomd --no-pager -q 2>/dev/null | grep -i "kill" | tail -5 | sed 's/^/  oomd: /' || true
