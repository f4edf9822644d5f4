#!/usr/bin/env bash
# Inside a pure cgroup v2 kernel (scripts/bench-scale): AGENTS idle sleepers plus MISBEHAVING
# agents of each kind (memory past memory.high, CPU at its cpu.max, a fork loop at pids.max)
# under one corrald; start rate, steady CPU and RSS, reaction latency (kernel event → action
# recorded, from corral_reaction_seconds), API latency of agents list and history, descriptors,
# and the time to re-attach everything after kill -9.
#   scale-inner.sh CORRALD CORRAL_STRESS AGENTS MISBEHAVING WINDOW
set -euo pipefail
CORRALD=$1 stress=$2 AGENTS=$3 BAD=$4 WINDOW=$5
source "$(dirname "${BASH_SOURCE[0]}")/daemon-common.sh"
config=$(mktemp /tmp/corral-bench-config.XXXXXX)
# Totals raised as an operator would for this many agents; the ladder's steps a little
# sooner than the built-in ones (throttle 30 s, suspend 5 min) so that it acts within the run.
cat >"$config" <<CONFIG
intervals: {sampling: 1s, idle_sampling: 10s}
escalation:
  delays: {warn: 0s, throttle: 20s, suspend: 600s, terminate: 1200s}
groups:
  lightweight_agent:
    totals: {memory: 64G, cpu: 20000%, processes: 40000}
  standard_agent:
    totals: {memory: 64G, cpu: 4000%, processes: 4000}
  heavy_computation_agent:
    totals: {memory: 64G, cpu: 4000%, processes: 4000}
CONFIG
# At debug level the daemon logs each reaction over 50 ms with its stages (watcher read, queue,
# engine hop, step): summed up below, for the crossings since the misbehaving agents started.
DAEMON_LOG=$(mktemp /tmp/corral-bench-scale-log.XXXXXX)
start_daemon scale --config "$config" --log-level debug
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }
base_rss=$(rss)

echo "scale: $AGENTS idle agents + $BAD misbehaving of each of 3 kinds, kernel $(uname -r) (emulated, $(nproc) vCPUs), ${WINDOW} s windows"
start=$EPOCHREALTIME
launch_idle "$AGENTS"
launched=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
awk -v n="$AGENTS" -v t="$launched" 'BEGIN { printf "  start: %d agents through the API (8 requests at a time) in %.1f s: %.1f agents/s\n", n, t, n / t }'
wait_idle $((AGENTS * 98 / 100)) 900
idle_cpu=$(measure)
idle_rss=$(rss)
echo "  steady, idle agents only ($idle_count idle, ${settled} s after the last start): CPU ${idle_cpu}% of one CPU, RSS $((idle_rss / 1024)) MiB ($(awk -v a="$idle_rss" -v b="$base_rss" -v n="$AGENTS" 'BEGIN { printf "%.1f", (a - b) / n }') KiB per agent)"

# The misbehaving ones: memory soft crossings, CPU at a 2% cap (20 of them at 10% would take
# both emulated CPUs), fork loops at pids.max 8.
start_bad() {
    local i
    for i in $(seq "$BAD"); do
        printf '{"id":"mem%s","group":"standard_agent","limits":{"memory":{"soft":8388608,"hard":67108864}},"command":["%s","mem","12","900","1"]}\n' "$i" "$stress"
        printf '{"id":"cpu%s","group":"lightweight_agent","limits":{"cpu":{"hard":2}},"command":["%s","spin","900"]}\n' "$i" "$stress"
        printf '{"id":"fork%s","group":"heavy_computation_agent","limits":{"processes":{"hard":8}},"command":["%s","forkloop","32","900"]}\n' "$i" "$stress"
    done | while read -r body; do
        api -o /dev/null -w '%{http_code}\n' -X POST http://corral/v1/agents -d "$body"
    done | sort | uniq -c | awk '{ printf "%s× HTTP %s ", $1, $2 } END { print "" }'
}
# The reaction histogram so far (the starts: each new agent's first readings), subtracted below.
# One line per bucket: trigger, bound, cumulative count.
buckets() {
    api http://corral/metrics | awk '/^corral_reaction_seconds_bucket/ {
        t = "all"; if (match($0, /trigger="[^"]*"/)) t = substr($0, RSTART + 9, RLENGTH - 10)
        if (match($0, /kind="[^"]*"/)) t = t "/" substr($0, RSTART + 6, RLENGTH - 7)
        match($0, /le="[^"]*"/); print t, substr($0, RSTART + 4, RLENGTH - 5), $NF }'
}
before=$(buckets)
log_before=$(wc -l <"$DAEMON_LOG")
bad_started=$(start_bad)
echo "  misbehaving started: $bad_started"
sleep 40
busy_cpu=$(measure)
busy_rss=$(rss)
fds=$(ls "/proc/$daemon/fd" | wc -l)
live=$(api http://corral/v1/agents?state=live | grep -o '"id"' | wc -l)
echo "  with the misbehaving ones ($live live): CPU ${busy_cpu}% of one CPU, RSS $((busy_rss / 1024)) MiB, $fds open descriptors"

# Reaction latency from the histogram, counting only the reactions since the misbehaving agents
# started (the starts before fill the histogram with each new agent's first readings, taken
# while the engine is busy starting others): the bucket bounds that hold the 50th and 99th
# percentile, the raw cumulative counts, and the same by the kernel file that woke the watcher.
metrics=$(api http://corral/metrics)
now=$(buckets)
# Since the misbehaving ones started, by trigger and summed; the buckets sorted by their bound.
reaction=$(awk 'NR == FNR { old[$1 " " $2] = $3; next } { print $1, ($2 == "+Inf" ? 1e99 : $2), $2, $3 - old[$1 " " $2] }' \
    <(echo "$before") <(echo "$now") | sort -k2,2g | awk '
    { if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 } c[$1, $3] = $4; c["", $3] += $4; if ($1 ~ /\/crossing$/) c["crossings", $3] += $4
      if (!($1 in known)) { known[$1] = 1; triggers[++m] = $1 } }
    function bound(total, t, p,   i) { for (i = 1; i <= n; i++) if (c[t, order[i]] >= total * p) return order[i]; return "?" }
    function raw(t,   i, text) { for (i = 1; i <= n; i++) text = text " " order[i] ":" c[t, order[i]]; return text }
    END {
        total = c["", order[n]]
        if (total == 0) { print "no reactions"; exit }
        printf "%d reactions: p50 ≤ %s s, p99 ≤ %s s (histogram bucket bounds; cumulative:%s)", total, bound(total, "", 0.5), bound(total, "", 0.99), raw("")
        crossings = c["crossings", order[n]]
        if (crossings > 0) printf "\n    crossings (a new violation): %d, p50 ≤ %s s, p99 ≤ %s s (cumulative:%s)", crossings, bound(crossings, "crossings", 0.5), bound(crossings, "crossings", 0.99), raw("crossings")
        for (j = 1; j <= m; j++) {
            t = triggers[j]; count = c[t, order[n]]
            if (count > 0) printf "\n    woken by %s: %d, p50 ≤ %s s, p99 ≤ %s s", t, count, bound(count, t, 0.5), bound(count, t, 0.99)
        }
    }' || true)
records=$(grep -E '^corral_enforcement_actions_total' <<<"$metrics" | awk '{ s += $NF } END { print s + 0 }' || true)
echo "  reaction (kernel event → action recorded): $reaction"
echo "  enforcement actions recorded: $records"
# The slow crossings' stages (from the debug log): how many, and per stage its median and
# largest value and how often it was the largest part.
slow=$(tail -n +"$((log_before + 1))" "$DAEMON_LOG" | grep -o '(crossing) took [^:]*: [a-z ]* [0-9.]* ms, [a-z ]* [0-9.]* ms, [a-z ]* [0-9.]* ms, [a-z ]* [0-9.]* ms' | awk '
    {
        n++; split($0, parts, ": "); count = split(parts[2], stages, ", "); best = ""; most = -1
        for (i = 1; i <= count; i++) {
            name = stages[i]; sub(/ [0-9.]+ ms$/, "", name)
            value = stages[i]; sub(/ ms$/, "", value); sub(/.* /, "", value); value += 0
            if (!(name in seen)) { seen[name] = 1; names[++m] = name }
            values[name, n] = value; if (value > most) { most = value; best = name }
        }
        largest[best]++
    }
    END {
        if (n == 0) { print "none"; exit }
        printf "%d crossings over 50 ms;", n
        for (j = 1; j <= m; j++) {
            name = names[j]; k = 0; delete sorted
            for (i = 1; i <= n; i++) sorted[++k] = values[name, i]
            for (a = 1; a <= k; a++) for (b = a + 1; b <= k; b++) if (sorted[b] < sorted[a]) { t = sorted[a]; sorted[a] = sorted[b]; sorted[b] = t }
            printf " %s median %.1f ms, max %.1f ms, largest part %d×;", name, sorted[int((k + 1) / 2)], sorted[k], largest[name] + 0
        }
        print ""
    }' || true)
echo "  slow crossings by stage (kernel event → watcher read → queue → engine hop → step): $slow"
# What held the engine's actor over 20 ms meanwhile (debug log): by kind of job, count, median, max.
holds=$(tail -n +"$((log_before + 1))" "$DAEMON_LOG" | grep -o '[a-z][^:]* held the engine for [0-9.]* ms' \
    | sed -E 's/ of [A-Za-z0-9_.-]+ held/ held/; s/ held the engine for / /; s/ ms$//' | awk '
    { value = $NF; $NF = ""; name = $0; sub(/ $/, "", name); n[name]++; values[name, n[name]] = value + 0; total[name] += value }
    END {
        for (name in n) {
            k = n[name]; delete sorted
            for (i = 1; i <= k; i++) sorted[i] = values[name, i]
            for (a = 1; a <= k; a++) for (b = a + 1; b <= k; b++) if (sorted[b] < sorted[a]) { t = sorted[a]; sorted[a] = sorted[b]; sorted[b] = t }
            printf "\n    %s: %d×, median %.0f ms, max %.0f ms, %.1f s in all", name, k, sorted[int((k + 1) / 2)], sorted[k], total[name] / 1000
        }
    }' || true)
echo "  jobs that held the engine over 20 ms since the misbehaving ones started:${holds:- none}"

# API latency: 50 requests each.
api_p() {
    local times
    times=$(for _ in $(seq 50); do curl -sS -o /dev/null -w '%{time_total}\n' --unix-socket "$socket" "$1"; done | sort -n)
    awk '{ a[NR] = $1 * 1000 } END { printf "p50 %.1f ms, p99 %.1f ms", a[int(NR * 0.5)], a[int(NR * 0.99)] }' <<<"$times"
}
list_latency=$(api_p http://corral/v1/agents)
page_latency=$(api_p "http://corral/v1/agents?limit=100&after=idle500")
history_latency=$(api_p "http://corral/v1/history?limit=100")
echo "  GET /v1/agents ($live agents): $list_latency; one page of 100 (?limit=100&after=idle500): $page_latency; GET /v1/history?limit=100: $history_latency"

# kill -9 and re-attach: until every agent is listed and watched again.
kill -9 "$daemon"
wait "$daemon" 2>/dev/null || true
restart=$EPOCHREALTIME
"$CORRALD" --socket "$socket" --state-dir "$state/state" --cgroup-root "$root" --log-level warning --config "$config" 2>>"$DAEMON_LOG" &
daemon=$!
for _ in $(seq 3000); do
    # (Nothing answers at first: every step here may fail without ending the script.)
    health=$(api http://corral/v1/health 2>/dev/null || true)
    agents=$(grep -o '"agents":[0-9]*' <<<"$health" | cut -d: -f2 || true)
    watched=$(grep -o '"active":[0-9]*,"idle":[0-9]*' <<<"$health" | awk -F'[:,]' '{ print $2 + $4 }' || true)
    [[ -n $agents && $agents -ge $live && ${watched:-0} -ge $live ]] && break
    sleep 0.2
done
reattached=$(awk -v a="$restart" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')

echo "  re-attach after kill -9: $live agents listed and watched ${reattached} s after the restart"
rm -f "$config" "$DAEMON_LOG"
for i in $(seq "$BAD"); do for k in mem cpu fork; do api -o /dev/null -X POST "http://corral/v1/agents/$k$i/kill" || true; done; done
stop_daemon "$AGENTS"
