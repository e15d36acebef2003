#!/usr/bin/env bash
# Throughput benchmark: builds carteira-server and carteira-load in release,
# starts the server on a temporary journal on a free port, runs the matrix
# (ping@64 as the baseline, send@1, send@64, send@64 with pipeline 16) and
# prints a Markdown table with every figure also as a ratio of ping@64.
#
#   tools/bench.sh               # 10 s a run
#   BENCH_SECONDS=5 tools/bench.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${BENCH_SECONDS:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/carteira-bench.XXXXXX")
server_pid=""

cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

log "building carteira-server (release)"
(cd "$root" && swift build -c release --product carteira-server >&2)
server="$(cd "$root" && swift build -c release --show-bin-path)/carteira-server"

# SwiftPM names a path dependency after its directory: a checkout whose
# directory is itself called `loadgen` would clash with the nested package
# (also `loadgen`), so such a checkout builds the tools from a mirror.
loadgen_dir="$root/tools/loadgen"
if [ "$(basename "$root")" = "loadgen" ]; then
    mirror="${TMPDIR:-/tmp}/carteira-bench/carteira"
    log "checkout directory is named loadgen: building the tools from $mirror"
    mkdir -p "$mirror"
    (cd "$root" && tar --exclude=./.build --exclude=./.git --exclude=./tools/loadgen/.build -cf - .) | tar -xf - -C "$mirror"
    loadgen_dir="$mirror/tools/loadgen"
fi
log "building carteira-load (release)"
(cd "$loadgen_dir" && swift build -c release --product carteira-load >&2)
load="$(cd "$loadgen_dir" && swift build -c release --show-bin-path)/carteira-load"

# A large initial balance: send@1 pays one payee that never pays back, and
# R$ 100,00 would run out after 10,000 sends.
"$server" --host 127.0.0.1 --port 0 --journal "$work/journal" --no-console --log-level info \
    --initial-balance 1000000 \
    >"$work/server.log" 2>&1 </dev/null &
server_pid=$!
port=""
for _ in $(seq 1 300); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$work/server.log" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { log "the server did not print its port within 30 s"; cat "$work/server.log" >&2; exit 1; }
log "server pid $server_pid on 127.0.0.1:$port, journal $work/journal"

# name, then carteira-load options
runs=(
    "ping@64|--mode ping --connections 64"
    "send@1|--mode send --connections 1"
    "send@64|--mode send --connections 64"
    "send@64 pipeline 16|--mode send --connections 64 --pipeline 16"
)
index=0
for entry in "${runs[@]}"; do
    name=${entry%%|*}
    options=${entry#*|}
    log "run: $name ($seconds s)"
    # shellcheck disable=SC2086 # options are words on purpose
    "$load" --server "127.0.0.1:$port" --seconds "$seconds" --json $options >"$work/run-$index.json"
    index=$((index + 1))
done

kill -TERM "$server_pid"
wait "$server_pid" || log "the server exited with status $?"
server_pid=""

journal="$work/journal/ledger.journal"
journal_bytes=$(wc -c <"$journal")
journal_lines=$(wc -l <"$journal")
transfers=$(grep -c ' type=transfer ' "$journal" || true)
baseline=$(jq '.requestsPerSecond' "$work/run-0.json")

echo "| run | requests/s | × ping@64 | OK | ERR | p50 ms | p90 ms | p99 ms | max ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
index=0
for entry in "${runs[@]}"; do
    name=${entry%%|*}
    jq -r --arg name "$name" --argjson base "$baseline" '
        def ms: . / 1e6 | . * 1000 | round / 1000;
        "| \($name) | \(.requestsPerSecond | round) | \(.requestsPerSecond / $base * 100 | round / 100)× |"
        + " \(.ok) | \([.errors[]] | add // 0) |"
        + " \(.latencyNanoseconds.p50 | ms) | \(.latencyNanoseconds.p90 | ms) |"
        + " \(.latencyNanoseconds.p99 | ms) | \(.latencyNanoseconds.max | ms) |"' "$work/run-$index.json"
    index=$((index + 1))
done
echo
echo "Errors by code: $(jq -s -c '[.[].errors] | add' "$work"/run-*.json)"
echo "Journal after the run: $journal_lines lines ($transfers transfers), $journal_bytes bytes."
# The server logs its journal statistics when it stops.
syncs=$(sed -n 's/.*journal.syncs=\([0-9][0-9]*\).*/\1/p' "$work/server.log" | tail -n 1)
synced=$(sed -n 's/.*journal.events_synced=\([0-9][0-9]*\).*/\1/p' "$work/server.log" | tail -n 1)
if [ -n "$syncs" ] && [ "$syncs" -gt 0 ]; then
    echo "Group commit: $synced events in $syncs syncs, $(awk -v e="$synced" -v s="$syncs" 'BEGIN { printf "%.1f", e / s }') events per sync over the whole run."
fi
echo "Runs of $seconds s against one server; nproc $(nproc), $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(swift --version 2>/dev/null | head -n 1)."
