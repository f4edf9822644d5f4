#!/usr/bin/env bash
# Runs in the VM whose PID 1 is systemd (scripts/bench-launch --systemd): installs the Debian
# package, then times, interleaved in this one boot, `systemd-run --scope` with the limits of
# standard_agent against `corral run -- /bin/true` with the daemon (corral.service) up and
# with the engine embedded (--no-daemon), and /bin/true alone.
set -euo pipefail
DEB=${1:?usage: launch-systemd-inner.sh DEB RUNS}
RUNS=${2:-21}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[[ $(cat /proc/1/comm) == systemd ]] || { echo "bench-launch: PID 1 is not systemd" >&2; exit 2; }
cp "$DEB" /tmp/
(cd /tmp && apt-get install -y -q "./${DEB##*/}" >/dev/null 2>&1) || { echo "bench-launch: apt-get install failed" >&2; exit 1; }
for _ in $(seq 300); do [[ $(systemctl is-active corral) == active ]] && break; sleep 0.2; done
[[ $(systemctl is-active corral) == active ]] || { echo "bench-launch: corral.service is not active" >&2; exit 1; }

plain() { /bin/true; }
# The same limits as standard_agent (soft 200 MB, hard 500 MB, CPU 30%, 100 processes).
scope() { systemd-run --scope --quiet -p MemoryHigh=200M -p MemoryMax=500M -p CPUQuota=30% -p TasksMax=100 /bin/true; }
corral_daemon() { corral run --name bench -- /bin/true 2>/dev/null; }
corral_embedded() { corral run --no-daemon --name bench -- /bin/true 2>/dev/null; }

declare -A samples=()
names=(plain scope corral_daemon corral_embedded)
for n in "${names[@]}"; do "$n"; done # warm-up: binaries come over 9p
for ((i = 0; i < RUNS; i++)); do
    for n in "${names[@]}"; do
        start=$EPOCHREALTIME
        "$n"
        end=$EPOCHREALTIME
        samples[$n]+="$(((${end/./} - ${start/./}) / 1000)) "
    done
done

source "$(dirname "${BASH_SOURCE[0]}")/stats.sh"
declare -A med=()
for n in "${names[@]}"; do med[$n]=$(echo "${samples[$n]}" | median); done
echo "launch latency under systemd $(systemctl --version | head -1 | cut -d' ' -f2) as PID 1, median of $RUNS interleaved runs each (ms), kernel $(uname -r):"
printf '  %-58s %6s ms  (p90 %s)\n' "/bin/true alone" "${med[plain]}" "$(echo "${samples[plain]}" | p90)"
printf '  %-58s %6s ms  (p90 %s)\n' "systemd-run --scope -p MemoryHigh/MemoryMax/CPUQuota/TasksMax" "${med[scope]}" "$(echo "${samples[scope]}" | p90)"
printf '  %-58s %6s ms  (p90 %s)\n' "corral run -- /bin/true (corral.service up)" "${med[corral_daemon]}" "$(echo "${samples[corral_daemon]}" | p90)"
printf '  %-58s %6s ms  (p90 %s)\n' "corral run --no-daemon -- /bin/true" "${med[corral_embedded]}" "$(echo "${samples[corral_embedded]}" | p90)"
echo "  corral (daemon) / systemd-run --scope   = $(ratio "${med[corral_daemon]}" "${med[scope]}")x (target <= 1.0x)"
echo "  corral (embedded) / systemd-run --scope = $(ratio "${med[corral_embedded]}" "${med[scope]}")x (target <= 1.0x)"

# Who spends the CPU of a launch: PID 1, journald, dbus and corrald, read from /proc over
# 10 more runs of each (ms of CPU a run; the tick is 10 ms, so over 10 runs ±1 ms a run).
tick=$(getconf CLK_TCK)
cpu_ms() { # PID → its user+system CPU so far, in ms (0 when it is gone)
    awk -v t="$tick" '{ print int(($14 + $15) * 1000 / t) }' "/proc/$1/stat" 2>/dev/null || echo 0
}
corrald=$(systemctl show -p MainPID --value corral)
journald=$(systemctl show -p MainPID --value systemd-journald)
dbus=$(systemctl show -p MainPID --value dbus 2>/dev/null || echo 0)
echo "  CPU a run (ms, over 10 runs each): PID 1 / journald / dbus / corrald / the command itself (its process tree, wall-clock excluded)"
for n in scope corral_daemon corral_embedded; do
    declare -a before=()
    for p in 1 "$journald" "${dbus:-0}" "$corrald"; do before+=("$(cpu_ms "$p")"); done
    children_before=$(awk '{ print int(($16 + $17) * 1000 / '"$tick"') }' /proc/$$/stat)
    for _ in $(seq 10); do "$n"; done
    children_after=$(awk '{ print int(($16 + $17) * 1000 / '"$tick"') }' /proc/$$/stat)
    line=""
    i=0
    for p in 1 "$journald" "${dbus:-0}" "$corrald"; do
        line+="$(((($(cpu_ms "$p") - before[i])) / 10)) / "
        i=$((i + 1))
    done
    printf '  %-58s %s%s\n' "$n" "$line" "$(((children_after - children_before) / 10))"
done
