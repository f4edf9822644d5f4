#!/usr/bin/env bash
# Runs inside a pure cgroup v2 kernel: the cost of Prometheus scrapes. corrald
# with AGENTS idle agents (the default adaptive sampling, once they are settled)
# and --metrics-address; its CPU over alternating WINDOW-second windows without
# scrapes and with a scrape every second on one kept connection (curl --rate,
# as Prometheus at scrape_interval: 1s keeps its connection), three times; then
# its CPU per scrape over 150 back to back on a kept connection and 30 with a new
# connection each, the kernel's part (system time) apart. Prints the time per scrape, the bytes and series, the ratio
# of the windows' means and the cost per scrape.
# Called by scripts/bench-metrics.
set -euo pipefail
CORRALD=${1:?corrald binary}
AGENTS=${2:-200}
WINDOW=${3:-60}
address=127.0.0.1:19465
source "$(dirname "${BASH_SOURCE[0]}")/daemon-common.sh"
start_daemon metrics --metrics-address "$address"
# A scrape a second on one connection, each one's time and size appended to $state/scrapes.
# N URLs, each with its -o /dev/null: one curl, one connection, N transfers.
transfers() { for _ in $(seq "$1"); do printf -- '-o /dev/null http://%s/metrics\n' "$address"; done; }
scraper() {
    # WINDOW - 1 transfers: curl ends within the window and writes its lines as it exits
    # (killed, it would lose them in its buffer). The URLs split into words on purpose.
    # shellcheck disable=SC2046
    curl -sS --rate 1/s -w '%{time_total} %{size_download} %{num_connects}\n' $(transfers $((WINDOW - 1))) >>"$state/scrapes"
}

launch_idle "$AGENTS"
live=$(api 'http://corral/v1/agents?state=live' | grep -o '"id"' | wc -l)
# Settled: the agents sampled at the idle cadence, as they are on a quiet host.
wait_idle $((AGENTS * 98 / 100)) 600
echo "  $idle_count of $AGENTS agents idle after ${settled} s" >&2
series=$(curl -sS "http://$address/metrics" | grep -vc '^#')
# Alternating windows (emulation drifts by several points between minutes): none, scraped,
# three times; the scrapes of each scraped window counted.
nones=() scrapeds=() counts=()
: >"$state/scrapes"
for _ in 1 2 3; do
    nones+=("$(measure)")
    before=$(wc -l <"$state/scrapes")
    scrapeds+=("$(measure scraper)")
    counts+=($(($(wc -l <"$state/scrapes") - before)))
done
# The daemon's CPU per scrape, directly: KEPT (150) scrapes back to back on one kept
# connection, then 30 with a new connection (and curl) each, less the idle rate over the
# same time (clock ticks are 10 ms: 150 scrapes put the rounding under 0.1 ms a scrape).
KEPT=150
# The kernel's part (system time): under TCG the kernel's copies of the body cost far
# more than natively (README, "Metrics"), so it is shown apart; the idle rate of system
# time over 20 s first, to take away.
systicks() { awk '{print $15}' "/proc/$daemon/stat"; }
# shellcheck disable=SC2046
back_to_back() {
    local t0 c0 t1 c1 s0 s1
    t0=$EPOCHREALTIME c0=$(ticks) s0=$(systicks)
    if [[ $1 == kept ]]; then
        curl -sS $(transfers "$KEPT")
    elif [[ $1 == idle ]]; then
        sleep 20
    else
        for _ in $(seq 30); do curl -sS -o /dev/null "http://$address/metrics"; done
    fi
    t1=$EPOCHREALTIME c1=$(ticks) s1=$(systicks)
    echo "$t0 $t1 $((c1 - c0)) $((s1 - s0))"
}
read -r i0 i1 _ is <<<"$(back_to_back idle)"
read -r k0 k1 kc ks <<<"$(back_to_back kept)"
read -r n0 n1 nc ns <<<"$(back_to_back new)"
idle_sys=$(awk -v s="$is" -v hz="$hz" -v t0="$i0" -v t1="$i1" 'BEGIN { printf "%.5f", s / hz / (t1 - t0) }')
echo "scrape cost, ${WINDOW} s windows, $live agents ($idle_count sampled at the idle cadence), kernel $(uname -r) (emulated, 2 vCPUs):"
sort -n "$state/scrapes" | awk -v n="$(wc -l <"$state/scrapes")" '
    { t[NR] = $1; bytes = $2; connects += $3 }
    END { printf "  %d scrapes on %d connections: %d bytes, time p50 %.1f ms, p90 %.1f ms, max %.1f ms\n", n, connects, bytes, 1000 * t[int(n * 0.5) + 1], 1000 * t[int(n * 0.9) + 1], 1000 * t[n] }'
echo "  $series series per scrape"
echo "  daemon CPU, alternating windows (% of one CPU): none ${nones[*]}; scraped every second ${scrapeds[*]} (${counts[*]} scrapes)"
awk -v n="${nones[*]}" -v s="${scrapeds[*]}" -v c="${counts[*]}" -v w="$WINDOW" 'BEGIN {
    k = split(n, none, " "); split(s, scraped, " "); split(c, count, " ")
    for (i = 1; i <= k; i++) { sn += none[i]; ss += scraped[i]; sc += count[i] }
    mn = sn / k; ms = ss / k; per = (ms - mn) / 100 * w * k / sc
    printf "  ratio of the means: %.3f (%+.1f%% daemon CPU for a 1 s scrape); %.1f ms of daemon CPU per scrape by the windows\n", ms / mn, 100 * (ms / mn - 1), 1000 * per }'
mean_none=$(awk -v n="${nones[*]}" 'BEGIN { k = split(n, a, " "); for (i = 1; i <= k; i++) t += a[i]; printf "%.2f", t / k }')
for run in "kept $k0 $k1 $kc $ks" "new $n0 $n1 $nc $ns"; do
    read -r how t0 t1 c sys <<<"$run"
    awk -v how="$how" -v kept="$KEPT" -v c="$c" -v sys="$sys" -v idle_sys="$idle_sys" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v n="$mean_none" 'BEGIN {
        count = how == "kept" ? kept : 30
        wall = t1 - t0; idle = n / 100 * wall; per = (c / hz - idle) / count; kernel = (sys / hz - idle_sys * wall) / count
        label = how == "kept" ? "on one kept connection (as Prometheus)" : "a new connection each (curl per scrape)"
        printf "  %d scrapes back to back, %s: %.2f s wall, daemon CPU %.1f ms per scrape beyond its idle rate (%+.1f%% of its idle %.2f%% at one scrape a second), of which %.1f ms system time\n", count, label, wall, 1000 * per, 100 * 100 * per / n, n, 1000 * kernel }'
done
stop_daemon "$AGENTS"
